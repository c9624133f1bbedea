/**
 * Statistics for benchmark samples: quantiles, seeded bootstrap confidence intervals for a
 * ratio of medians, the Mann–Whitney U test, and the geometric mean. Pure functions over
 * number arrays; nothing here reads a clock or prints.
 */

import { SeededRandom } from '../workloads/patterns/seeded-random.js';

/** Uniform values in [0, 1) from the patterns' seeded generator, so bootstrap intervals repeat for the same samples. */
export function seededRandom(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.nextUint32() / 2 ** 32;
}

function sorted(xs: readonly number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

/** Quantile q in [0, 1] of already sorted values, linearly interpolated (type 7, as R and NumPy). */
export function quantileSorted(s: ArrayLike<number>, q: number): number {
  const n = s.length;
  if (n === 0) return Number.NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return s[lo]! + (h - lo) * (s[hi]! - s[lo]!);
}

export function quantile(xs: readonly number[], q: number): number {
  return quantileSorted(sorted(xs), q);
}

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

export function mean(xs: readonly number[]): number {
  let sum = 0;
  for (const x of xs) sum += x;
  return xs.length ? sum / xs.length : Number.NaN;
}

/** Geometric mean of positive values (NaN when any is not positive). */
export function geometricMean(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  let logSum = 0;
  for (const x of xs) {
    if (!(x > 0)) return Number.NaN;
    logSum += Math.log(x);
  }
  return Math.exp(logSum / xs.length);
}

function resampleMedian(xs: readonly number[], rand: () => number, scratch: Float64Array): number {
  const n = xs.length;
  for (let i = 0; i < n; i++) scratch[i] = xs[Math.floor(rand() * n)]!;
  scratch.sort();
  return quantileSorted(scratch, 0.5);
}

export interface RatioEstimate {
  /** median(numerator) / median(denominator) */
  readonly ratio: number;
  /** Percentile bootstrap interval at the requested confidence. */
  readonly low: number;
  readonly high: number;
}

/**
 * The ratio of medians median(a) / median(b) with a percentile bootstrap confidence interval:
 * both sample sets are resampled independently `resamples` times. Used for speedups
 * (baseline / candidate) and for relative changes between two reports (head / base).
 */
export function bootstrapRatioOfMedians(
  a: readonly number[],
  b: readonly number[],
  options: { resamples?: number; confidence?: number; seed?: number } = {},
): RatioEstimate {
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  const rand = seededRandom(options.seed ?? 0x5eed);
  const ratio = median(a) / median(b);
  if (a.length === 0 || b.length === 0) return { ratio: Number.NaN, low: Number.NaN, high: Number.NaN };
  const sa = new Float64Array(a.length);
  const sb = new Float64Array(b.length);
  const ratios = new Float64Array(resamples);
  for (let i = 0; i < resamples; i++) ratios[i] = resampleMedian(a, rand, sa) / resampleMedian(b, rand, sb);
  ratios.sort();
  const alpha = (1 - confidence) / 2;
  return { ratio, low: quantileSorted(ratios, alpha), high: quantileSorted(ratios, 1 - alpha) };
}

export interface MannWhitneyResult {
  /** U statistic of the first sample. */
  readonly u: number;
  /** Standardized statistic (normal approximation, tie- and continuity-corrected). */
  readonly z: number;
  /** Two-sided p-value. */
  readonly p: number;
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 through erf, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/**
 * Two-sided Mann–Whitney U test (Wilcoxon rank-sum) with the normal approximation, corrected
 * for ties and for continuity. Benchmark sample sets are large (tens to thousands), where the
 * approximation is accurate.
 */
export function mannWhitneyU(a: readonly number[], b: readonly number[]): MannWhitneyResult {
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) return { u: Number.NaN, z: Number.NaN, p: Number.NaN };
  const all = new Float64Array(n1 + n2);
  all.set(a);
  all.set(b, n1);
  const order = Array.from({ length: n1 + n2 }, (_, i) => i).sort((i, j) => all[i]! - all[j]!);
  let rankSumA = 0;
  let tieTerm = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && all[order[j + 1]!] === all[order[i]!]) j++;
    const rank = (i + j + 2) / 2; // ranks are 1-based; ties share the average rank
    const t = j - i + 1;
    if (t > 1) tieTerm += t * t * t - t;
    for (let k = i; k <= j; k++) if (order[k]! < n1) rankSumA += rank;
    i = j + 1;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mu = (n1 * n2) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  if (sigma === 0) return { u, z: 0, p: 1 };
  const diff = u - mu;
  const z = (diff - Math.sign(diff) * 0.5) / sigma;
  const p = Math.min(1, 2 * (1 - normalCdf(Math.abs(z))));
  return { u, z, p };
}

export interface IntervalTestResult {
  /** log(head / base) over its standard error. */
  readonly z: number;
  /** Two-sided p-value. */
  readonly p: number;
}

/**
 * Tests whether two positive estimates that come with 95% confidence intervals but without
 * samples (speedup ratios in reports) differ: a Wald test on the log scale, where ratio
 * intervals are close to symmetric. Each interval gives a standard error
 * (log high - log low) / (2 * 1.96); the difference of the logs is standardized by the root of
 * the summed squared errors. Unlike "the head lies outside the base's interval", which ignores
 * the head's own uncertainty and flags about one in six unchanged rows, this holds its level.
 */
export function intervalEstimateTest(
  base: { readonly value: number; readonly ci95: readonly [number, number] },
  head: { readonly value: number; readonly ci95: readonly [number, number] },
): IntervalTestResult {
  const se = (e: { readonly ci95: readonly [number, number] }) => {
    const [low, high] = e.ci95;
    return low > 0 && high > 0 ? Math.abs(Math.log(high) - Math.log(low)) / (2 * 1.959964) : Number.NaN;
  };
  if (!(base.value > 0 && head.value > 0)) return { z: Number.NaN, p: Number.NaN };
  const diff = Math.log(head.value) - Math.log(base.value);
  const sigma = Math.hypot(se(base), se(head));
  if (!Number.isFinite(sigma)) return { z: Number.NaN, p: Number.NaN };
  if (sigma === 0) return diff === 0 ? { z: 0, p: 1 } : { z: Math.sign(diff) * Number.POSITIVE_INFINITY, p: 0 };
  const z = diff / sigma;
  return { z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; |relative error| < 1e-13). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(x, a, b)) / a
    : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** CDF of Student's t distribution with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) return Number.NaN;
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** Quantile of Student's t distribution: the t with studentTCdf(t, df) = p (bisection, to 1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return Number.NaN;
  if (p === 0.5) return 0;
  let lo = -1;
  let hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface SignedRankResult {
  /** Sum of the ranks of the positive values. */
  readonly wPlus: number;
  /** Two-sided p-value: exact without ties for n <= 30, normal approximation otherwise. */
  readonly p: number;
}

/**
 * Two-sided Wilcoxon signed-rank test of `xs` against a median of 0 (zeros dropped). Used on
 * per-round log speedups: is a mapper faster than its baseline, round by round? With few
 * rounds the exact null distribution is used; note its floor: with n rounds the smallest
 * two-sided p is 2 / 2^n (0.0078 for 8 rounds).
 */
export function wilcoxonSignedRank(xs: readonly number[]): SignedRankResult {
  const d = xs.filter((x) => x !== 0 && Number.isFinite(x));
  const n = d.length;
  if (n === 0) return { wPlus: 0, p: 1 };
  const order = d.map((x, i) => i).sort((i, j) => Math.abs(d[i]!) - Math.abs(d[j]!));
  const ranks = new Float64Array(n);
  let ties = false;
  let tieTerm = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && Math.abs(d[order[j + 1]!]!) === Math.abs(d[order[i]!]!)) j++;
    const t = j - i + 1;
    if (t > 1) {
      ties = true;
      tieTerm += t * t * t - t;
    }
    for (let k = i; k <= j; k++) ranks[order[k]!] = (i + j + 2) / 2;
    i = j + 1;
  }
  let wPlus = 0;
  for (let i = 0; i < n; i++) if (d[i]! > 0) wPlus += ranks[i]!;
  const total = (n * (n + 1)) / 2;
  if (!ties && n <= 30) {
    // counts[w] = subsets of {1..n} with rank sum w; each sign pattern is equally likely under H0.
    const counts = new Float64Array(total + 1);
    counts[0] = 1;
    for (let r = 1; r <= n; r++) for (let w = total; w >= r; w--) counts[w]! += counts[w - r]!;
    const low = Math.min(wPlus, total - wPlus);
    let tail = 0;
    for (let w = 0; w <= low; w++) tail += counts[w]!;
    return { wPlus, p: Math.min(1, (2 * tail) / 2 ** n) };
  }
  const mu = total / 2;
  const sigma = Math.sqrt((n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48);
  if (sigma === 0) return { wPlus, p: 1 };
  const diff = wPlus - mu;
  const z = (diff - Math.sign(diff) * 0.5) / sigma;
  return { wPlus, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

export interface MeanInterval {
  readonly mean: number;
  /** Standard error of the mean. */
  readonly se: number;
  readonly df: number;
  readonly low: number;
  readonly high: number;
}

/** Mean of `xs` with a Student-t interval at `confidence` (NaN bounds for fewer than 2 values). */
export function meanInterval(xs: readonly number[], confidence = 0.95): MeanInterval {
  const n = xs.length;
  const m = mean(xs);
  if (n < 2) return { mean: m, se: Number.NaN, df: 0, low: Number.NaN, high: Number.NaN };
  let sq = 0;
  for (const x of xs) sq += (x - m) ** 2;
  const se = Math.sqrt(sq / (n - 1) / n);
  const half = studentTQuantile(1 - (1 - confidence) / 2, n - 1) * se;
  return { mean: m, se, df: n - 1, low: m - half, high: m + half };
}

export interface WelchResult {
  /** mean(b) - mean(a) */
  readonly diff: number;
  readonly se: number;
  /** Welch–Satterthwaite degrees of freedom. */
  readonly df: number;
  readonly t: number;
  /** Two-sided p-value. */
  readonly p: number;
  /** 95% interval of the difference. */
  readonly low: number;
  readonly high: number;
}

/**
 * Welch's two-sample t-test of mean(b) - mean(a), for per-round values of two runs (log
 * speedups, log medians): the rounds of one run are the units, so the test sees the spread
 * between rounds, not the far smaller spread a sample set of thousands suggests.
 */
export function welchTTest(a: readonly number[], b: readonly number[], confidence = 0.95): WelchResult {
  const ea = meanInterval(a);
  const eb = meanInterval(b);
  const diff = eb.mean - ea.mean;
  const va = ea.se ** 2;
  const vb = eb.se ** 2;
  const se = Math.sqrt(va + vb);
  if (!Number.isFinite(se))
    return { diff, se, df: Number.NaN, t: Number.NaN, p: Number.NaN, low: Number.NaN, high: Number.NaN };
  if (se === 0)
    return {
      diff,
      se,
      df: Number.POSITIVE_INFINITY,
      t: diff === 0 ? 0 : Math.sign(diff) * Infinity,
      p: diff === 0 ? 1 : 0,
      low: diff,
      high: diff,
    };
  const df = (va + vb) ** 2 / ((va > 0 ? va ** 2 / ea.df : 0) + (vb > 0 ? vb ** 2 / eb.df : 0));
  const t = diff / se;
  const p = Math.min(1, 2 * (1 - studentTCdf(Math.abs(t), df)));
  const half = studentTQuantile(1 - (1 - confidence) / 2, df) * se;
  return { diff, se, df, t, p, low: diff - half, high: diff + half };
}

/** The sample standard deviation (n - 1) of xs and its degrees of freedom; 0 and 0 below two values. */
export function sampleSd(xs: readonly number[]): { sd: number; df: number } {
  if (xs.length < 2) return { sd: 0, df: 0 };
  const m = mean(xs);
  return { sd: Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)), df: xs.length - 1 };
}

/**
 * Quantile of the chi-square distribution with `df` degrees of freedom, by the Wilson–Hilferty
 * cube-root approximation (within 2% of the exact quantile from 3 df on at the 5% and 10% tails,
 * which is how the gate's calibration uses it).
 */
export function chiSquareQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return Number.NaN;
  const z = studentTQuantile(p, 1e7);
  const a = 2 / (9 * df);
  return df * Math.max(0, 1 - a + z * Math.sqrt(a)) ** 3;
}

/** Holm–Bonferroni: which of the p-values are significant at family-wise level alpha. */
export function holmSignificant(ps: readonly number[], alpha: number): boolean[] {
  const order = ps
    .map((p, i) => i)
    .filter((i) => Number.isFinite(ps[i]!))
    .sort((i, j) => ps[i]! - ps[j]!);
  const m = order.length;
  const out = ps.map(() => false);
  for (let k = 0; k < m; k++) {
    if (ps[order[k]!]! <= alpha / (m - k)) out[order[k]!] = true;
    else break;
  }
  return out;
}
