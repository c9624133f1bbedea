import { JitmemError } from '../../core/errors.js';
import type { MemoryMapper } from '../memory-mapper.js';
import { checkFitPolicy } from './free-range-index.js';
import { SlabMemoryManager, type SlabMemoryManagerOptions } from './slab-memory-manager.js';

/**
 * Keeps slabs warm across programs (a controller that runs one program after another over one
 * executor) and across versions (a module re-JIT'd again and again): a slab given back keeps its
 * reservations, so the next program's allocations land on pages the target has already faulted
 * in. Through shared memory that is the executor's mapping of the object and the controller's,
 * both populated; a fresh slab per program means a fresh object, a fault per page on first
 * touch in the controller and zeroed pages in the kernel (python/load: about 2,200 minor faults
 * per iteration fresh, about 60 kept). The pages of a slab given back are in the state
 * deinitialize leaves them: RW-, never executable (or the dual mapping's R-X execution view,
 * never writable).
 *
 * A slab is lent to one user at a time; its user deallocates what it allocated (so the dealloc
 * actions run) before giving it back.
 */

export interface SlabKeeperOptions {
  /** How many idle slabs to keep; one given back beyond that is closed (default 2). */
  readonly maxIdle?: number;
}

export class SlabKeeper {
  readonly mapper: MemoryMapper;
  readonly maxIdle: number;
  /** Idle slabs, the most recently given back last. */
  private readonly idle: SlabMemoryManager[] = [];
  private readonly lent = new Set<SlabMemoryManager>();
  private closed = false;

  constructor(mapper: MemoryMapper, options: SlabKeeperOptions = {}) {
    this.mapper = mapper;
    const maxIdle = options.maxIdle ?? 2;
    if (!Number.isSafeInteger(maxIdle) || maxIdle < 0) {
      throw new JitmemError(
        'ERR_INVALID_ARGUMENT',
        `SlabKeeper: maxIdle must be a non-negative integer; got ${String(options.maxIdle)}`,
        { maxIdle: options.maxIdle },
      );
    }
    this.maxIdle = maxIdle;
  }

  /**
   * A slab for one program or one version: the most recently given back idle slab with the
   * same fit policy whose every reservation lies inside `options.placement` (when one is asked
   * for), else a new one with these options. A kept slab keeps its own granularity: when it is
   * too small it reserves more as any slab does, inside its placement when it has one.
   */
  acquire(options: SlabMemoryManagerOptions = {}): SlabMemoryManager {
    this.checkOpen();
    const policy = checkFitPolicy(options.policy ?? 'first-fit');
    const window = options.placement;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const slab = this.idle[i]!;
      if (slab.policy !== policy) continue;
      if (window && !slab.reservationRanges().every((r) => r.start >= window.start && r.end <= window.end)) continue;
      if (!window && slab.placement) continue;
      this.idle.splice(i, 1);
      this.lent.add(slab);
      return slab;
    }
    const slab = new SlabMemoryManager(this.mapper, options);
    this.lent.add(slab);
    return slab;
  }

  /**
   * Takes back a slab this keeper lent. It must hold no live allocation. It is kept for the
   * next acquire; beyond maxIdle the least recently used idle slab is closed.
   */
  async giveBack(slab: SlabMemoryManager): Promise<void> {
    if (!this.lent.has(slab)) {
      throw new JitmemError(
        'ERR_UNKNOWN_SLAB',
        'giveBack: this slab memory manager was not lent by this keeper (or was given back already)',
        {},
      );
    }
    const live = slab.stats().liveAllocations;
    if (live > 0) {
      throw new JitmemError(
        'ERR_SLAB_IN_USE',
        `giveBack: the slab still holds ${live} live allocation(s); deallocate them first, so their dealloc actions run`,
        { live },
      );
    }
    this.lent.delete(slab);
    if (this.closed) {
      await slab.close();
      return;
    }
    this.idle.push(slab);
    while (this.idle.length > this.maxIdle) await this.idle.shift()!.close();
  }

  /** The number of idle slabs kept now. */
  get idleCount(): number {
    return this.idle.length;
  }

  /** Closes the idle slabs; slabs still lent are closed when they are given back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const idle = this.idle.splice(0);
    for (const slab of idle) await slab.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_KEEPER_CLOSED', 'this SlabKeeper is closed', {});
  }
}
