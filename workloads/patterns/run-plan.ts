import { joinErrors, runAll } from '../../core/cleanup.js';
import { JitmemError } from '../../core/errors.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { CodePatcher } from '../../mappers/memory-mapper.js';
import type { AllocateStep, PatchStep, Plan, Step } from './plan.js';

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
   * for a free that ends the plan: the plan's own last operation when it is a free (only phase
   * markers after it), and freeAtEnd's. With `inFlight` above 1 other operations may still be
   * in flight; `drain` waits for those issued before this free (a check that needs them done
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
  return new JitmemError('ERR_INVALID_PLAN', `step ${index} of the ${plan.pattern} plan: ${what}`, {
    pattern: plan.pattern,
    step: index,
    ...extra,
  });
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

/**
 * The steps in order, the plan's last operation (allocate, free or patch; phase markers are not
 * operations) marked `final`. Every plan ends by freeing what it holds, so its last free is the
 * end of the iteration a benchmark checks; a plan's steps are a pure function of its options, so
 * reading one operation ahead changes nothing.
 */
function* withFinalOperation(steps: Iterable<Step>): Generator<{ step: Step; final: boolean }> {
  let operation: Step | undefined;
  // Phase markers after `operation`, held back with it until the next operation (or the end)
  // shows whether it was the last.
  let markers: Step[] = [];
  for (const step of steps) {
    if (step.op === 'phase' && operation) {
      markers.push(step);
      continue;
    }
    if (operation) {
      yield { step: operation, final: false };
      for (const m of markers) yield { step: m, final: false };
      markers = [];
    }
    if (step.op === 'phase') yield { step, final: false };
    else operation = step;
  }
  if (operation) {
    yield { step: operation, final: true };
    for (const m of markers) yield { step: m, final: false };
  }
}

/** One run of a plan: the allocations it holds and what it has counted so far. */
class PlanRun<F extends PlanFinalizedAllocation> {
  private readonly hooks: PlanHooks<F>;
  private readonly time: NonNullable<PlanHooks<F>['time']>;
  private readonly inFlight: InFlight;
  /** Finalized allocations by plan id. */
  private readonly live = new Map<number, F>();
  /** Every allocation the plan holds, finalized or on its way, by plan id. */
  private readonly held = new Map<number, Promise<F>>();
  private index = 0;
  private allocations = 0;
  private frees = 0;
  private patches = 0;
  private peakLive = 0;

  constructor(
    private readonly plan: Plan,
    private readonly manager: PlanMemoryManager<F>,
    private readonly options: RunPlanOptions<F>,
    private readonly limit: number,
  ) {
    this.hooks = options.hooks ?? {};
    this.time = this.hooks.time ? this.hooks.time.bind(this.hooks) : untimed;
    this.inFlight = new InFlight(limit);
  }

  /** Every step in order; on a failure, frees what is live before the error goes on. */
  async run(): Promise<PlanRunResult> {
    try {
      for (const { step, final } of withFinalOperation(this.plan.steps())) {
        await this.step(step, final);
        await this.options.afterStep?.(step, this.index, this.live);
        this.index++;
      }
      await this.inFlight.settle();
      if (this.options.freeAtEnd && this.held.size > 0) await this.free([...this.held.keys()], true);
    } catch (err) {
      throw joinErrors(err, await this.cleanUpAfter(err));
    }
    const { index: steps, allocations, frees, patches, peakLive } = this;
    return { steps, allocations, frees, patches, peakLive };
  }

  private async step(step: Step, final: boolean): Promise<void> {
    switch (step.op) {
      case 'allocate':
        return this.allocate(step);
      case 'free':
        return this.issue(this.free(step.ids, final));
      case 'patch':
        return this.patch(step);
      case 'phase':
        return;
    }
  }

  /** Allocates and writes the step's graph, then issues its finalize. */
  private async allocate(step: AllocateStep): Promise<void> {
    const { plan, index, hooks, held, live } = this;
    if (held.has(step.id)) throw planError(plan, index, `allocation id ${step.id} is already live`, { id: step.id });
    const alloc = await this.time('allocate', () => this.manager.allocate(step.graph));
    if (hooks.timeWrite) hooks.timeWrite(() => alloc.writeContent());
    else alloc.writeContent();
    const finalized = this.time('finalize', () => alloc.finalize()).then((fin) => {
      live.set(step.id, fin);
      hooks.finalized?.(step, fin);
      this.peakLive = Math.max(this.peakLive, live.size);
      return fin;
    });
    held.set(step.id, finalized);
    this.allocations++;
    await this.issue(finalized);
  }

  /** Frees the allocations `ids` once their finalizes are done (the promise of the free). */
  private free(ids: readonly number[], last: boolean): Promise<void> {
    const waits = ids.map((id) => {
      const alloc = this.held.get(id);
      if (!alloc) throw planError(this.plan, this.index, `frees allocation id ${id}, which is not live`, { id });
      return alloc;
    });
    for (const id of ids) this.held.delete(id);
    // What was issued before this free, which a check of its allocations may wait for (the
    // free itself joins the operations in flight, so it must not wait for all of them).
    const earlier = this.inFlight.settleCurrent();
    // Only beforeFree's drain() awaits `earlier`, and maybe not at all: its failure is the first
    // failure InFlight keeps and settle() throws, so it is not lost here.
    earlier.catch(() => {});
    return (async () => {
      const allocs = await Promise.all(waits);
      await this.hooks.beforeFree?.(allocs, { last, drain: () => earlier });
      for (const id of ids) this.live.delete(id);
      await this.time('free', () => this.manager.deallocate(allocs));
      this.frees += allocs.length;
    })();
  }

  /** Patches finalized code, after every operation before it. */
  private async patch(step: PatchStep): Promise<void> {
    const { plan, index } = this;
    await this.inFlight.settle();
    const alloc = this.live.get(step.id);
    if (!alloc) throw planError(plan, index, `patches allocation id ${step.id}, which is not live`, { id: step.id });
    const patcher = this.options.patcher;
    if (!patcher) {
      throw planError(plan, index, 'patch steps need a code patcher (runPlan option "patcher") for this mapper');
    }
    const batch = step.patches.map((p) => ({ address: alloc.sectionAddress(p.section) + p.offset, bytes: p.bytes }));
    await this.time('patch', () => patcher.patchCode(batch, { codeRunning: step.codeRunning ?? true }));
    for (const p of batch) this.hooks.patched?.(alloc, p.address, p.bytes);
    this.patches += batch.length;
  }

  /** Waits for `op` (one at a time), or adds it to those in flight and waits for room. */
  private async issue<T>(op: Promise<T>): Promise<void> {
    if (this.limit === 1) {
      await op;
      return;
    }
    this.inFlight.add(op);
    await this.inFlight.room();
  }

  /**
   * After a failure: waits for what is in flight and frees what is live. Returns the failures of
   * that cleanup other than `primary` itself (an operation in flight may be what failed).
   */
  private async cleanUpAfter(primary: unknown): Promise<unknown[]> {
    const errors = await runAll([
      () => this.inFlight.settle(),
      () => (this.live.size > 0 ? this.manager.deallocate([...this.live.values()]) : undefined),
    ]);
    return errors.filter((e) => e !== primary);
  }
}

export async function runPlan<F extends PlanFinalizedAllocation>(
  plan: Plan,
  manager: PlanMemoryManager<F>,
  options: RunPlanOptions<F> = {},
): Promise<PlanRunResult> {
  const limit = options.inFlight ?? 1;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `runPlan: inFlight must be a positive integer; got ${String(options.inFlight)}`,
      { inFlight: options.inFlight },
    );
  }
  return new PlanRun(plan, manager, options, limit).run();
}
