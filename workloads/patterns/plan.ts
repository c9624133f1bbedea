import type { LinkGraph } from '../../graph/link-graph.js';

/**
 * A pattern is a deterministic plan: a sequence of steps that a runner carries out against a
 * memory manager (see run-plan.ts) and that the benchmark harness times. Plans hold no state
 * of their own: every call to `steps()` yields the same sequence from the start, so a bench
 * can replay one plan as many times as it samples.
 */

export type PatternName = 'load' | 'churn' | 'update' | 'patch' | 'sweep';

/** Allocate `graph`, write its content and finalize it; `id` names the allocation in later steps. */
export interface AllocateStep {
  readonly op: 'allocate';
  readonly id: number;
  readonly graph: LinkGraph;
}

/** Deallocate these allocations, in one call. */
export interface FreeStep {
  readonly op: 'free';
  readonly ids: readonly number[];
}

/** Overwrite code of the finalized, executable allocation `id` in place, a batch of patches at once. */
export interface PatchStep {
  readonly op: 'patch';
  readonly id: number;
  /** One batch (MemoryMapper.patchCode): each overwrites `bytes` at `offset` of section `section`. */
  readonly patches: ReadonlyArray<{ readonly section: string; readonly offset: number; readonly bytes: Uint8Array }>;
  /** Whether code may be running while the batch goes in (PatchOptions.codeRunning; default true). */
  readonly codeRunning?: boolean;
}

/** Marks where a phase of the plan starts (a churn's steady state, a sweep's next size), for timing. */
export interface PhaseStep {
  readonly op: 'phase';
  readonly name: string;
}

export type Step = AllocateStep | FreeStep | PatchStep | PhaseStep;

export interface Plan {
  readonly pattern: PatternName;
  /** One line saying what the plan does, with its parameters. */
  readonly description: string;
  steps(): Iterable<Step>;
}
