import { readFileSync } from 'node:fs';
import * as native from '../../native/index.js';
import type { WorkloadOptions } from '../../workloads/workload-sources.js';
import type { BudgetRow, ExecutorName, MapperName, Placement, Report, ResultRow, RoundSummary } from '../report/report.js';
import { median } from '../statistics.js';
import { CellRunner, cellName, type MapperHandle } from './cell-runner.js';
import type { PlannedCell } from './matrix.js';
import { captureEnvironment, cpuPlan } from './environment.js';
import { openHandle, llvmExecutorAvailable, type HandleOptions } from './mapper-handles.js';
import { planCells, type MatrixSelection, type Preset, type SkippedCell } from './matrix.js';
import { computeRatios, extraTimeBudgets, transportRatioBudgets } from './ratios.js';
import { probeRoundTrip, roundTripBudget } from './round-trip-probe.js';
import { speedBudgets } from './speed-budgets.js';
import { runEndToEnd, type RunSkip } from './run-cells.js';
import { endToEndBudgets, endToEndHeadlines } from './end-to-end.js';
import type { EndToEndSection } from '../report/report.js';

/**
 * A whole bench run: plan the cells, run each against a freshly opened transport, and put the
 * rows, the ratios measured within this run, the budgets and the environment into a report.
 */

export type OpenHandle = (mapper: MapperName, executor: ExecutorName, options: HandleOptions) => Promise<MapperHandle>;

export type BenchProgress =
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
  | { readonly kind: 'cell-done'; readonly index: number; readonly total: number; readonly cell: string; readonly row: ResultRow }
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
  /** Interleaved measurement rounds per group of cells (default 4). */
  readonly rounds?: number;
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
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Interleaved rounds per group of cells unless the caller says otherwise. */
export const DEFAULT_ROUNDS = 8;

/**
 * The row with its per-round medians: `ends[i]` is the number of samples measured by the end
 * of round i. Rounds that measured nothing are left out, on every mapper alike (ratios pair
 * rounds by index, and computeRatios skips a pair with an empty side).
 */
export function withRounds(row: ResultRow, ends: readonly number[]): ResultRow {
  const samples = row.latency.samples;
  if (ends.length < 2 || ends[ends.length - 1] !== samples.length) return row;
  const rounds: RoundSummary[] = [];
  let start = 0;
  for (const end of ends) {
    rounds.push({ samples: end - start, p50: end > start ? median(samples.slice(start, end)) : 0 });
    start = end;
  }
  return { ...row, rounds };
}

export async function runBench(options: BenchRunOptions): Promise<BenchRunResult> {
  const llvmInstalled = llvmExecutorAvailable(options.llvmExecutor);
  const { cells, skipped: plannedSkips } = planCells(options.selection, options.seed, llvmInstalled, options.workloadOptions);
  const cpus = cpuPlan(options.pin);
  const originalAffinity = native.getAffinity(0);
  if (cpus.controller) native.setAffinity(0, cpus.controller);
  const open = options.openHandle ?? openHandle;
  const rows: ResultRow[] = [];
  const skipped: SkippedCell[] = [...plannedSkips];
  const seen = new Set<number>();
  // Cells whose ratios are taken (same workload, pattern and policy) are measured together, in
  // interleaved rounds; each group's transports are open for its whole measurement.
  const groups = new Map<string, Array<{ cell: PlannedCell; index: number }>>();
  cells.forEach((cell, index) => {
    const key = `${cell.workload}\0${cell.pattern}\0${cell.policy}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push({ cell, index });
  });
  const rounds = Math.max(1, options.rounds ?? DEFAULT_ROUNDS);
  let endToEnd: EndToEndSection | undefined;
  const runSkips: RunSkip[] = [];
  const rowAt = new Map<number, ResultRow>();
  let probe: Awaited<ReturnType<typeof probeRoundTrip>> | undefined;
  const roundOf = new Map<number, number>();
  // Measured iterations of each cell so far, and where each round ended: the rounds of a group
  // run its mappers back to back, so per-round medians pair up into per-round ratios.
  const iterationsDone = new Map<number, number>();
  const roundEnds = new Map<number, number[]>();
  try {
    for (const group of groups.values()) {
      const active: Array<{ cell: PlannedCell; index: number; name: string; handle: MapperHandle; runner: CellRunner }> = [];
      try {
        for (const { cell, index } of group) {
          const name = cellName(cell);
          options.onProgress?.({ kind: 'cell-start', index, total: cells.length, cell: name });
          const handle = await open(cell.mapper, cell.executor, {
            executorCpus: cpus.executor,
            cell: { workload: cell.workload, pattern: cell.pattern, mapper: cell.mapper, executor: cell.executor, policy: cell.policy },
            ...(options.llvmExecutor ? { llvmExecutor: options.llvmExecutor } : {}),
          });
          if (cell.pattern === 'patch' && !handle.patch) {
            skipped.push({ cell: name, code: 'no-patch-in-place', reason: `the ${cell.mapper} mapper${cell.executor === 'llvm' ? " over LLVM's executor" : ''} cannot patch finalized code in place` });
            await handle.close();
            continue;
          }
          const runner = new CellRunner(cell, handle, cell.plan, {
            time: options.selection.time,
            iterations: options.selection.iterations,
            warmupIterations: 2,
            // JIT tiers settle over the first few hundred milliseconds of a cell: measured rounds
            // before that would drift, and the ratio of a pair of mappers with them.
            warmupTime: Math.min(500, Math.max(100, options.selection.time / 4)),
            cold: options.cold || cell.forceCold,
            granularity: cell.pattern === 'churn' ? options.churnGranularity ?? options.granularity : options.granularity,
            onIteration: (iterations) => {
              iterationsDone.set(index, iterations);
              options.onProgress?.({ kind: 'iteration', index, total: cells.length, cell: name, iterations, round: roundOf.get(index) ?? 0, rounds });
            },
          });
          active.push({ cell, index, name, handle, runner });
        }
        for (let round = 0; round < rounds; round++) {
          for (const a of active) {
            roundOf.set(a.index, round);
            await a.runner.round(options.selection.time / rounds, Math.ceil(options.selection.iterations / rounds), round === 0);
            roundEnds.set(a.index, [...(roundEnds.get(a.index) ?? []), iterationsDone.get(a.index) ?? 0]);
          }
        }
        for (const a of active) {
          const row = withRounds(await a.runner.finish(), roundEnds.get(a.index) ?? []);
          for (const c of a.runner.controllerCpus) seen.add(c);
          rowAt.set(a.index, row);
          options.onProgress?.({ kind: 'cell-done', index: a.index, total: cells.length, cell: a.name, row });
        }
      } finally {
        for (const a of active) await a.handle.close();
      }
    }
    for (const [index] of cells.entries()) {
      const row = rowAt.get(index);
      if (row) rows.push(row);
    }
    if (options.selection.patterns.includes('run')) {
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
      });
      rows.push(...run.rows);
      endToEnd = run.section;
      runSkips.push(...run.skipped);
    }
    if (options.probeRoundTrip) probe = await probeRoundTrip({ executorCpus: cpus.executor });
  } finally {
    if (cpus.controller) native.setAffinity(0, originalAffinity);
  }
  const placement: Placement = {
    pin: options.pin,
    controllerCpus: cpus.controller ?? originalAffinity,
    executorCpus: cpus.executor ?? originalAffinity,
    controllerSeenOn: [...seen].sort((a, b) => a - b),
  };
  if (endToEnd) endToEnd.headlines = endToEndHeadlines(rows, options.seed);
  const budgets: BudgetRow[] = [
    ...extraTimeBudgets(rows),
    ...transportRatioBudgets(rows),
    ...speedBudgets(rows),
    ...(probe ? [roundTripBudget(probe)] : []),
    ...(endToEnd ? endToEndBudgets(rows, endToEnd) : []),
  ];
  const report: Report = {
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
    ratios: computeRatios(rows.filter((r) => r.pattern !== 'run'), options.seed),
    budgets,
    ...(endToEnd ? { endToEnd } : {}),
  };
  // LLVM missing is said once: the matrix's cells over LLVM's executor take the run pattern's reason.
  if (endToEnd && !endToEnd.llvm.available && endToEnd.llvm.reason) {
    for (const [i, s] of skipped.entries()) if (s.code === 'llvm-executor-missing') skipped[i] = { ...s, reason: endToEnd.llvm.reason };
  }
  return { report, skipped: [...skipped, ...runSkips] };
}
