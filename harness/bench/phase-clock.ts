import { performance } from 'node:perf_hooks';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from '../../mappers/memory-mapper.js';
import type { PhaseName } from '../report.js';

/**
 * Time spent in each phase during one iteration. The bench resets it at the start of an
 * iteration and reads it at the end; TimedMapper and the runner add to it.
 */
export class PhaseClock {
  readonly totals: Record<PhaseName, number> = { reserve: 0, prepare: 0, write: 0, initialize: 0, deinitialize: 0, release: 0 };

  reset(): void {
    for (const k of Object.keys(this.totals) as PhaseName[]) this.totals[k] = 0;
  }

  /** Sum of all phases, in milliseconds. */
  total(): number {
    let t = 0;
    for (const v of Object.values(this.totals)) t += v;
    return t;
  }

  time<T>(phase: PhaseName, fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.totals[phase] += performance.now() - t0;
    }
  }

  async timeAsync<T>(phase: PhaseName, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.totals[phase] += performance.now() - t0;
    }
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
