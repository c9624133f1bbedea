import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';
import type { WorkloadOptions } from '../../workloads/workload-sources.js';
import type {
  BudgetRow,
  ExecutorName,
  MachineSpeed,
  MapperName,
  Placement,
  Report,
  ResultRow,
  SamplingGroup,
} from '../report/report.js';
import {
  collectGarbage,
  firstUnsettled,
  headlinesSettledToStop,
  type Unsettled,
  groupWidths,
  roundOrder,
  roundsNeeded,
  widerThan,
  withRounds,
} from './sampling.js';

export { withRounds };
import { pinAllThreads } from './thread-affinity.js';
import { CellRunner, cellName, type MapperHandle } from './cell-runner.js';
import type { PlannedCell } from './matrix.js';
import { captureEnvironment, cpuPlan } from './environment.js';
import { openHandle, llvmExecutorAvailable, type HandleOptions } from './mapper-handles.js';
import { planCells, type MatrixSelection, type Preset, type SkippedCell } from './matrix.js';
import { computeRatios, extraTimeBudgets, transportRatioBudgets } from './ratios.js';
import { RoundTripProbeSession, roundTripBudget, type RoundTripProbe } from './round-trip-probe.js';
import { MachineSpeedMonitor } from './machine-speed.js';
import { speedBudgets } from './speed-budgets.js';
import {
  jitmemLinkerAvailable,
  planRunCells,
  runCellName,
  runEndToEnd,
  WARM_CONTROLLER_V8_FLAGS,
  WARM_CONTROLLER_WARMUP,
  type RunSkip,
} from './run-cells.js';
import { findLlvm } from './llvm-jitlink.js';
import type { RunProgram } from '../../workloads/run-programs.js';
import { endToEndBudgets, endToEndHeadlines } from './end-to-end.js';
import type { EndToEndSection } from '../report/report.js';

/**
 * A whole bench run: plan the cells, run each against a freshly opened transport, and put the
 * rows, the ratios measured within this run, the budgets and the environment into a report.
 */

export type OpenHandle = (mapper: MapperName, executor: ExecutorName, options: HandleOptions) => Promise<MapperHandle>;

/** What the bench expects to measure, before the first cell: the opening line's count and estimate. */
export interface BenchPlan {
  /**
   * Expected milliseconds of each matrix cell, by cell index (sampling time, warm-up, opening its
   * transport). With a precision target, `budgetMs` is the cell's part of its group's share of
   * the time budget: its group runs rounds until that is spent (or its speedups are known).
   */
  readonly cells: ReadonlyArray<{ readonly name: string; readonly expectedMs: number; readonly budgetMs?: number }>;
  /** Measurement rounds per cell. */
  readonly rounds: number;
  /**
   * The run pattern, before the matrix: its set-up (start-up figures, a warm-up process per
   * program and linker) and its cells by name (as its progress events name them), each with its
   * iterations and expected milliseconds. With a precision target, `budgetMs` is its share of the
   * time budget: it runs rounds until that is spent (or its speedups are known).
   */
  readonly run?: {
    readonly setupMs: number;
    readonly cells: ReadonlyArray<{ readonly name: string; readonly iterations: number; readonly expectedMs: number }>;
    readonly budgetMs?: number;
  };
}

export type BenchProgress =
  | { readonly kind: 'plan'; readonly plan: BenchPlan }
  | { readonly kind: 'cell-start'; readonly index: number; readonly total: number; readonly cell: string }
  | {
      readonly kind: 'iteration';
      readonly index: number;
      readonly total: number;
      readonly cell: string;
      readonly iterations: number;
      /** Rounds of this cell finished before this iteration's round, of `rounds`. */
      readonly round?: number;
      readonly rounds?: number;
    }
  | {
      readonly kind: 'cell-done';
      readonly index: number;
      readonly total: number;
      readonly cell: string;
      readonly row: ResultRow;
    }
  /** The run pattern: `done` of `total` iterations of a cell measured and verified. */
  | { readonly kind: 'run'; readonly cell: string; readonly done: number; readonly total: number };

export interface BenchRunOptions {
  readonly selection: MatrixSelection;
  readonly preset: Preset | 'custom';
  readonly seed: number;
  readonly cold: boolean;
  readonly pin: Placement['pin'];
  /** Reservation granularity in bytes (llvm-jitlink's is 1 GiB). */
  readonly granularity: number;
  /**
   * Granularity for churn cells. Fit policies only differ once the slab is tight enough for
   * fragmentation to cost reservations; in a 1 GiB slab both policies reserve one slab.
   */
  readonly churnGranularity?: number;
  /** Interleaved measurement rounds per group of cells (default 8); the least with --precision. */
  readonly rounds?: number;
  /**
   * Keep adding rounds to each group until every speedup's 95% CI half-width is at most this
   * many percent of the speedup (absent: exactly `rounds` rounds).
   */
  readonly precision?: number;
  /** The whole run's time budget with a precision target, in ms (each group gets its share of what is left). */
  readonly maxTimeMs?: number;
  /** A young-generation GC before each round, outside the timed phases (default true). */
  readonly gcBetweenRounds?: boolean;
  readonly workloadOptions: WorkloadOptions;
  readonly llvmExecutor?: string;
  /** LLVM's bin directory for the run pattern's llvm-jitlink (default JITMEM_LLVM_DIR or /usr/lib/llvm-22/bin). */
  readonly llvmDir?: string;
  /**
   * Whether the run pattern measures llvm-jitlink beside jitmem when it is installed (default
   * true: the presets' --executor list is about the executor behind our mappers).
   */
  readonly runLlvm?: boolean;
  readonly repoDir: string;
  readonly command?: readonly string[];
  readonly onProgress?: (event: BenchProgress) => void;
  /**
   * Measure a no-op round trip beside a sequential one-page finalize (shared memory, jitmem
   * executor) after the cells, for the budget that relates them.
   */
  readonly probeRoundTrip?: boolean;
  /** Opens the transport of a cell; tests substitute their own (a corrupting mapper, say). */
  readonly openHandle?: OpenHandle;
}

export interface BenchRunResult {
  readonly report: Report;
  readonly skipped: readonly SkippedCell[];
}

function toolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Interleaved rounds per group of cells unless the caller says otherwise (the least, with a precision target). */
export const DEFAULT_ROUNDS = 8;

/** Unrecorded iterations each cell runs at the start of every round after its first. */
export const WARMUP_PER_ROUND = 1;

/**
 * Iterations of each cell in one round at most: past a few hundred, a round's median is as
 * good as it gets, and the time goes further spent on more rounds (more pairs).
 */
export const MAX_ITERATIONS_PER_ROUND = 256;

/**
 * Iterations a cell runs back to back each time its turn comes within a round. A cell's first
 * iteration after another cell's finds the caches and TLB as the other left them: measured under
 * a CPU hog, python's dual-mapped iteration took 4.2 ms after in-process and 5.9 ms after shared
 * memory, so with one iteration per turn its samples alternated between two modes and a round's
 * median fell on either (the dual-mapped speedups spread ±8-15% over 8 rounds). With four, three
 * in four iterations follow their own cell and the median lies among them (±1-6%).
 */
export const ITERATIONS_PER_TURN = 4;

/** Rounds a group stops at even short of its precision (a bound on the report's size). */
export const MAX_ROUNDS = 400;

/**
 * The share of a precision run's time budget kept for the run pattern (end to end), when it runs.
 * The matrix's churn groups, measured last, took up to 29 rounds to settle at 3% (7-9 s each)
 * where half the budget left them 18; the run pattern's warm controllers, sampled over
 * generations, stay wider than 3% in the default budget either way.
 */
export const RUN_SHARE = 0.45;

/** Warm-up before a cell's first round: JIT tiers settle over the first few hundred milliseconds. */
function warmupTimeOf(time: number): number {
  return Math.min(500, Math.max(100, time / 4));
}

/**
 * Expected wall time of a run's parts, for the progress line's estimate before anything is
 * measured (the view corrects it with the rounds measured since). A matrix cell: its sampling
 * time, its warm-up, and opening its transport (an executor start for the remote mappers). The
 * run pattern: a process per iteration, cray's a fraction of CPython's.
 */
export function benchPlan(
  options: Pick<BenchRunOptions, 'selection' | 'llvmDir' | 'runLlvm' | 'precision' | 'maxTimeMs'>,
  cells: readonly PlannedCell[],
  rounds: number,
): BenchPlan {
  const time = options.selection.time;
  const budgets = cellBudgets(options, cells);
  const planned = cells.map((cell, i) => {
    const open = (cell.executor === 'none' ? 20 : 150) + (cell.pattern === 'sweep' ? cell.contentHint / (64 << 10) : 0);
    const fixed = time + warmupTimeOf(time) + open;
    const budgetMs = budgets[i];
    // A group's budget starts once its transports are open, and it runs its least rounds even past it.
    return budgetMs === undefined
      ? { name: cellName(cell), expectedMs: fixed }
      : { name: cellName(cell), expectedMs: Math.max(fixed, budgetMs + open), budgetMs };
  });
  if (!options.selection.patterns.includes('run')) return { cells: planned, rounds };
  const llvm = options.runLlvm !== false && findLlvm(options.llvmDir).tools !== undefined;
  const mappers = options.selection.mappers.filter((m) => m !== 'dualmap');
  // A process that links and runs the program, as measured on a 2-vCPU machine with the native
  // executor (cray renders a small scene).
  const PROCESS_MS: Record<string, number> = { cray: 230, python: 420, 'python-script': 560 };
  const iterations = options.selection.runIterations;
  const run: Array<{ name: string; iterations: number; expectedMs: number }> = [];
  // Start-up figures: a spawn per sample of each executor kind and of bare Node.
  let setupMs = options.selection.startupSamples * 4 * 90;
  for (const workload of options.selection.workloads) {
    const names =
      workload === 'python' ? (options.selection.runScript ? ['python', 'python-script'] : ['python']) : [workload];
    for (const name of names) {
      const perProcess = PROCESS_MS[name] ?? 400;
      const cells = planRunCells({ name } as RunProgram, mappers, jitmemLinkerAvailable(), llvm);
      // One unrecorded warm-up process per program and linker.
      setupMs += perProcess * new Set(cells.map((c) => c.linker)).size;
      for (const c of cells) {
        // llvm-jitlink and a warm controller skip the Node start a process per run pays; the warm controller also runs
        // its warm-up iterations.
        const each =
          c.controller === 'warm' ? perProcess / 5 : c.linker === 'llvm-jitlink' ? perProcess / 2 : perProcess;
        const warmup = c.controller === 'warm' ? WARM_CONTROLLER_WARMUP : 0;
        run.push({
          name: runCellName(c),
          iterations,
          expectedMs: each * (iterations + warmup) + (c.controller === 'warm' ? perProcess : 0),
        });
      }
    }
  }
  const maxTimeMs = options.maxTimeMs ?? Infinity;
  const budgetMs =
    options.precision !== undefined && Number.isFinite(maxTimeMs)
      ? maxTimeMs * runShareOf(options, cells.length)
      : undefined;
  return { cells: planned, rounds, run: { setupMs, cells: run, ...(budgetMs !== undefined ? { budgetMs } : {}) } };
}

/**
 * With a precision target and a time budget: each matrix cell's part of its group's share of
 * what the run pattern's share leaves of the budget (the groups share it equally, as runBench
 * gives each group its share of the time left; the cells of a group run side by side).
 * Undefined entries without a target.
 */
function cellBudgets(
  options: Pick<BenchRunOptions, 'selection' | 'precision' | 'maxTimeMs'>,
  cells: readonly PlannedCell[],
): Array<number | undefined> {
  const maxTimeMs = options.maxTimeMs ?? Infinity;
  if (options.precision === undefined || !Number.isFinite(maxTimeMs) || cells.length === 0)
    return cells.map(() => undefined);
  const groups = groupForRatios(cells);
  const matrixMs = maxTimeMs * (1 - runShareOf(options, cells.length));
  const budgets: Array<number | undefined> = cells.map(() => undefined);
  for (const group of groups.values())
    for (const { index } of group) budgets[index] = matrixMs / groups.size / group.length;
  return budgets;
}

/** One cell of the group being measured, with its open transport and its runner. */
interface ActiveCell {
  readonly cell: PlannedCell;
  readonly index: number;
  readonly name: string;
  readonly handle: MapperHandle;
  readonly runner: CellRunner;
}

/** What the matrix's groups record as they run, by cell index: the steps below read it or add to it. */
interface MatrixRecord {
  readonly total: number;
  readonly rounds: number;
  readonly skipped: SkippedCell[];
  /** CPUs the controller was seen on. */
  readonly seen: Set<number>;
  readonly rowAt: Map<number, ResultRow>;
  readonly roundOf: Map<number, number>;
  /**
   * Measured iterations of each cell so far, and where each round ended: the rounds of a group
   * run its mappers back to back, so per-round medians pair up into per-round ratios.
   */
  readonly iterationsDone: Map<number, number>;
  readonly roundEnds: Map<number, number[]>;
  readonly positions: Map<number, number[]>;
  /** The fixed walk, timed before each round: how fast the machine itself ran. */
  readonly machineSpeed: MachineSpeedMonitor;
}

/** How a group's rounds ended: how many ran, and the widest speedup intervals when a precision target was set. */
interface RoundsOutcome {
  readonly round: number;
  readonly widest: { label: string; percent: number } | undefined;
  readonly widestAny: { label: string; percent: number } | undefined;
  readonly converged: boolean;
  /** Every speedup still wider than the precision when sampling stopped, widest first (waited for or not). */
  readonly wide: ReadonlyArray<{ label: string; percent: number; headline?: true }>;
  /** A headline whose verdict is not settled (see sampling.ts verdictOf). */
  readonly unsettled?: Unsettled;
}

/**
 * Cells whose ratios are taken (same workload, pattern and policy) are measured together, in
 * interleaved rounds; each group's transports are open for its whole measurement.
 */
function groupForRatios(cells: readonly PlannedCell[]): Map<string, Array<{ cell: PlannedCell; index: number }>> {
  const groups = new Map<string, Array<{ cell: PlannedCell; index: number }>>();
  cells.forEach((cell, index) => {
    const key = `${cell.workload}\0${cell.pattern}\0${cell.policy}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push({ cell, index });
  });
  return groups;
}

/**
 * The order the matrix's groups are measured in: patterns whose iterations are short and steady
 * first (sweep, patch, update), then load, then churn, each in the plan's order. A group's budget
 * is its share of the matrix's time left, so what the first leave goes to the last: measured in
 * the plan's order, five default runs ended python/load and the four churn groups NOT CONVERGED
 * (±4-27% after about 4.7 s each) while the sweep, patch and update groups after them converged
 * well within their share.
 */
const MEASURING_ORDER: readonly string[] = ['sweep', 'patch', 'update', 'load', 'churn'];

function measuringOrder<T extends ReadonlyArray<{ cell: PlannedCell }>>(groups: Iterable<T>): T[] {
  const rank = (g: T) => {
    const i = MEASURING_ORDER.indexOf(g[0]!.cell.pattern);
    return i < 0 ? MEASURING_ORDER.length : i;
  };
  // Array.prototype.sort is stable: groups of one pattern keep the plan's order.
  return [...groups].sort((a, b) => rank(a) - rank(b));
}

/**
 * The part of the time budget the run pattern is given, when it runs: it goes first, and the
 * matrix's groups share what it left until the budget's end. Its least rounds are whole
 * processes (three rounds of every process per run, three generations of each warm program) and
 * run past its share on a slower machine; the matrix's groups, whose rounds take milliseconds,
 * absorb that, so that a run ends near its budget on any machine. With the matrix first, on a
 * 2-vCPU machine whose processes ran 1.5-2x slower than the reference figures, the run pattern's
 * least rounds took 62-64 s of its 52 and the bench ended 13 s past its budget.
 */
function runShareOf(options: Pick<BenchRunOptions, 'selection'>, cellCount: number): number {
  const withRun = options.selection.patterns.includes('run');
  return withRun && cellCount > 0 ? RUN_SHARE : withRun ? 1 : 0;
}

/**
 * Opens each cell's transport and its runner into `active` (the caller closes them, also when
 * one fails to open); a patch cell whose mapper cannot patch in place is skipped with the reason.
 */
async function openGroup(
  group: ReadonlyArray<{ cell: PlannedCell; index: number }>,
  active: ActiveCell[],
  options: BenchRunOptions,
  record: MatrixRecord,
  executorCpus: number[] | null,
): Promise<void> {
  const open = options.openHandle ?? openHandle;
  for (const { cell, index } of group) {
    const name = cellName(cell);
    options.onProgress?.({ kind: 'cell-start', index, total: record.total, cell: name });
    const handle = await open(cell.mapper, cell.executor, {
      executorCpus,
      cell: {
        workload: cell.workload,
        pattern: cell.pattern,
        mapper: cell.mapper,
        executor: cell.executor,
        policy: cell.policy,
      },
      ...(options.llvmExecutor ? { llvmExecutor: options.llvmExecutor } : {}),
    });
    if (cell.pattern === 'patch' && !handle.patch) {
      record.skipped.push({
        cell: name,
        code: 'no-patch-in-place',
        reason: `the ${cell.mapper} mapper${cell.executor === 'llvm' ? " over LLVM's executor" : ''} cannot patch finalized code in place`,
      });
      await handle.close();
      continue;
    }
    const runner = new CellRunner(cell, handle, cell.plan, {
      time: options.selection.time,
      iterations: options.selection.iterations,
      warmupIterations: 2,
      // JIT tiers settle over the first few hundred milliseconds of a cell: runRound warms the
      // cells up interleaved for that long before the first round (runRound), not one by one here.
      warmupTime: 0,
      cold: options.cold || cell.forceCold,
      granularity: cell.pattern === 'churn' ? (options.churnGranularity ?? options.granularity) : options.granularity,
      onIteration: (iterations) => {
        record.iterationsDone.set(index, iterations);
        options.onProgress?.({
          kind: 'iteration',
          index,
          total: record.total,
          cell: name,
          iterations,
          round: record.roundOf.get(index) ?? 0,
          rounds: record.rounds,
        });
      },
    });
    active.push({ cell, index, name, handle, runner });
  }
}

/**
 * Turns of the cells of a round, forward and backward by passes (A B C D D C B A ...), each turn
 * ITERATIONS_PER_TURN iterations of one cell, until `until` (ms) and at least `passes` passes,
 * at most `maxIterations` of each cell: a drift of the machine's speed falls on every cell of
 * the round alike.
 */
async function interleave(
  active: readonly ActiveCell[],
  round: number,
  passes: number,
  until: number,
  maxIterations: number,
  step: (a: ActiveCell) => Promise<unknown>,
): Promise<void> {
  for (
    let pass = 0;
    active.length && (pass + 1) * ITERATIONS_PER_TURN <= maxIterations && (pass < passes || performance.now() < until);
    pass++
  ) {
    for (const k of roundOrder(active.length, round + pass))
      for (let i = 0; i < ITERATIONS_PER_TURN; i++) await step(active[k]!);
  }
}

/**
 * One round of a group: a young-generation GC, each cell's warm-up, then the cells' interleaved
 * turns until the round's time is spent. The first round warms up as it will measure, the cells
 * interleaved, for the warm-up time of each (its first iterations also checking every free, see
 * CellRunner.firstRoundWarmupStep): warmed up one after the other, python's first measured
 * iterations still ran 2-3x slower than the rest of the round.
 */
async function runRound(
  active: readonly ActiveCell[],
  round: number,
  options: BenchRunOptions,
  record: MatrixRecord,
): Promise<void> {
  const roundTime = options.selection.time / record.rounds;
  const passes = Math.ceil(options.selection.iterations / record.rounds / ITERATIONS_PER_TURN);
  if (options.gcBetweenRounds !== false) collectGarbage('minor');
  // On the CPU the round's cells run on, with nothing of theirs in flight.
  record.machineSpeed.sample('matrix');
  for (const a of active) {
    record.roundOf.set(a.index, round);
    if (round > 0) await a.runner.warmup(WARMUP_PER_ROUND);
  }
  if (round === 0) {
    const warmup = warmupTimeOf(options.selection.time) * active.length;
    await interleave(active, round, 1, performance.now() + warmup, Infinity, (a) => a.runner.firstRoundWarmupStep());
  }
  for (const a of active) await a.runner.beginMeasuring();
  const until = performance.now() + roundTime * active.length;
  await interleave(active, round, passes, until, MAX_ITERATIONS_PER_ROUND, (a) => a.runner.step());
  for (const [position, k] of roundOrder(active.length, round).entries()) {
    const a = active[k]!;
    await a.runner.endMeasuring();
    record.roundEnds.set(a.index, [...(record.roundEnds.get(a.index) ?? []), record.iterationsDone.get(a.index) ?? 0]);
    record.positions.set(a.index, [...(record.positions.get(a.index) ?? []), position]);
  }
}

/**
 * Rounds: at least `rounds`; with a precision target, more until every speedup the selection
 * waits for (`precisionWaitsFor`: all of the group's ratios, the headlines and those with an
 * in-process or dual-mapped side, or the headlines only) is known to it and every headline's
 * verdict is settled, or the group's time `budget` (from `groupStart`) is spent.
 */
async function measureRounds(
  active: readonly ActiveCell[],
  options: BenchRunOptions,
  record: MatrixRecord,
  groupStart: number,
  budget: number,
): Promise<RoundsOutcome> {
  const precision = options.precision;
  let round = 0;
  let widest: { label: string; percent: number } | undefined;
  let widestAny: { label: string; percent: number } | undefined;
  let converged = precision === undefined;
  let unsettled: Unsettled | undefined;
  let wide: Array<{ label: string; percent: number; headline?: true }> = [];
  for (;;) {
    await runRound(active, round, options, record);
    round++;
    // With a precision target the time budget wins over the least rounds, down to the three
    // a paired interval needs: a loaded machine must not push the run past its budget.
    const overBudget = precision !== undefined && round >= 3 && performance.now() - groupStart >= budget;
    if (round < record.rounds && !overBudget) continue;
    if (precision === undefined) break;
    let ratios;
    ({ ratios, widest, widestAny } = groupWidths(
      active.map((a) => ({ row: a.cell, samples: a.runner.latencies, roundEnds: record.roundEnds.get(a.index) ?? [] })),
      options.seed,
      options.selection.precisionWaitsFor,
    ));
    // Every speedup narrow enough, and no headline ending so close to 1 that its verdict could go either way.
    unsettled = firstUnsettled(ratios, precision);
    wide = widerThan(ratios, precision);
    converged = (!widest || widest.percent <= precision) && !unsettled;
    // Stopping before the budget is spent asks more of the verdicts than reading them (sampling.ts isSettledToStop).
    const stop = converged && headlinesSettledToStop(ratios, precision);
    if (stop || performance.now() - groupStart >= budget || round >= MAX_ROUNDS) break;
  }
  return { round, widest, widestAny, converged, wide, ...(unsettled ? { unsettled } : {}) };
}

/** The report's account of a group's sampling: rounds, time, and how far from its precision target it ended. */
function samplingGroupOf(
  first: PlannedCell,
  outcome: RoundsOutcome,
  elapsedMs: number,
  precision: number | undefined,
  waitsFor: 'every' | 'headlines',
): SamplingGroup {
  const { round, widest, widestAny, converged, unsettled, wide } = outcome;
  const percent = (x: number) => Math.round(x * 100) / 100;
  const needed =
    precision !== undefined && widest && widest.percent > precision
      ? roundsNeeded(round, widest.percent, precision)
      : undefined;
  return {
    workload: first.workload,
    pattern: first.pattern,
    policy: first.policy,
    rounds: round,
    elapsedMs: Math.round(elapsedMs),
    converged,
    ...(widest ? { widest: { label: widest.label, percent: percent(widest.percent) } } : {}),
    ...(widestAny ? { widestAny: { label: widestAny.label, percent: percent(widestAny.percent) } } : {}),
    ...(precision !== undefined
      ? {
          waitedFor: waitsFor,
          notConverged: wide.map((w) => ({
            label: w.label,
            percent: percent(w.percent),
            ...(w.headline ? { headline: true } : {}),
          })),
        }
      : {}),
    ...(unsettled && !converged ? { unsettled } : {}),
    ...(needed !== undefined && Number.isFinite(needed)
      ? { roundsNeeded: needed, secondsNeeded: Math.round(((elapsedMs / round) * needed) / 1000) }
      : {}),
  };
}

/** Each measured cell's row, with its rounds, recorded and announced. */
async function finishGroup(active: readonly ActiveCell[], options: BenchRunOptions, record: MatrixRecord) {
  for (const a of active) {
    const row = withRounds(await a.runner.finish(), record.roundEnds.get(a.index) ?? [], record.positions.get(a.index));
    for (const c of a.runner.controllerCpus) record.seen.add(c);
    record.rowAt.set(a.index, row);
    options.onProgress?.({ kind: 'cell-done', index: a.index, total: record.total, cell: a.name, row });
  }
}

/**
 * Measures one group of cells (open, rounds, rows) with its share `budget` of the time left;
 * its transports are closed whatever happens. Returns its sampling account, none when no cell ran.
 */
async function runGroup(
  group: ReadonlyArray<{ cell: PlannedCell; index: number }>,
  options: BenchRunOptions,
  record: MatrixRecord,
  cpus: { controller: number[] | null; executor: number[] | null },
  budgetOf: (groupStart: number) => number,
): Promise<SamplingGroup | undefined> {
  const active: ActiveCell[] = [];
  // Pinned, every thread of both processes is (thread-affinity.ts says why), for the group's
  // measurement; this process's helper threads are set free again after it.
  let unpin: (() => void) | undefined;
  try {
    await openGroup(group, active, options, record, cpus.executor);
    if (cpus.controller) unpin = pinAllThreads(cpus.controller);
    for (const a of active)
      if (cpus.executor && a.handle.executorPid) pinAllThreads(cpus.executor, a.handle.executorPid);
    const groupStart = performance.now();
    const outcome = await measureRounds(active, options, record, groupStart, budgetOf(groupStart));
    const sampling = active.length
      ? samplingGroupOf(
          active[0]!.cell,
          outcome,
          performance.now() - groupStart,
          options.precision,
          options.selection.precisionWaitsFor,
        )
      : undefined;
    await finishGroup(active, options, record);
    return sampling;
  } finally {
    unpin?.();
    for (const a of active) await a.handle.close();
  }
}

/**
 * The run pattern (end to end), before the matrix, with the time budget until `deadline` (see
 * runShareOf). Its processes run where the scheduler puts them (the controller's CPUs before
 * --pin): a program's run is milliseconds, not a round trip, and the linkers (llvm-jitlink links
 * on several threads) use the machine as a user's would (docs/measurement.md); the controller is
 * pinned again after it.
 */
async function runPatternFirst(
  options: BenchRunOptions,
  rounds: number,
  deadline: number,
  affinity: { pinned: number[] | null; allowed: number[] },
  machineSpeed: MachineSpeedMonitor,
) {
  const precision = options.precision;
  if (affinity.pinned) native.setAffinity(0, affinity.allowed);
  const run = await runEndToEnd({
    workloads: options.selection.workloads,
    workloadOptions: options.workloadOptions,
    // The run pattern links through jitlink's program targets (in-process, shared memory, RPC
    // copy); the dual mapping is not one of them.
    mappers: options.selection.mappers.filter((m) => m !== 'dualmap'),
    iterations: options.selection.runIterations,
    rounds,
    startupSamples: options.selection.startupSamples,
    withScript: options.selection.runScript,
    withoutLlvm: options.runLlvm === false,
    ...(options.llvmDir ? { llvmDir: options.llvmDir } : {}),
    onProgress: (cell, done, total) => options.onProgress?.({ kind: 'run', cell, done, total }),
    beforeRound: () => machineSpeed.sample('run'),
    ...(precision !== undefined ? { precision, deadline } : {}),
  });
  if (affinity.pinned) native.setAffinity(0, affinity.pinned);
  const section: EndToEndSection = {
    ...run.section,
    placement: {
      allowedCpus: affinity.allowed,
      warmControllerV8Flags: [...WARM_CONTROLLER_V8_FLAGS],
      warmControllerWarmup: WARM_CONTROLLER_WARMUP,
    },
  };
  return { ...run, section };
}

/**
 * Blocks of the round-trip probe taken at each end of the run (before the run pattern, when it
 * runs, and after the matrix's last group), so that the probe sees the machine at both; the rest
 * are taken one after each of the matrix's groups.
 */
const PROBE_BLOCKS_AT_EACH_END = 4;

/** Everything a run measured, for the report. */
interface Measured {
  readonly rows: ResultRow[];
  readonly placement: Placement;
  readonly rounds: number;
  readonly maxTimeMs: number;
  readonly samplingGroups: SamplingGroup[];
  readonly endToEnd: EndToEndSection | undefined;
  readonly probe: RoundTripProbe | undefined;
  readonly machineSpeed: MachineSpeed | undefined;
}

/** The report: the rows, the ratios and budgets computed from them, the environment and how sampling went. */
function assembleReport(options: BenchRunOptions, measured: Measured): Report {
  const { rows, placement, rounds, maxTimeMs, samplingGroups, endToEnd, probe, machineSpeed } = measured;
  const precision = options.precision;
  if (endToEnd) endToEnd.headlines = endToEndHeadlines(rows, options.seed);
  const budgets: BudgetRow[] = [
    ...extraTimeBudgets(rows),
    ...transportRatioBudgets(rows),
    ...speedBudgets(rows),
    ...(probe ? [roundTripBudget(probe)] : []),
    ...(endToEnd ? endToEndBudgets(rows, endToEnd) : []),
  ];
  return {
    schema: 1,
    tool: { name: 'jitmem', version: toolVersion() },
    createdAt: new Date().toISOString(),
    ...(options.command ? { command: [...options.command] } : {}),
    options: {
      preset: options.preset,
      seed: options.seed,
      cold: options.cold,
      pin: options.pin,
      time: options.selection.time,
      iterations: options.selection.iterations,
    },
    env: captureEnvironment(placement, options.repoDir),
    results: rows,
    // The run pattern's speedups compare linkers too: they are the end-to-end headlines.
    ratios: computeRatios(
      rows.filter((r) => r.pattern !== 'run'),
      options.seed,
    ),
    budgets,
    ...(endToEnd ? { endToEnd } : {}),
    sampling: {
      ...(precision !== undefined ? { precision } : {}),
      ...(Number.isFinite(maxTimeMs) ? { maxTimeMs } : {}),
      minRounds: rounds,
      gcBetweenRounds: options.gcBetweenRounds !== false,
      warmupPerRound: WARMUP_PER_ROUND,
      groups: samplingGroups,
      ...(machineSpeed ? { machineSpeed } : {}),
    },
  };
}

/** Where the controller and the executor were allowed to run, and where the controller was seen. */
function placementOf(
  pin: BenchRunOptions['pin'],
  cpus: { controller: number[] | null; executor: number[] | null },
  originalAffinity: number[],
  seen: ReadonlySet<number>,
): Placement {
  return {
    pin,
    controllerCpus: cpus.controller ?? originalAffinity,
    executorCpus: cpus.executor ?? originalAffinity,
    controllerSeenOn: [...seen].sort((a, b) => a - b),
  };
}

export async function runBench(options: BenchRunOptions): Promise<BenchRunResult> {
  const llvmInstalled = llvmExecutorAvailable(options.llvmExecutor);
  const { cells, skipped: plannedSkips } = planCells(
    options.selection,
    options.seed,
    llvmInstalled,
    options.workloadOptions,
  );
  const cpus = cpuPlan(options.pin);
  const originalAffinity = native.getAffinity(0);
  if (cpus.controller) native.setAffinity(0, cpus.controller);
  const rounds = Math.max(1, options.rounds ?? DEFAULT_ROUNDS);
  const record: MatrixRecord = {
    total: cells.length,
    rounds,
    skipped: [...plannedSkips],
    seen: new Set<number>(),
    rowAt: new Map(),
    roundOf: new Map(),
    iterationsDone: new Map(),
    roundEnds: new Map(),
    positions: new Map(),
    machineSpeed: new MachineSpeedMonitor(),
  };
  const groups = groupForRatios(cells);
  options.onProgress?.({ kind: 'plan', plan: benchPlan(options, cells, rounds) });
  const rows: ResultRow[] = [];
  let endToEnd: EndToEndSection | undefined;
  const runSkips: RunSkip[] = [];
  let probe: RoundTripProbe | undefined;
  let probeSession: RoundTripProbeSession | undefined;
  const started = performance.now();
  const maxTimeMs = options.maxTimeMs ?? Infinity;
  const samplingGroups: SamplingGroup[] = [];
  let run: Awaited<ReturnType<typeof runPatternFirst>> | undefined;
  try {
    if (options.probeRoundTrip) probeSession = await RoundTripProbeSession.open({ executorCpus: cpus.executor });
    if (options.selection.patterns.includes('run')) {
      // The round-trip probe sees the machine at both ends of the run: blocks before the run pattern, between the
      // matrix's groups and after them.
      while (probeSession && probeSession.blocks < PROBE_BLOCKS_AT_EACH_END) await probeSession.block();
      const deadline = started + maxTimeMs * runShareOf(options, cells.length);
      const affinity = { pinned: cpus.controller, allowed: originalAffinity };
      run = await runPatternFirst(options, rounds, deadline, affinity, record.machineSpeed);
    }
    let groupsDone = 0;
    for (const group of measuringOrder(groups.values())) {
      // With a precision target, each group gets its share of the time left.
      const budgetOf = (groupStart: number) =>
        options.precision !== undefined
          ? Math.max(0, (started + maxTimeMs - groupStart) / (groups.size - groupsDone))
          : Infinity;
      const sampling = await runGroup(group, options, record, cpus, budgetOf);
      if (sampling) samplingGroups.push(sampling);
      groupsDone++;
      if (probeSession && probeSession.blocks < RoundTripProbeSession.BLOCKS - PROBE_BLOCKS_AT_EACH_END)
        await probeSession.block();
    }
    for (const [index] of cells.entries()) {
      const row = record.rowAt.get(index);
      if (row) rows.push(row);
    }
    // The report keeps the matrix's rows and groups first, as it shows them.
    if (run) {
      samplingGroups.push(...run.sampling);
      rows.push(...run.rows);
      endToEnd = run.section;
      runSkips.push(...run.skipped);
    }
    if (probeSession) {
      while (probeSession.blocks < RoundTripProbeSession.BLOCKS) await probeSession.block();
      const session = probeSession;
      probeSession = undefined;
      probe = await session.finish();
    }
  } finally {
    probeSession?.kill();
    if (cpus.controller) native.setAffinity(0, originalAffinity);
  }
  const placement = placementOf(options.pin, cpus, originalAffinity, record.seen);
  const machineSpeed = record.machineSpeed.summary();
  const measured = { rows, placement, rounds, maxTimeMs, samplingGroups, endToEnd, probe, machineSpeed };
  const report = assembleReport(options, measured);
  // LLVM missing is said once: the matrix's cells over LLVM's executor take the run pattern's reason.
  const skipped = record.skipped;
  if (endToEnd && !endToEnd.llvm.available && endToEnd.llvm.reason) {
    for (const [i, s] of skipped.entries())
      if (s.code === 'llvm-executor-missing') skipped[i] = { ...s, reason: endToEnd.llvm.reason };
  }
  return { report, skipped: [...skipped, ...runSkips] };
}
