import type { PhaseName, ProcessCounters, Report } from '../report/report.js';

/**
 * The typed result of comparing benchmark reports (see judge.ts for how rows are judged):
 * what a row is, what each kind of row carries, and the options a comparison takes.
 */

/**
 * What a compared row measures: the whole iteration, one phase, a speedup over a baseline mapper, or a cost counter of
 * one process.
 */
export type Measure =
  | 'latency'
  | PhaseName
  | 'speedup-vs-rpc'
  | 'speedup-vs-inprocess'
  | `${PhaseName}.speedup-vs-${'rpc' | 'inprocess'}`
  | `${'controller' | 'executor'}.${keyof ProcessCounters}`
  /** CPU time per iteration of one process (bench reports with `cpu`). */
  | 'cpu-controller'
  | 'cpu-executor';

export type Verdict = 'regression' | 'improvement' | 'same';

/** How a row's significance was decided. */
export type Evidence = 'rounds' | 'runs' | 'intervals';

/** The identity of a row, the same in both reports. */
export interface RowKey {
  readonly workload: string;
  /** The pattern; `sweep` rows carry their content size as `sweep@<bytes>`. */
  readonly pattern: string;
  readonly mapper: string;
  readonly executor: string;
  readonly policy: string;
  readonly measure: Measure;
}

interface RowVerdictFields {
  /** change - 1 confidence bounds (95%), in the row's units of change. */
  readonly ci95: readonly [number, number];
  /** Two-sided p-value of the row's test (before the Holm correction). */
  readonly p: number;
  /** Significant after the Holm–Bonferroni correction at alpha over every row compared. */
  readonly significant: boolean;
  readonly evidence: Evidence;
  /** Runs on each side (1 and 1 without noise or base runs). */
  readonly runs: { readonly base: number; readonly head: number };
  /**
   * The threshold the change was held to: the row's threshold, raised to `noise` for rows compared round by round (and
   * by the row's group's `commonMove`).
   */
  readonly threshold: number;
  /**
   * One report against one: the move the row's group of time rows made together (same workload,
   * pattern, policy and measure, every mapper, a speedup's the whole iteration's or its phase's;
   * see judge.ts commonMoves), as a fraction. The threshold includes it. Absent when judged over
   * runs or when the group has fewer than three rows.
   */
  readonly commonMove?: number;
  /**
   * Noise bound of the row: for rows compared round by round, the change two single rounds
   * of one commit exceed with probability alpha; with runs, the smallest change the between-run
   * test could flag. Null when there is none.
   */
  readonly noise: number | null;
  /** Set when the row was not judged because its noise bound exceeds 100%: why. */
  readonly refused?: string;
  /**
   * Set when the row could not be judged: refused, or its change was neither a significant one
   * beyond its threshold nor known to be within it (the interval of the change reaches past the
   * threshold in the regression direction). Why, with what it would take.
   */
  readonly undecided?: string;
  readonly verdict: Verdict;
}

export interface TimeComparison extends RowVerdictFields {
  readonly kind: 'time';
  readonly key: RowKey;
  /** `workload/pattern/mapper/executor/policy/measure`, what `--threshold-for` patterns match. */
  readonly label: string;
  readonly base: { readonly median: number; readonly samples: number };
  readonly head: { readonly median: number; readonly samples: number };
  /** head / base - 1 (geometric means of per-round medians): positive is slower. */
  readonly change: number;
}

export interface RatioComparison extends RowVerdictFields {
  readonly kind: 'ratio';
  readonly key: RowKey;
  readonly label: string;
  readonly base: { readonly speedup: number; readonly ci95: readonly [number, number] };
  readonly head: { readonly speedup: number; readonly ci95: readonly [number, number] };
  /** head speedup / base speedup - 1: negative is a loss of speedup. */
  readonly change: number;
  /** The head's speedup lies outside the base's ci95 (for information). */
  readonly outsideBaseCi: boolean;
}

/**
 * A cost counter of one process, per iteration, in both reports: exact, no statistics. Any
 * change is shown; an increase beyond the tolerance is a regression (except for page faults
 * and context switches, which the scheduler and the GC move too: shown, never gated).
 */
export interface CounterComparison {
  readonly kind: 'counter';
  readonly key: RowKey;
  readonly label: string;
  readonly side: 'controller' | 'executor';
  readonly counter: keyof ProcessCounters;
  readonly base: number;
  readonly head: number;
  /** head / base - 1 (Infinity when a zero became more). */
  readonly change: number;
  readonly gated: boolean;
  readonly verdict: Verdict;
}

/** A row present in one report only: listed, never an error. */
export interface UnmatchedRow {
  readonly kind: 'time' | 'ratio' | 'counter';
  readonly key: RowKey;
  readonly label: string;
  readonly only: 'base' | 'head';
}

export interface GeometricMeanRow {
  /** Rows whose changes the mean is taken over. */
  readonly rows: number;
  /** Geometric mean of (1 + change) over the rows, minus 1. */
  readonly change: number;
}

export interface ThresholdRule {
  /** The pattern as given, e.g. `python/churn/*`. */
  readonly pattern: string;
  readonly threshold: number;
}

export interface CompareOptions {
  /** Family-wise significance level (default 0.05). */
  readonly alpha?: number;
  /** Threshold as a fraction (default 0.05 = 5%). */
  readonly threshold?: number;
  /** Per-row thresholds; the last rule whose pattern matches a row wins. */
  readonly thresholdRules?: readonly ThresholdRule[];
  /**
   * Compare phase times as well as whole-iteration times, and each mapper phase's paired speedup beside the whole
   * iteration's.
   */
  readonly phases?: boolean;
  /** Compare only the speedup ratios (what CI does across machines). */
  readonly ratiosOnly?: boolean;
  /**
   * Compare each row's CPU time per iteration, of the controller and of the executor, as time
   * rows (`cpu-controller`, `cpu-executor`): a slower spell of the machine moves them much less
   * than wall time. With --ratios-only, these rows are judged beside the ratios.
   */
  readonly cpu?: boolean;
  /** Further runs of the HEAD commit: rows are then judged on between-run statistics. */
  readonly noiseReports?: readonly Report[];
  /** Further runs of the BASE commit (the last N stored runs, say); the base value is the median over all base runs. */
  readonly baseRuns?: readonly Report[];
  /** Only the rows whose labels this returns true for are compared (the gate's headline rows, say). */
  readonly rowFilter?: (label: string) => boolean;
  /**
   * Relative increase of a gated counter that fails (default 1%); an increase must also exceed half a count per
   * iteration.
   */
  readonly counterTolerance?: number;
}

export interface ReportIdentity {
  readonly createdAt: string;
  readonly commit: string | null;
  readonly dirty: boolean | null;
  readonly node: string;
  readonly cpuModel: string;
}

export interface Comparison {
  readonly base: ReportIdentity;
  readonly head: ReportIdentity;
  /** What makes the two sides less comparable, or the verdicts less certain: said first. */
  readonly warnings: readonly string[];
  readonly alpha: number;
  readonly threshold: number;
  /** Runs of HEAD's commit the noise was measured over (HEAD included); 0 without noise runs. */
  readonly noiseRuns: number;
  /** Runs of BASE's commit (BASE included). */
  readonly baseRuns: number;
  readonly times: readonly TimeComparison[];
  readonly ratios: readonly RatioComparison[];
  /** Every counter of both processes in the cells both reports have counters for, changed or not. */
  readonly counters: readonly CounterComparison[];
  readonly counterTolerance: number;
  readonly unmatched: readonly UnmatchedRow[];
  /** Geometric mean of the time changes (null when no time rows were compared). */
  readonly timesGeometricMean: GeometricMeanRow | null;
  /** Geometric mean of the speedup changes (null when no ratios were compared). */
  readonly ratiosGeometricMean: GeometricMeanRow | null;
  /** Rows that are significant regressions beyond their threshold: what fails CI. */
  readonly regressions: number;
  readonly improvements: number;
  /** Rows not judged because their noise bound exceeds 100%. */
  readonly refused: number;
  /**
   * Gated rows that could not be judged (refused ones included): with any, the verdict is
   * INCONCLUSIVE, never "no significant regression".
   */
  readonly undecided: number;
}

export const DEFAULT_ALPHA = 0.05;
export const DEFAULT_COUNTER_TOLERANCE = 0.01;
export const DEFAULT_THRESHOLD = 0.05;

export function labelOf(key: RowKey): string {
  return `${key.workload}/${key.pattern}/${key.mapper}/${key.executor}/${key.policy}/${key.measure}`;
}
