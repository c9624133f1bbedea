import { performance } from 'node:perf_hooks';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from '../../mappers/memory-mapper.js';
import type { PhaseName } from '../report/report.js';

/**
 * Time spent in each phase during one iteration. The bench resets it at the start of an
 * iteration and reads it at the end; TimedMapper and the runner add to it.
 *
 * Operations may overlap (a pipelined plan keeps several finalizes and frees in flight, and
 * reserve runs inside allocate): each phase sums the durations of its own operations, and the
 * iteration's time is the wall time during which at least one timed operation was under way,
 * so an overlap is counted once and work done between operations while none is in flight
 * (verification, bookkeeping) not at all.
 */
export class PhaseClock {
  readonly totals: Record<PhaseName, number> = { reserve: 0, prepare: 0, write: 0, initialize: 0, deinitialize: 0, release: 0 };
  private underway = 0;
  private busySince = 0;
  private busy = 0;

  reset(): void {
    for (const k of Object.keys(this.totals) as PhaseName[]) this.totals[k] = 0;
    this.underway = 0;
    this.busy = 0;
  }

  /** Wall time during which some timed operation was under way, in milliseconds. */
  total(): number {
    return this.underway > 0 ? this.busy + (performance.now() - this.busySince) : this.busy;
  }

  time<T>(phase: PhaseName, fn: () => T): T {
    const t0 = this.begin();
    try {
      return fn();
    } finally {
      this.totals[phase] += this.end() - t0;
    }
  }

  async timeAsync<T>(phase: PhaseName, fn: () => Promise<T>): Promise<T> {
    const t0 = this.begin();
    try {
      return await fn();
    } finally {
      this.totals[phase] += this.end() - t0;
    }
  }

  private begin(): number {
    const now = performance.now();
    if (this.underway++ === 0) this.busySince = now;
    return now;
  }

  private end(): number {
    const now = performance.now();
    if (--this.underway === 0) this.busy += now - this.busySince;
    return now;
  }
}

/**
 * A MemoryMapper that adds the time of its reservations to a PhaseClock. The other phases are
 * timed one level up, around the memory manager's calls (allocate, finalize, deallocate), so
 * that they include the allocator's own work; reserve happens inside allocate and is carved
 * out of it here.
 */
export class ReserveTimingMapper implements MemoryMapper {
  constructor(
    readonly inner: MemoryMapper,
    private readonly clock: PhaseClock,
  ) {}

  get pageSize(): number {
    return this.inner.pageSize;
  }

  reserve(bytes: number): Promise<ExecutorAddrRange> {
    return this.clock.timeAsync('reserve', () => this.inner.reserve(bytes));
  }

  prepare(addr: number, size: number): Uint8Array {
    return this.inner.prepare(addr, size);
  }

  initialize(info: AllocInfo): Promise<number> {
    return this.inner.initialize(info);
  }

  deinitialize(keys: readonly number[]): Promise<void> {
    return this.inner.deinitialize(keys);
  }

  release(bases: readonly number[]): Promise<void> {
    return this.inner.release(bases);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
