import { JitmemError } from '../../core/errors.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { FitPolicy } from '../../mappers/slab/free-range-index.js';
import { loadWorkload, type WorkloadOptions } from '../../workloads/workload-sources.js';
import { loadPlan } from '../../workloads/patterns/load-pattern.js';
import { churnPlan } from '../../workloads/patterns/churn-pattern.js';
import { updatePlan } from '../../workloads/patterns/update-pattern.js';
import { patchPlan } from '../../workloads/patterns/patch-pattern.js';
import { sweepPlan, sweepSizes } from '../../workloads/patterns/sweep-pattern.js';
import type { Plan } from '../../workloads/patterns/plan.js';
import { IN_PROCESS_MAPPERS, type ExecutorName, type MapperName, type PatternName } from '../report/report.js';
import type { Cell } from './cell-runner.js';

/**
 * The matrix a bench run covers: which cells, with which plan, and how hard to sample each.
 * Presets: `quick` (CI: cray and python, load, every mapper, first-fit), `default` (the curated
 * matrix `npm run bench` runs in a few minutes), `full` (everything).
 */

export type Preset = 'quick' | 'default' | 'full';

export interface MatrixSelection {
  readonly workloads: readonly string[];
  readonly patterns: readonly PatternName[];
  readonly mappers: readonly MapperName[];
  readonly executors: ReadonlyArray<'jitmem' | 'llvm'>;
  readonly policies: readonly FitPolicy[];
  /** Run policies after the first only under churn, the one pattern where they differ. */
  readonly extraPoliciesOnlyUnderChurn: boolean;
  /** Sweep sizes in bytes. */
  readonly sweepSizes: readonly number[];
  /** Sampling time per cell (ms) and minimum iterations. */
  readonly time: number;
  readonly iterations: number;
  readonly churnOperations: number;
  readonly updateTimes: number;
  readonly patchTimes: number;
  /**
   * Patches per patchCode call in the patch pattern. 1 (the presets): every patch is a rewrite
   * of its own, as an inline cache or a single breakpoint is; larger batches are what a tier-up
   * or a debugger command rewrites at once.
   */
  readonly patchBatch: number;
  /**
   * The run pattern: measured iterations per cell (each a process of its own), and executor spawns for the start-up
   * figure.
   */
  readonly runIterations: number;
  readonly startupSamples: number;
  /** The run pattern also runs python's short script beside `-c pass`. */
  readonly runScript: boolean;
  /**
   * What a precision target waits for in a matrix group: `every` speedup (the headlines and
   * those with an in-process or dual-mapped side), or the `headlines` only (shared memory over
   * RPC copy), the others named when wider. The default preset waits for the headlines, so that
   * the run pattern keeps the time its end-to-end headlines need within the three minutes.
   */
  readonly precisionWaitsFor: 'every' | 'headlines';
}

export const ALL_PATTERNS: readonly PatternName[] = ['load', 'churn', 'update', 'patch', 'sweep', 'run'];
export const ALL_MAPPERS: readonly MapperName[] = ['inprocess', 'dualmap', 'shared', 'rpc'];

export function presetSelection(preset: Preset): MatrixSelection {
  switch (preset) {
    case 'quick':
      return {
        workloads: ['cray', 'python'],
        patterns: ['load'],
        mappers: ALL_MAPPERS,
        executors: ['jitmem'],
        policies: ['first-fit'],
        extraPoliciesOnlyUnderChurn: true,
        sweepSizes: [],
        time: 1200,
        iterations: 24,
        churnOperations: 200,
        updateTimes: 10,
        patchTimes: 50,
        patchBatch: 1,
        runIterations: 3,
        startupSamples: 5,
        runScript: false,
        precisionWaitsFor: 'every',
      };
    case 'default':
      return {
        workloads: ['cray', 'python'],
        patterns: ['load', 'churn', 'update', 'patch', 'sweep', 'run'],
        mappers: ALL_MAPPERS,
        executors: ['jitmem', 'llvm'],
        policies: ['first-fit', 'best-fit'],
        extraPoliciesOnlyUnderChurn: true,
        // 64 MiB only under --full: RPC copy takes seconds there, and 16 MiB already shows the crossover.
        sweepSizes: [4096, 65536, 1 << 20, 16 << 20],
        time: 400,
        iterations: 10,
        churnOperations: 400,
        updateTimes: 20,
        patchTimes: 100,
        patchBatch: 1,
        // Processes per run and llvm-jitlink's are fixed rounds of one process each: with five,
        // a speedup a few percent from 1 read "faster" in one run and "not distinguishable" in
        // the next; eight take about 8 s more.
        runIterations: 8,
        startupSamples: 10,
        runScript: true,
        precisionWaitsFor: 'headlines',
      };
    case 'full':
      return {
        workloads: ['cray', 'python'],
        patterns: ALL_PATTERNS,
        mappers: ALL_MAPPERS,
        executors: ['jitmem', 'llvm'],
        policies: ['first-fit', 'best-fit'],
        extraPoliciesOnlyUnderChurn: false,
        sweepSizes: sweepSizes(),
        time: 2000,
        iterations: 30,
        churnOperations: 2000,
        updateTimes: 50,
        patchTimes: 500,
        patchBatch: 1,
        runIterations: 15,
        startupSamples: 20,
        runScript: true,
        precisionWaitsFor: 'every',
      };
  }
}

export interface PlannedCell extends Cell {
  readonly plan: Plan;
  readonly contentHint: number;
  /**
   * Runs with a fresh slab every iteration whatever --cold says: LLVM 22's
   * SimpleExecutorMemoryManager cannot initialize a range again after deinitialize (it crashes),
   * so RPC copy over LLVM's executor can only give whole slabs back.
   */
  readonly forceCold: boolean;
}

/**
 * Why cells were not run, as a code the bench can act on (the reason is for the reader and may
 * be reworded or replaced by a more precise one).
 */
export type SkipCode =
  /** LLVM's executor is not installed. */
  | 'llvm-executor-missing'
  /** LLVM's executor runs only the load pattern. */
  | 'llvm-executor-load-only'
  /** The mapper cannot patch finalized code in place. */
  | 'no-patch-in-place'
  /** llvm-jitlink is not there for the end-to-end rows. */
  | 'llvm-jitlink-missing'
  /** llvm-jitlink refuses to link the program (its reason follows). */
  | 'llvm-jitlink-refuses'
  /** jitmem's own end-to-end rows cannot run (no program to run, say). */
  | 'jitmem-run-unavailable'
  /** The executor snapshot could not be built; executors start from their entry file. */
  | 'executor-snapshot-unavailable';

export interface SkippedCell {
  readonly cell: string;
  readonly code: SkipCode;
  readonly reason: string;
}

function sizeLabel(bytes: number): string {
  if (bytes >= 1 << 20) return `${bytes / (1 << 20)}MiB`;
  return `${bytes / 1024}KiB`;
}

/**
 * Expands a selection into cells. Some combinations are not run, with a reason the bench
 * prints: unless --policy asks for them, policies after the first run only under churn (the
 * pattern where policies differ), and LLVM's executor runs only load (it cannot reuse a freed
 * range within an iteration).
 */
export function planCells(
  selection: MatrixSelection,
  seed: number,
  llvmInstalled: boolean,
  workloadOptions: WorkloadOptions,
): { cells: PlannedCell[]; skipped: SkippedCell[] } {
  const cells: PlannedCell[] = [];
  const skipped: SkippedCell[] = [];
  const graphsOf = new Map<string, readonly LinkGraph[]>();
  const graphs = (w: string) => {
    let g = graphsOf.get(w);
    if (!g) graphsOf.set(w, (g = loadWorkload(w, workloadOptions).graphs));
    return g;
  };
  const executorsFor = (mapper: MapperName, pattern: PatternName): ExecutorName[] => {
    if (IN_PROCESS_MAPPERS.includes(mapper)) return ['none'];
    return selection.executors.filter((e) => {
      if (e !== 'llvm') return true;
      if (!llvmInstalled) {
        skipped.push({
          cell: `*/${pattern}/${mapper}@llvm`,
          code: 'llvm-executor-missing',
          reason: "LLVM 22's llvm-jitlink-executor is not installed (Debian package llvm-22)",
        });
        return false;
      }
      if (pattern !== 'load') {
        const reason = "LLVM 22's executor cannot initialize a freed range again; it runs only the load pattern";
        skipped.push({ cell: `*/${pattern}/${mapper}@llvm`, code: 'llvm-executor-load-only', reason });
        return false;
      }
      return true;
    });
  };
  for (const pattern of selection.patterns) {
    // The run pattern links and runs programs rather than replaying a plan: run-cells.ts runs it.
    if (pattern === 'run') continue;
    const workloads =
      pattern === 'sweep' ? selection.sweepSizes.map((s) => `synthetic-${sizeLabel(s)}`) : selection.workloads;
    for (const [wi, workload] of workloads.entries()) {
      let plan: Plan;
      let contentHint = 0;
      if (pattern === 'sweep') {
        const size = selection.sweepSizes[wi]!;
        plan = sweepPlan({ seed, minSize: size, maxSize: size });
        contentHint = size;
      } else {
        const g = graphs(workload);
        if (pattern === 'load') plan = loadPlan(g);
        else if (pattern === 'churn') plan = churnPlan(g, { seed, operations: selection.churnOperations });
        else if (pattern === 'update') plan = updatePlan(g, { times: selection.updateTimes });
        else plan = patchPlan(g, { seed, times: selection.patchTimes, batch: selection.patchBatch });
      }
      for (const mapper of selection.mappers) {
        for (const executor of executorsFor(mapper, pattern)) {
          for (const [pi, policy] of selection.policies.entries()) {
            if (selection.extraPoliciesOnlyUnderChurn && pi > 0 && pattern !== 'churn') continue;
            cells.push({
              workload,
              pattern,
              mapper,
              executor,
              policy,
              plan,
              contentHint,
              forceCold: executor === 'llvm' && mapper === 'rpc',
            });
          }
        }
      }
    }
  }
  if (cells.length === 0 && !selection.patterns.includes('run')) {
    throw new JitmemError(
      'ERR_EMPTY_MATRIX',
      `the selection leaves no cell to run${skipped.length ? ` (${skipped.map((s) => `${s.cell}: ${s.reason}`).join('; ')})` : ''}`,
      {},
    );
  }
  // One line per skipped combination, not one per workload.
  const unique = new Map(skipped.map((s) => [`${s.cell}\0${s.reason}`, s]));
  return { cells, skipped: [...unique.values()] };
}
