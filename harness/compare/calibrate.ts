import { JitmemError } from '../../core/errors.js';
import type { Report } from '../report/report.js';
import { sampleSd, studentTQuantile } from '../statistics.js';
import { DEFAULT_ALPHA, labelOf, type RowKey } from './comparison.js';
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
  options: { phases?: boolean; ratiosOnly?: boolean; alpha?: number } = {},
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
    });
  }
  return out;
}
