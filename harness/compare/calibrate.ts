import { JitmemError } from '../../core/errors.js';
import type { Report } from '../report/report.js';
import { chiSquareQuantile, sampleSd, studentTQuantile } from '../statistics.js';
import { DEFAULT_ALPHA, DEFAULT_THRESHOLD, labelOf, type RowKey } from './comparison.js';
import { REFUSAL } from './judge.js';
import { ratioRuns, timeRuns } from './row-runs.js';

export interface CalibratedRow {
  readonly key: RowKey;
  readonly label: string;
  /** Runs the row appears in. */
  readonly runs: number;
  /**
   * The largest change in the regression direction between any two of the runs (a slowdown
   * for times, a loss of speedup for ratios), as a fraction.
   */
  readonly worstChange: number;
  /**
   * The change, in the regression direction, that one run of this commit exceeds against
   * another with probability alpha / m, for m rows: from the standard deviation s of the runs'
   * log values (k runs), t(1 - alpha/(2m), k - 1) * s * sqrt(2) on the log scale.
   */
  readonly noiseBound: number;
  /** The larger of worstChange and noiseBound, rounded up to the next whole 5%; null when refused. */
  readonly suggested: number | null;
  /** Set when the noise bound exceeds 100%: no threshold is suggested, and why. */
  readonly refused?: string;
  /** With `headRuns`: the threshold a gate of these runs against that many head runs can judge (see gateThreshold). */
  readonly gate?: GateThreshold;
}

/** A row's threshold for the gate over runs, calibrated from runs of one commit (see gateThreshold). */
export interface GateThreshold {
  /** Head runs the gate will compare against these runs. */
  readonly headRuns: number;
  /** The runs' standard deviation on the log scale, and its 90% upper confidence bound. */
  readonly spread: number;
  readonly spreadUpper: number;
  /** The threshold: the calibrated reach, never below the asked threshold, rounded up to a whole percent. */
  readonly threshold: number;
  /**
   * Whether the gate judges the row: only when its threshold is at most MAX_GATED_THRESHOLD.
   * A row whose runs spread so much that only a larger change could be told from them is shown
   * with its change and interval, not gated: a gate at 16-32% would pass a real loss as "same",
   * and such rows moved by 18-40% under a CPU hog on one core while the headlines held.
   */
  readonly gated: boolean;
}

/** The largest calibrated threshold a gated row may have. */
export const MAX_GATED_THRESHOLD = 0.1;

/** z of the one-sided 1% tail: the margin for the change an unchanged commit shows. */
const Z_99 = 2.3263478740408408;

/**
 * The smallest threshold the gate over runs (judge.ts, row-tests.ts runsTest) can be expected to
 * judge an unchanged commit within, for a row whose k runs here have log standard deviation s,
 * compared against `headRuns` runs:
 *
 *   T = (t(0.95, k + n - 2) + z(0.99)) * s_u * sqrt(1/n + 1/k)
 *
 * on the log scale, with s_u = s * sqrt((k - 1) / chi2(0.10, k - 1)) the 90% upper confidence
 * bound of the runs' spread. For an unchanged commit the gate's one-sided bound reaches
 * -d + t(0.95, df) * s^ * sqrt(1/n + 1/k), where the change d has standard deviation
 * s * sqrt(1/n + 1/k): with s <= s_u (nine times in ten) it stays below T in about 99 rows of
 * 100. It is a threshold, decided from the base before any head is seen and printed per row;
 * the verdicts still come from the gate's own interval. Never below `asked`.
 */
export function gateThreshold(
  values: readonly number[],
  headRuns: number,
  kind: 'time' | 'ratio',
  asked: number,
): GateThreshold {
  const k = values.length;
  const { sd } = sampleSd(values);
  const spreadUpper = k >= 2 ? sd * Math.sqrt((k - 1) / chiSquareQuantile(0.1, k - 1)) : Infinity;
  const reachLog = (studentTQuantile(0.95, k + headRuns - 2) + Z_99) * spreadUpper * Math.sqrt(1 / headRuns + 1 / k);
  // Times regress upwards, speedups downwards: the regression of a log change x is e^x - 1 or 1 - e^-x.
  const reach = kind === 'time' ? Math.expm1(reachLog) : -Math.expm1(-reachLog);
  const threshold = Math.max(asked, Math.ceil(reach * 100 - 1e-9) / 100);
  return { headRuns, spread: sd, spreadUpper, threshold, gated: threshold <= MAX_GATED_THRESHOLD + 1e-12 };
}

/** Fewest reports calibration accepts: with two, the bound rests on one degree of freedom and reaches absurd values. */
export const MIN_CALIBRATION_RUNS = 3;

/**
 * Measures the noise between runs of the same commit, row by row, on the values `compare`
 * works on (the per-round mean log median for times, the per-round mean log speedup for
 * ratios). Needs three or more reports.
 */
export function calibrateThresholds(
  reports: readonly Report[],
  options: { phases?: boolean; ratiosOnly?: boolean; alpha?: number; headRuns?: number; threshold?: number } = {},
): CalibratedRow[] {
  if (reports.length < MIN_CALIBRATION_RUNS) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `calibration needs ${MIN_CALIBRATION_RUNS} or more reports of the same commit; got ${reports.length} (with fewer, the noise bound rests on too few degrees of freedom to mean anything)`,
      { reports: reports.length },
    );
  }
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const rows = new Map<string, { key: RowKey; kind: 'time' | 'ratio'; values: number[] }>();
  const put = (key: RowKey, kind: 'time' | 'ratio', value: number) => {
    if (!Number.isFinite(value)) return;
    const label = labelOf(key);
    const row = rows.get(label) ?? rows.set(label, { key, kind, values: [] }).get(label)!;
    row.values.push(value);
  };
  for (const report of reports) {
    if (!options.ratiosOnly)
      for (const run of timeRuns(report, options.phases ?? false).values()) put(run.key, 'time', run.value);
    for (const run of ratioRuns(report, true, options.phases ?? false).values()) put(run.key, 'ratio', run.value);
  }
  const out: CalibratedRow[] = [];
  const rowAlpha = alpha / Math.max(1, [...rows.values()].filter((r) => r.values.length >= 2).length);
  for (const [label, { key, kind, values }] of rows) {
    if (values.length < 2) continue;
    const low = Math.min(...values);
    const high = Math.max(...values);
    // Times regress upwards, speedups downwards; both are logs here.
    const worstChange = kind === 'time' ? Math.expm1(high - low) : -Math.expm1(low - high);
    const { sd } = sampleSd(values);
    const bound = studentTQuantile(1 - rowAlpha / 2, values.length - 1) * sd * Math.SQRT2;
    const noiseBound = kind === 'time' ? Math.expm1(bound) : -Math.expm1(-bound);
    const worst = Math.max(worstChange, noiseBound);
    const refused = (kind === 'time' ? noiseBound : Math.expm1(bound)) > 1;
    out.push({
      key,
      label,
      runs: values.length,
      worstChange,
      noiseBound,
      suggested: refused ? null : Math.max(0.05, Math.ceil((worst * 100 - 1e-9) / 5) * 0.05),
      ...(refused ? { refused: REFUSAL } : {}),
      ...(options.headRuns
        ? { gate: gateThreshold(values, options.headRuns, kind, options.threshold ?? DEFAULT_THRESHOLD) }
        : {}),
    });
  }
  return out;
}
