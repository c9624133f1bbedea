import { JitmemError } from '../../core/errors.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { CodePatcher } from '../../mappers/memory-mapper.js';
import type { AllocateStep, Plan, Step } from './plan.js';

/**
 * Carries out a plan against a memory manager: the slab memory manager over any mapper, or
 * anything with the same shape (the types below are structural, so a manager need not import
 * them). It keeps the live allocations by plan id; whatever is still live when a step fails is
 * deallocated before the error goes on, so a failed run leaks nothing.
 */

export interface PlanFinalizedAllocation {
  sectionAddress(name: string): number;
}

export interface PlanInFlightAllocation<F extends PlanFinalizedAllocation> {
  writeContent(): void;
  finalize(): Promise<F>;
}

export interface PlanMemoryManager<F extends PlanFinalizedAllocation> {
  allocate(graph: LinkGraph): Promise<PlanInFlightAllocation<F>>;
  deallocate(allocs: readonly F[]): Promise<void>;
}

/** The operations a plan makes on its manager and patcher, as timing hooks see them. */
export type PlanOperation = 'allocate' | 'finalize' | 'free' | 'patch';

/**
 * Hooks a benchmark hangs on the runner: each operation runs inside `time`/`timeWrite` (a
 * clock around it), and the others see what happened, outside the timed calls.
 */
export interface PlanHooks<F extends PlanFinalizedAllocation> {
  /** Runs one operation on the manager or patcher; the default just runs it. */
  time?<T>(op: PlanOperation, call: () => Promise<T>): Promise<T>;
  /** Runs writeContent; the default just runs it. */
  timeWrite?(call: () => void): void;
  /** An allocation was finalized for this step. */
  finalized?(step: AllocateStep, alloc: F): void;
  /** These allocations are about to be freed (verification goes here, untimed). */
  beforeFree?(allocs: readonly F[]): Promise<void>;
  /** `bytes` went in at `address` of this allocation. */
  patched?(alloc: F, address: number, bytes: Uint8Array): void;
}

export interface RunPlanOptions<F extends PlanFinalizedAllocation> {
  /** Needed by plans with patch steps. */
  readonly patcher?: CodePatcher;
  /**
   * Called after each step with the allocations live at that point (for sampling stats or
   * checking memory); with `pipelineAllocations`, once per run of allocations, with its last step.
   */
  readonly afterStep?: (step: Step, index: number, live: ReadonlyMap<number, F>) => void | Promise<void>;
  /**
   * Allocate and write each of a run of consecutive allocations, then finalize them together,
   * so that a remote transport pipelines the initialize calls.
   */
  readonly pipelineAllocations?: boolean;
  /** Free whatever is still live when the plan ends (one call), as a benchmark iteration must. */
  readonly freeAtEnd?: boolean;
  readonly hooks?: PlanHooks<F>;
}

export interface PlanRunResult {
  readonly steps: number;
  readonly allocations: number;
  readonly frees: number;
  readonly patches: number;
  readonly peakLive: number;
}

function planError(plan: Plan, index: number, what: string, extra: Record<string, unknown> = {}): JitmemError {
  return new JitmemError('ERR_INVALID_PLAN', `step ${index} of the ${plan.pattern} plan: ${what}`, { pattern: plan.pattern, step: index, ...extra });
}

const untimed = <T>(_op: PlanOperation, call: () => Promise<T>): Promise<T> => call();

export async function runPlan<F extends PlanFinalizedAllocation>(plan: Plan, manager: PlanMemoryManager<F>, options: RunPlanOptions<F> = {}): Promise<PlanRunResult> {
  const hooks = options.hooks ?? {};
  const time = hooks.time ? hooks.time.bind(hooks) : untimed;
  const live = new Map<number, F>();
  let index = 0;
  let allocations = 0;
  let frees = 0;
  let patches = 0;
  let peakLive = 0;
  const free = async (ids: readonly number[]): Promise<void> => {
    const allocs = ids.map((id) => {
      const alloc = live.get(id);
      if (!alloc) throw planError(plan, index, `frees allocation id ${id}, which is not live`, { id });
      return alloc;
    });
    await hooks.beforeFree?.(allocs);
    for (const id of ids) live.delete(id);
    await time('free', () => manager.deallocate(allocs));
    frees += allocs.length;
  };
  const steps = plan.steps()[Symbol.iterator]();
  let next = steps.next();
  try {
    while (!next.done) {
      let step = next.value;
      next = steps.next();
      switch (step.op) {
        case 'allocate': {
          // A run of allocations when pipelining (else just this one): allocate and write each,
          // then finalize them together.
          const batch: Array<{ step: AllocateStep; alloc: PlanInFlightAllocation<F> }> = [];
          const ids = new Set<number>();
          for (;;) {
            const s = step as AllocateStep;
            if (live.has(s.id) || ids.has(s.id)) throw planError(plan, index, `allocation id ${s.id} is already live`, { id: s.id });
            ids.add(s.id);
            const alloc = await time('allocate', () => manager.allocate(s.graph));
            if (hooks.timeWrite) hooks.timeWrite(() => alloc.writeContent());
            else alloc.writeContent();
            batch.push({ step: s, alloc });
            if (!options.pipelineAllocations || next.done || next.value.op !== 'allocate') break;
            index++;
            step = next.value;
            next = steps.next();
          }
          const fins = await time('finalize', () => Promise.all(batch.map((b) => b.alloc.finalize())));
          batch.forEach((b, j) => {
            live.set(b.step.id, fins[j]!);
            hooks.finalized?.(b.step, fins[j]!);
          });
          allocations += batch.length;
          peakLive = Math.max(peakLive, live.size);
          break;
        }
        case 'free':
          await free(step.ids);
          break;
        case 'patch': {
          const alloc = live.get(step.id);
          if (!alloc) throw planError(plan, index, `patches allocation id ${step.id}, which is not live`, { id: step.id });
          const patcher = options.patcher;
          if (!patcher) throw planError(plan, index, 'patch steps need a code patcher (runPlan option "patcher") for this mapper');
          const address = alloc.sectionAddress(step.section) + step.offset;
          const bytes = step.bytes;
          await time('patch', () => patcher.patchCode(address, bytes));
          hooks.patched?.(alloc, address, bytes);
          patches++;
          break;
        }
        case 'phase':
          break;
      }
      await options.afterStep?.(step, index, live);
      index++;
    }
    if (options.freeAtEnd && live.size > 0) await free([...live.keys()]);
  } catch (err) {
    if (live.size > 0) await manager.deallocate([...live.values()]).catch(() => {});
    throw err;
  }
  return { steps: index, allocations, frees, patches, peakLive };
}
