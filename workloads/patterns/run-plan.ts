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
  /**
   * These allocations are about to be freed (verification goes here, untimed). `last` is true
   * for the free that ends the plan. With `inFlight` above 1 other operations may still be in
   * flight; `drain` waits for those issued before this free (a check that needs them done
   * calls it first).
   */
  beforeFree?(allocs: readonly F[], context: { readonly last: boolean; drain(): Promise<void> }): Promise<void>;
  /** `bytes` went in at `address` of this allocation (once per patch of a batch, in order). */
  patched?(alloc: F, address: number, bytes: Uint8Array): void;
}

export interface RunPlanOptions<F extends PlanFinalizedAllocation> {
  /** Needed by plans with patch steps. */
  readonly patcher?: CodePatcher;
  /**
   * Called after each step with the allocations live at that point (for sampling stats or
   * checking memory). With `inFlight` above 1, allocations whose finalize has not returned yet
   * are not in `live`.
   */
  readonly afterStep?: (step: Step, index: number, live: ReadonlyMap<number, F>) => void | Promise<void>;
  /**
   * How many finalizes and frees may be in flight at once (default 1: each returns before the
   * next step). Above 1 the runner goes on to the next step without waiting, as far as the
   * plan's order allows: a free waits for the finalize of what it frees, a patch for every
   * operation before it; the manager hands a freed range out again only once its deinitialize
   * has returned. Operations are issued in plan order, so a transport that answers in order
   * (every executor does) applies them in plan order.
   */
  readonly inFlight?: number;
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

/** Operations in flight, at most `limit` at once; the first failure is kept and thrown by settle(). */
class InFlight {
  private readonly pending = new Set<Promise<void>>();
  private failure: { error: unknown } | null = null;

  constructor(private readonly limit: number) {}

  add(op: Promise<unknown>): void {
    const p: Promise<void> = op.then(
      () => {
        this.pending.delete(p);
      },
      (error: unknown) => {
        this.pending.delete(p);
        this.failure ??= { error };
      },
    );
    this.pending.add(p);
  }

  /** Waits until another operation may start. */
  async room(): Promise<void> {
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
    this.rethrow();
  }

  /** Waits for the operations in flight now (not those added later); throws the first failure. */
  async settleCurrent(): Promise<void> {
    await Promise.all([...this.pending]);
    this.rethrow();
  }

  /** Waits for every operation in flight; throws the first failure. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failure) throw this.failure.error;
  }
}

export async function runPlan<F extends PlanFinalizedAllocation>(plan: Plan, manager: PlanMemoryManager<F>, options: RunPlanOptions<F> = {}): Promise<PlanRunResult> {
  const hooks = options.hooks ?? {};
  const time = hooks.time ? hooks.time.bind(hooks) : untimed;
  const limit = options.inFlight ?? 1;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new JitmemError('ERR_INVALID_ARGUMENT', `runPlan: inFlight must be a positive integer; got ${String(options.inFlight)}`, { inFlight: options.inFlight });
  }
  const inFlight = new InFlight(limit);
  /** Finalized allocations by plan id. */
  const live = new Map<number, F>();
  /** Every allocation the plan holds, finalized or on its way, by plan id. */
  const held = new Map<number, Promise<F>>();
  let index = 0;
  let allocations = 0;
  let frees = 0;
  let patches = 0;
  let peakLive = 0;
  const free = (ids: readonly number[], last: boolean): Promise<void> => {
    const waits = ids.map((id) => {
      const alloc = held.get(id);
      if (!alloc) throw planError(plan, index, `frees allocation id ${id}, which is not live`, { id });
      return alloc;
    });
    for (const id of ids) held.delete(id);
    // What was issued before this free, which a check of its allocations may wait for (the
    // free itself joins the operations in flight, so it must not wait for all of them).
    const earlier = inFlight.settleCurrent();
    earlier.catch(() => {});
    return (async () => {
      const allocs = await Promise.all(waits);
      await hooks.beforeFree?.(allocs, { last, drain: () => earlier });
      for (const id of ids) live.delete(id);
      await time('free', () => manager.deallocate(allocs));
      frees += allocs.length;
    })();
  };
  const run = async <T>(op: Promise<T>): Promise<void> => {
    if (limit === 1) {
      await op;
      return;
    }
    inFlight.add(op);
    await inFlight.room();
  };
  try {
    for (const step of plan.steps()) {
      switch (step.op) {
        case 'allocate': {
          if (held.has(step.id)) throw planError(plan, index, `allocation id ${step.id} is already live`, { id: step.id });
          const alloc = await time('allocate', () => manager.allocate(step.graph));
          if (hooks.timeWrite) hooks.timeWrite(() => alloc.writeContent());
          else alloc.writeContent();
          const finalized = time('finalize', () => alloc.finalize()).then((fin) => {
            live.set(step.id, fin);
            hooks.finalized?.(step, fin);
            peakLive = Math.max(peakLive, live.size);
            return fin;
          });
          held.set(step.id, finalized);
          allocations++;
          await run(finalized);
          break;
        }
        case 'free':
          await run(free(step.ids, false));
          break;
        case 'patch': {
          // A patch goes into finalized code and must come after everything before it.
          await inFlight.settle();
          const alloc = live.get(step.id);
          if (!alloc) throw planError(plan, index, `patches allocation id ${step.id}, which is not live`, { id: step.id });
          const patcher = options.patcher;
          if (!patcher) throw planError(plan, index, 'patch steps need a code patcher (runPlan option "patcher") for this mapper');
          const batch = step.patches.map((p) => ({ address: alloc.sectionAddress(p.section) + p.offset, bytes: p.bytes }));
          await time('patch', () => patcher.patchCode(batch, { codeRunning: step.codeRunning ?? true }));
          for (const p of batch) hooks.patched?.(alloc, p.address, p.bytes);
          patches += batch.length;
          break;
        }
        case 'phase':
          break;
      }
      await options.afterStep?.(step, index, live);
      index++;
    }
    await inFlight.settle();
    if (options.freeAtEnd && held.size > 0) await free([...held.keys()], true);
  } catch (err) {
    await inFlight.settle().catch(() => {});
    if (live.size > 0) await manager.deallocate([...live.values()]).catch(() => {});
    throw err;
  }
  return { steps: index, allocations, frees, patches, peakLive };
}
