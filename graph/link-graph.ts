import type { AllocGroup } from './alloc-group.js';
import type { AllocActionCallPair } from '../protocol/alloc-actions.js';

/**
 * The unit of allocation: a named list of sections, each with an AllocGroup, an alignment (a
 * power of two), a size, and content bytes or none (zero-fill). Workloads build these from ELF
 * objects; the slab memory manager lays them out (see layout.ts).
 */
export interface Section {
  readonly name: string;
  readonly group: AllocGroup;
  readonly alignment: number;
  readonly size: number;
  /** The section's bytes; absent for zero-fill (NOBITS) sections. Its length equals `size`. */
  readonly content?: Uint8Array;
}

export interface LinkGraph {
  readonly name: string;
  readonly sections: readonly Section[];
  /** Alloc actions to run at finalize (in order) and at deallocation (in reverse). */
  readonly actions?: readonly AllocActionCallPair[];
}
