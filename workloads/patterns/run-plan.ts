import { JitmemError } from '../../core/errors.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { CodePatcher } from '../../mappers/memory-mapper.js';
import type { Plan, Step } from './plan.js';

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

export interface RunPlanOptions<F extends PlanFinalizedAllocation> {
  /** Needed by plans with patch steps. */
  readonly patcher?: CodePatcher;
  /** Called after each step with the allocations live at that point (for sampling stats or checking memory). */
  readonly afterStep?: (step: Step, index: number, live: ReadonlyMap<number, F>) => void | Promise<void>;
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

export async function runPlan<F extends PlanFinalizedAllocation>(plan: Plan, manager: PlanMemoryManager<F>, options: RunPlanOptions<F> = {}): Promise<PlanRunResult> {
  const live = new Map<number, F>();
  let index = 0;
  let allocations = 0;
  let frees = 0;
  let patches = 0;
  let peakLive = 0;
  try {
    for (const step of plan.steps()) {
      switch (step.op) {
        case 'allocate': {
          if (live.has(step.id)) throw planError(plan, index, `allocation id ${step.id} is already live`, { id: step.id });
          const alloc = await manager.allocate(step.graph);
          alloc.writeContent();
          live.set(step.id, await alloc.finalize());
          allocations++;
          peakLive = Math.max(peakLive, live.size);
          break;
        }
        case 'free': {
          const allocs = step.ids.map((id) => {
            const alloc = live.get(id);
            if (!alloc) throw planError(plan, index, `frees allocation id ${id}, which is not live`, { id });
            return alloc;
          });
          for (const id of step.ids) live.delete(id);
          await manager.deallocate(allocs);
          frees += allocs.length;
          break;
        }
        case 'patch': {
          const alloc = live.get(step.id);
          if (!alloc) throw planError(plan, index, `patches allocation id ${step.id}, which is not live`, { id: step.id });
          if (!options.patcher) throw planError(plan, index, 'patch steps need a code patcher (runPlan option "patcher") for this mapper');
          await options.patcher.patchCode(alloc.sectionAddress(step.section) + step.offset, step.bytes);
          patches++;
          break;
        }
        case 'phase':
          break;
      }
      await options.afterStep?.(step, index, live);
      index++;
    }
  } catch (err) {
    if (live.size > 0) await manager.deallocate([...live.values()]).catch(() => {});
    throw err;
  }
  return { steps: index, allocations, frees, patches, peakLive };
}
