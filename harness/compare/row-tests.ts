import { mean, meanInterval, sampleSd, studentTCdf, studentTQuantile, welchTTest } from '../statistics.js';
import type { Evidence } from './comparison.js';
import type { RowRun } from './row-runs.js';

/** The tests that decide one row's change, before the correction across rows (see judge.ts). */

/** What a test says about one row, before the correction across rows. */
export interface RowTest {
  /** head - base on the log scale. */
  readonly diff: number;
  readonly low: number;
  readonly high: number;
  /**
   * Over runs: the half-width of the one-sided 95% bound of the change (log scale), which a
   * 'same' verdict must keep within the threshold in the regression direction. One-sided because
   * 'same' claims only "no regression beyond the threshold"; and the gate passes only when every
   * row makes that claim, an intersection-union test, so each row at 5% keeps the whole claim at
   * 5% without a correction across rows. Absent: the two-sided interval's half decides.
   */
  readonly oneSidedHalf?: number;
  readonly p: number;
  readonly evidence: Evidence;
  /** Noise bound on the log scale (see RowVerdictFields.noise), or null. */
  readonly noise: number | null;
  /** Whether the noise bound raises the threshold (rows compared round by round) or only decides refusal. */
  readonly noiseRaisesThreshold: boolean;
  /** The head's value (log), and with runs the base's and both intervals over runs (log). */
  readonly headValue: number;
  readonly baseValue?: number;
  readonly headCi?: readonly [number, number];
  readonly baseCi?: readonly [number, number];
}

/** Settings every row test shares. */
export interface TestContext {
  readonly alpha: number;
  /** Rows compared, for the noise bound's Bonferroni quantile. */
  readonly rows: number;
}

/**
 * One report against one report: Welch's t on per-round values. For times, the noise bound is
 * the difference two single rounds show at level alpha: t(1 - alpha/2, df) * sqrt(s_b^2 + s_h^2).
 */
export function roundTest(b: RowRun, h: RowRun, kind: 'time' | 'ratio', ctx: TestContext): RowTest | null {
  if (b.rounds.length < 2 || h.rounds.length < 2) return null;
  const w = welchTTest(b.rounds, h.rounds);
  // Times and ratios alike: a whole run can be slower, or starve one process, in ways no
  // round of it shows apart from the others; the floor asks a change to look like more than a
  // bad round. (Measured here: without it, 4 of 10 pairs of quick runs of one commit on a
  // loaded machine flagged a cray speedup.)
  void kind;
  const sb = sampleSd(b.rounds);
  const sh = sampleSd(h.rounds);
  const noise = studentTQuantile(1 - ctx.alpha / 2, sb.df + sh.df) * Math.hypot(sb.sd, sh.sd);
  return {
    diff: w.diff,
    low: w.low,
    high: w.high,
    p: Number.isNaN(w.p) ? 1 : w.p,
    evidence: 'rounds',
    noise,
    noiseRaisesThreshold: true,
    headValue: h.value,
  };
}

/**
 * Several runs on one side or both: each run's value is one observation. Base and head are each
 * the mean of their runs; the spread between runs, pooled over both sides, gives the standard
 * error. (The base was the median of three or more runs, as github-action-benchmark takes it,
 * charged pi/2 times the variance of a mean: with the three to eight runs a gate has, that
 * cost more width than an odd run could; base runs of a committed baseline are checked runs.)
 * The noise bound is the smallest change this test flags at alpha / rows (one-sided, as the
 * verdicts are).
 */
export function runsTest(bs: readonly RowRun[], hs: readonly RowRun[], ctx: TestContext): RowTest | null {
  const bv = bs.map((r) => r.value).filter(Number.isFinite);
  const hv = hs.map((r) => r.value).filter(Number.isFinite);
  if (bv.length === 0 || hv.length === 0) return null;
  const pooledDf = Math.max(0, bv.length - 1) + Math.max(0, hv.length - 1);
  if (pooledDf < 1) return null;
  const ss = (xs: number[]) => {
    const m = mean(xs);
    return xs.reduce((a, x) => a + (x - m) ** 2, 0);
  };
  const s = Math.sqrt((ss(bv) + ss(hv)) / pooledDf);
  const baseCenter = mean(bv);
  const headCenter = mean(hv);
  const se = s * Math.sqrt(1 / hv.length + 1 / bv.length);
  const diff = headCenter - baseCenter;
  let p: number;
  if (se === 0) p = diff === 0 ? 1 : 0;
  else p = Math.min(1, 2 * (1 - studentTCdf(Math.abs(diff / se), pooledDf)));
  const half = studentTQuantile(0.975, pooledDf) * se;
  const noise = studentTQuantile(1 - ctx.alpha / Math.max(1, ctx.rows), pooledDf) * se;
  const interval = (xs: number[], center: number): readonly [number, number] | undefined => {
    if (xs.length < 2) return undefined;
    const est = meanInterval(xs);
    return [center - (est.mean - est.low), center + (est.high - est.mean)];
  };
  const headCi = interval(hv, headCenter);
  const baseCi = interval(bv, baseCenter);
  return {
    diff,
    low: diff - half,
    high: diff + half,
    oneSidedHalf: studentTQuantile(0.95, pooledDf) * se,
    p,
    evidence: 'runs',
    noise,
    noiseRaisesThreshold: false,
    headValue: headCenter,
    baseValue: baseCenter,
    ...(headCi ? { headCi } : {}),
    ...(baseCi ? { baseCi } : {}),
  };
}
