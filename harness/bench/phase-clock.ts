import { performance } from 'node:perf_hooks';
import { ForwardingMapper } from '../../mappers/forwarding-mapper.js';
import type { ExecutorAddrRange, MemoryMapper } from '../../mappers/memory-mapper.js';
import { PHASES, type PhaseName } from '../report/report.js';

/** One timed operation under way. */
interface Operation {
  readonly phase: PhaseName;
  readonly start: number;
  /** While an operation nested inside it runs (reserve inside allocate), its time is the nested one's. */
  suspended: boolean;
  suspendedSince: number;
  suspendedFor: number;
}

/**
 * Time spent in each phase during one iteration. The bench resets it at the start of an
 * iteration and reads it at the end; ReserveTimingMapper and the runner time operations on it.
 *
 * Operations overlap (a pipelined plan keeps up to 64 finalizes and frees in flight, and the
 * next allocate and write run while they are out), so the clock keeps two figures per phase:
 *
 * - `totals`, the phase's share of the iteration's wall time: each instant during which some
 *   operation is under way is split equally among the phases that have an operation under way
 *   then. The shares sum to the iteration's time (the wall time during which at least one
 *   operation was under way), so they can be drawn as parts of it.
 * - `operations`, each operation's own duration, start to end, per phase: the per-operation
 *   latency. With 64 finalizes in flight these durations overlap and sum to many times the
 *   iteration; they say how long one operation waits, never what share of the time it takes.
 */
export class PhaseClock {
  readonly totals: Record<PhaseName, number> = {
    reserve: 0,
    prepare: 0,
    write: 0,
    initialize: 0,
    deinitialize: 0,
    release: 0,
  };
  /** Durations (ms) of the operations that ended since the last reset, per phase. */
  readonly operations: Record<PhaseName, number[]> = {
    reserve: [],
    prepare: [],
    write: [],
    initialize: [],
    deinitialize: [],
    release: [],
  };
  /** Operations under way per phase, not counting suspended ones. */
  private readonly running: Record<PhaseName, number> = {
    reserve: 0,
    prepare: 0,
    write: 0,
    initialize: 0,
    deinitialize: 0,
    release: 0,
  };
  private underway = 0;
  private lastEvent = 0;
  private busy = 0;
  /** The operation that encloses nested ones (an allocate, whose reservations are timed apart). */
  private enclosing: Operation | undefined;

  reset(): void {
    for (const k of PHASES) {
      this.totals[k] = 0;
      this.operations[k] = [];
      this.running[k] = 0;
    }
    this.underway = 0;
    this.busy = 0;
    this.enclosing = undefined;
  }

  /** Wall time during which some timed operation was under way, in milliseconds. */
  total(): number {
    return this.underway > 0 ? this.busy + (performance.now() - this.lastEvent) : this.busy;
  }

  time<T>(phase: PhaseName, fn: () => T): T {
    const op = this.begin(phase);
    try {
      return fn();
    } finally {
      this.end(op);
    }
  }

  async timeAsync<T>(phase: PhaseName, fn: () => Promise<T>): Promise<T> {
    const op = this.begin(phase);
    try {
      return await fn();
    } finally {
      this.end(op);
    }
  }

  /**
   * Times `fn` as an operation that encloses others: an operation timed with `nested` while it
   * runs takes its place (its phase gets that time, and its own duration leaves it out).
   */
  async timeEnclosing<T>(phase: PhaseName, fn: () => Promise<T>): Promise<T> {
    const op = this.begin(phase);
    const outer = this.enclosing;
    this.enclosing = op;
    try {
      return await fn();
    } finally {
      this.enclosing = outer;
      this.end(op);
    }
  }

  /** Times `fn` inside the enclosing operation (see timeEnclosing), or on its own when there is none. */
  async nested<T>(phase: PhaseName, fn: () => Promise<T>): Promise<T> {
    const outer = this.enclosing && !this.enclosing.suspended ? this.enclosing : undefined;
    // One instant for both: the enclosing operation stops counting as the nested one starts.
    const op = this.begin(phase, outer);
    try {
      return await fn();
    } finally {
      this.end(op, outer);
    }
  }

  /** Splits the wall time since the last event among the phases under way. */
  private advance(now: number): void {
    if (this.underway > 0) {
      const dt = now - this.lastEvent;
      let phases = 0;
      for (const k of PHASES) if (this.running[k] > 0) phases++;
      if (phases > 0) for (const k of PHASES) if (this.running[k] > 0) this.totals[k] += dt / phases;
      this.busy += dt;
    }
    this.lastEvent = now;
  }

  private begin(phase: PhaseName, suspend?: Operation): Operation {
    const now = performance.now();
    this.advance(now);
    if (suspend) {
      this.running[suspend.phase]--;
      suspend.suspended = true;
      suspend.suspendedSince = now;
    }
    this.underway++;
    this.running[phase]++;
    return { phase, start: now, suspended: false, suspendedSince: 0, suspendedFor: 0 };
  }

  private end(op: Operation, resume?: Operation): void {
    const now = performance.now();
    this.advance(now);
    this.underway--;
    this.running[op.phase]--;
    this.operations[op.phase].push(now - op.start - op.suspendedFor);
    if (resume) {
      this.running[resume.phase]++;
      resume.suspended = false;
      resume.suspendedFor += now - resume.suspendedSince;
    }
  }
}

/**
 * A MemoryMapper that times its reservations on a PhaseClock. The other phases are timed one
 * level up, around the memory manager's calls (allocate, finalize, deallocate), so that they
 * include the allocator's own work; reserve happens inside allocate and takes its place there
 * while it runs (PhaseClock.nested).
 */
export class ReserveTimingMapper extends ForwardingMapper {
  constructor(
    inner: MemoryMapper,
    private readonly clock: PhaseClock,
  ) {
    super(inner);
    if (inner.reserveWithin)
      this.reserveWithin = (bytes, window) => this.clock.nested('reserve', () => inner.reserveWithin!(bytes, window));
  }

  override reserve(bytes: number): Promise<ExecutorAddrRange> {
    return this.clock.nested('reserve', () => this.inner.reserve(bytes));
  }
}
