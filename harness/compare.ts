import { JitmemError } from '../core/errors.js';
import { PHASES, type PhaseName, type RatioRow, type Report, type ResultRow } from './report.js';
import { bootstrapRatioOfMedians, geometricMean, intervalEstimateTest, mannWhitneyU, median, studentTQuantile } from './statistics.js';

/**
 * Comparison of two benchmark reports, row by row: is a change real? Pure: takes two validated
 * reports and returns typed rows; `jitmem compare` formats them.
 *
 * Times: rows are matched by workload, pattern (with the content size for `sweep`), mapper,
 * executor and policy, and with `phases` by phase too. Per row, the change is
 * median(head) / median(base) - 1 with a 95% percentile-bootstrap confidence interval, and the
 * two sample sets are put to a two-sided Mann–Whitney U test. A change counts only when it is
 * significant (p < alpha) *and* beyond the row's noise threshold: on a shared machine large
 * sample sets make tiny, meaningless shifts significant, and the threshold is what keeps them
 * from failing CI.
 *
 * Speedup ratios: a report holds each ratio with its 95% interval but without samples. A ratio
 * change is significant when a Wald test on the log scale, with standard errors taken from
 * both reports' intervals, gives p < alpha (statistics.intervalEstimateTest); it counts when
 * it is also beyond the threshold. A *drop* in speedup is a regression. (The simpler rule
 * "the head's speedup lies outside the base's ci95" ignores the head's own uncertainty and
 * calls about one unchanged row in six significant; it is reported as `outsideBaseCi`.)
 *
 * Run-to-run noise: both tests see only the noise within one run. Between runs of the same
 * commit, medians and speedups move far more (CPU placement and frequency, other load on the
 * machine): measured here, quick-bench speedups moved by 20-60% between runs. Given further
 * runs of HEAD's commit (`noiseReports`), each row's threshold is raised to the change that
 * run-to-run noise alone would exceed with probability alpha across all rows
 * (calibrateThresholds), which is what makes the gate quiet on an unchanged commit.
 */

/** What a compared row measures: the whole iteration, one phase, or a speedup over a baseline mapper. */
export type Measure = 'latency' | PhaseName | 'speedup-vs-rpc' | 'speedup-vs-inprocess';

export type Verdict = 'regression' | 'improvement' | 'same';

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

export interface TimeComparison {
  readonly kind: 'time';
  readonly key: RowKey;
  /** `workload/pattern/mapper/executor/policy/measure`, what `--threshold-for` patterns match. */
  readonly label: string;
  readonly base: { readonly median: number; readonly samples: number };
  readonly head: { readonly median: number; readonly samples: number };
  /** median(head) / median(base) - 1: positive is slower. */
  readonly change: number;
  /** 95% bootstrap interval of the change. */
  readonly ci95: readonly [number, number];
  /** Two-sided Mann–Whitney U p-value. */
  readonly p: number;
  readonly significant: boolean;
  /** The threshold the change was held to: the row's threshold, raised to its measured run-to-run noise. */
  readonly threshold: number;
  /** Run-to-run noise bound of this row over HEAD and the noise runs (calibrateThresholds' noiseBound; null without noise runs). */
  readonly noise: number | null;
  readonly verdict: Verdict;
}

export interface RatioComparison {
  readonly kind: 'ratio';
  readonly key: RowKey;
  readonly label: string;
  readonly base: { readonly speedup: number; readonly ci95: readonly [number, number] };
  readonly head: { readonly speedup: number; readonly ci95: readonly [number, number] };
  /** head speedup / base speedup - 1: negative is a loss of speedup. */
  readonly change: number;
  /** Two-sided p-value of the log-scale Wald test on the two intervals. */
  readonly p: number;
  readonly significant: boolean;
  /** The head's speedup lies outside the base's ci95 (for information). */
  readonly outsideBaseCi: boolean;
  readonly threshold: number;
  readonly noise: number | null;
  readonly verdict: Verdict;
}

/** A row present in one report only: listed, never an error. */
export interface UnmatchedRow {
  readonly kind: 'time' | 'ratio';
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
  /** Significance level of the tests (default 0.05). */
  readonly alpha?: number;
  /** Noise threshold as a fraction (default 0.05 = 5%). */
  readonly threshold?: number;
  /** Per-row thresholds; the last rule whose pattern matches a row wins. */
  readonly thresholdRules?: readonly ThresholdRule[];
  /** Compare phase times as well as whole-iteration times. */
  readonly phases?: boolean;
  /** Compare only the speedup ratios (what CI does across machines). */
  readonly ratiosOnly?: boolean;
  /**
   * Further runs of the HEAD commit. With them, each row's threshold is at least the worst
   * change between HEAD and these runs in the regression direction (calibrateThresholds):
   * a change has to exceed the run-to-run noise measured now, on this machine, to count.
   */
  readonly noiseReports?: readonly Report[];
  /** Seed of the bootstrap resampling (default fixed, so output repeats). */
  readonly seed?: number;
  readonly resamples?: number;
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
  /** Differences between the two machines that make absolute times less comparable. */
  readonly warnings: readonly string[];
  readonly alpha: number;
  readonly threshold: number;
  /** Runs of HEAD's commit the noise was measured over (HEAD included); 0 without noise runs. */
  readonly noiseRuns: number;
  readonly times: readonly TimeComparison[];
  readonly ratios: readonly RatioComparison[];
  readonly unmatched: readonly UnmatchedRow[];
  /** Geometric mean of the time changes (null when no time rows were compared). */
  readonly timesGeometricMean: GeometricMeanRow | null;
  /** Geometric mean of the speedup changes (null when no ratios were compared). */
  readonly ratiosGeometricMean: GeometricMeanRow | null;
  /** Rows that are significant regressions beyond their threshold: what fails CI. */
  readonly regressions: number;
  readonly improvements: number;
}

export const DEFAULT_ALPHA = 0.05;
export const DEFAULT_THRESHOLD = 0.05;

export function labelOf(key: RowKey): string {
  return `${key.workload}/${key.pattern}/${key.mapper}/${key.executor}/${key.policy}/${key.measure}`;
}

/**
 * Parses a percentage as the CLI takes it: `5%`, `5` (both five percent) or `2.5%`.
 * Returns a fraction. Throws ERR_INVALID_FLAG naming the flag and the text.
 */
export function parsePercent(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const value = m ? Number(m[1]) : Number.NaN;
  if (!Number.isFinite(value)) {
    throw new JitmemError('ERR_INVALID_FLAG', `${flag} must be a percentage such as 5% or 2.5; got ${JSON.stringify(text)}`, { flag, value: text });
  }
  return value / 100;
}

/**
 * Parses one `--threshold-for PATTERN=PERCENT` rule. PATTERN is a row label
 * `workload/pattern/mapper/executor/policy/measure` in which `*` matches any text inside one
 * segment; a pattern with fewer segments matches every row those leading segments match.
 */
export function parseThresholdRule(text: string): ThresholdRule {
  const eq = text.lastIndexOf('=');
  const pattern = eq > 0 ? text.slice(0, eq).trim() : '';
  if (eq <= 0 || pattern === '') {
    throw new JitmemError('ERR_INVALID_FLAG', `--threshold-for expects PATTERN=PERCENT such as 'python/churn/*=10%'; got ${JSON.stringify(text)}`, { flag: '--threshold-for', value: text });
  }
  const segments = pattern.split('/');
  if (segments.length > 6 || segments.some((s) => s === '')) {
    throw new JitmemError(
      'ERR_INVALID_FLAG',
      `--threshold-for pattern ${JSON.stringify(pattern)} must be 1 to 6 non-empty segments workload/pattern/mapper/executor/policy/measure separated by '/'`,
      { flag: '--threshold-for', value: text },
    );
  }
  return { pattern, threshold: parsePercent(`--threshold-for ${pattern}`, text.slice(eq + 1)) };
}

function globSegment(glob: string, value: string): boolean {
  const re = new RegExp('^' + glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return re.test(value);
}

/**
 * Whether a threshold pattern matches a row. The pattern segment `sweep` matches
 * `sweep@65536` too, and `load` matches `load+cold`, unless the glob names them.
 */
export function patternMatches(pattern: string, key: RowKey): boolean {
  const values = [key.workload, key.pattern, key.mapper, key.executor, key.policy, key.measure];
  return pattern.split('/').every((glob, i) => {
    const value = values[i]!;
    if (globSegment(glob, value)) return true;
    if (i !== 1) return false;
    let bare = value;
    if (!glob.includes('+')) bare = bare.replace(/\+.*$/, '');
    if (!glob.includes('@')) bare = bare.replace(/@\d+/, '');
    return globSegment(glob, bare);
  });
}

function thresholdFor(key: RowKey, options: CompareOptions): number {
  let threshold = options.threshold ?? DEFAULT_THRESHOLD;
  for (const rule of options.thresholdRules ?? []) if (patternMatches(rule.pattern, key)) threshold = rule.threshold;
  return threshold;
}

function timeKey(row: ResultRow, measure: Measure): RowKey {
  // A cold cell (a fresh slab every iteration) measures something else than a warm one: it
  // only ever matches another cold cell.
  const pattern = `${row.pattern === 'sweep' && row.contentBytes !== undefined ? `sweep@${row.contentBytes}` : row.pattern}${row.cold ? '+cold' : ''}`;
  // A run row is also told apart by its linker, and llvm-jitlink's two RPC modes by memory manager.
  const linker = row.linker === 'llvm-jitlink' ? `+llvm-jitlink${row.memmgr ? `:${row.memmgr}` : ''}` : '';
  // jitmem's warm controller and its process per run are different measurements (cold rows keep their old key).
  const controller = row.controller === 'warm' ? '+warm' : '';
  return { workload: row.workload, pattern: pattern + linker + controller, mapper: row.mapper, executor: row.executor, policy: row.policy, measure };
}

function ratioKey(row: RatioRow): RowKey {
  return { workload: row.workload, pattern: row.pattern, mapper: row.mapper, executor: row.executor, policy: row.policy, measure: `speedup-vs-${row.baseline}` };
}

/** Sample sets of a report by row label (the first row wins when a label repeats). */
function timeSamples(report: Report, phases: boolean): Map<string, { key: RowKey; samples: readonly number[] }> {
  const out = new Map<string, { key: RowKey; samples: readonly number[] }>();
  const put = (key: RowKey, samples: readonly number[]) => {
    const label = labelOf(key);
    if (!out.has(label)) out.set(label, { key, samples });
  };
  for (const row of report.results) {
    put(timeKey(row, 'latency'), row.latency.samples);
    if (phases) for (const phase of PHASES) if (row.phases[phase]) put(timeKey(row, phase), row.phases[phase]!.samples);
  }
  return out;
}

function ratioRows(report: Report): Map<string, { key: RowKey; row: RatioRow }> {
  const out = new Map<string, { key: RowKey; row: RatioRow }>();
  for (const row of report.ratios) {
    const key = ratioKey(row);
    const label = labelOf(key);
    if (!out.has(label)) out.set(label, { key, row });
  }
  return out;
}

function identity(report: Report): ReportIdentity {
  return { createdAt: report.createdAt, commit: report.env.commit, dirty: report.env.dirty, node: report.env.node, cpuModel: report.env.cpuModel };
}

function verdictOf(significant: boolean, change: number, threshold: number, worseIsPositive: boolean): Verdict {
  if (!significant || !(Math.abs(change) > threshold)) return 'same';
  const worse = worseIsPositive ? change > 0 : change < 0;
  return worse ? 'regression' : 'improvement';
}

function geometricMeanRow(changes: readonly number[]): GeometricMeanRow | null {
  const factors = changes.map((c) => 1 + c).filter((f) => f > 0 && Number.isFinite(f));
  if (factors.length === 0) return null;
  return { rows: factors.length, change: geometricMean(factors) - 1 };
}

export function compareReports(base: Report, head: Report, options: CompareOptions = {}): Comparison {
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  if (!(alpha > 0 && alpha < 1)) throw new JitmemError('ERR_INVALID_FLAG', `alpha must be between 0 and 1 (exclusive); got ${alpha}`, { alpha });
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const warnings: string[] = [];
  if (base.env.cpuModel !== head.env.cpuModel) {
    warnings.push(`different CPU models (base: ${base.env.cpuModel}; head: ${head.env.cpuModel}): absolute times are not comparable, speedup ratios are more so`);
  }
  if (base.env.node !== head.env.node) warnings.push(`different Node versions (base: ${base.env.node}; head: ${head.env.node})`);

  const noiseReports = options.noiseReports ?? [];
  const noise = new Map<string, number>();
  if (noiseReports.length > 0) {
    for (const row of calibrateThresholds([head, ...noiseReports], { alpha, phases: options.phases ?? false, ratiosOnly: options.ratiosOnly ?? false })) noise.set(row.label, row.noiseBound);
  }
  const thresholdOf = (key: RowKey): { threshold: number; noise: number | null } => {
    const rowNoise = noise.get(labelOf(key));
    const threshold = thresholdFor(key, options);
    return { threshold: rowNoise === undefined ? threshold : Math.max(threshold, rowNoise), noise: rowNoise ?? (noiseReports.length ? 0 : null) };
  };
  const unmatched: UnmatchedRow[] = [];
  const times: TimeComparison[] = [];
  if (!options.ratiosOnly) {
    const baseRows = timeSamples(base, options.phases ?? false);
    const headRows = timeSamples(head, options.phases ?? false);
    for (const [label, b] of baseRows) {
      const h = headRows.get(label);
      if (!h) {
        unmatched.push({ kind: 'time', key: b.key, label, only: 'base' });
        continue;
      }
      const est = bootstrapRatioOfMedians(h.samples, b.samples, { seed: options.seed ?? 0x5eed, ...(options.resamples ? { resamples: options.resamples } : {}) });
      const { p } = mannWhitneyU(b.samples, h.samples);
      const { threshold: rowThreshold, noise: rowNoise } = thresholdOf(b.key);
      const baseMedian = median(b.samples);
      const headMedian = median(h.samples);
      // A phase that takes no measurable time in both (a warm slab reserves nothing) has not changed.
      const bothZero = baseMedian === 0 && headMedian === 0;
      const change = bothZero ? 0 : est.ratio - 1;
      const ci95: [number, number] = bothZero ? [0, 0] : [est.low - 1, est.high - 1];
      const significant = p < alpha;
      times.push({
        kind: 'time',
        key: b.key,
        label,
        base: { median: baseMedian, samples: b.samples.length },
        head: { median: headMedian, samples: h.samples.length },
        change,
        ci95,
        p,
        significant,
        threshold: rowThreshold,
        noise: rowNoise,
        verdict: verdictOf(significant, change, rowThreshold, true),
      });
    }
    for (const [label, h] of headRows) if (!baseRows.has(label)) unmatched.push({ kind: 'time', key: h.key, label, only: 'head' });
  }

  const ratios: RatioComparison[] = [];
  const baseRatios = ratioRows(base);
  const headRatios = ratioRows(head);
  for (const [label, b] of baseRatios) {
    const h = headRatios.get(label);
    if (!h) {
      unmatched.push({ kind: 'ratio', key: b.key, label, only: 'base' });
      continue;
    }
    const change = h.row.speedup / b.row.speedup - 1;
    const [low, high] = b.row.ci95;
    const outsideBaseCi = h.row.speedup < Math.min(low, high) || h.row.speedup > Math.max(low, high);
    const { p } = intervalEstimateTest({ value: b.row.speedup, ci95: b.row.ci95 }, { value: h.row.speedup, ci95: h.row.ci95 });
    const significant = p < alpha;
    const { threshold: rowThreshold, noise: rowNoise } = thresholdOf(b.key);
    ratios.push({
      kind: 'ratio',
      key: b.key,
      label,
      base: { speedup: b.row.speedup, ci95: b.row.ci95 },
      head: { speedup: h.row.speedup, ci95: h.row.ci95 },
      change,
      p,
      significant,
      outsideBaseCi,
      threshold: rowThreshold,
      noise: rowNoise,
      verdict: verdictOf(significant, change, rowThreshold, false),
    });
  }
  for (const [label, h] of headRatios) if (!baseRatios.has(label)) unmatched.push({ kind: 'ratio', key: h.key, label, only: 'head' });

  const all = [...times, ...ratios];
  return {
    base: identity(base),
    head: identity(head),
    warnings,
    alpha,
    threshold,
    noiseRuns: noiseReports.length ? noiseReports.length + 1 : 0,
    times,
    ratios,
    unmatched,
    timesGeometricMean: geometricMeanRow(times.map((t) => t.change)),
    ratiosGeometricMean: geometricMeanRow(ratios.map((r) => r.change)),
    regressions: all.filter((r) => r.verdict === 'regression').length,
    improvements: all.filter((r) => r.verdict === 'improvement').length,
  };
}

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
   * log values (k runs), t(1 - alpha/(2m), k - 1) * s * sqrt(2) on the log scale. The
   * difference of two runs has twice one run's variance; s is an estimate, hence Student's t;
   * and a gate fails when any one of m rows exceeds its bound, hence alpha / m (Bonferroni),
   * which keeps the chance that an unchanged commit fails the gate at most alpha.
   */
  readonly noiseBound: number;
  /** The larger of worstChange and noiseBound, rounded up to the next whole 5%. */
  readonly suggested: number;
}

/**
 * Measures the noise between runs of the same commit, row by row: the values `compare` works
 * on (the median for times, the speedup for ratios) across the reports. Within-run statistics
 * cannot see run-to-run noise (CPU placement, frequency, other load on the machine), which is
 * why the thresholds of a CI gate should come from here. Needs two or more reports.
 */
export function calibrateThresholds(reports: readonly Report[], options: { phases?: boolean; ratiosOnly?: boolean; alpha?: number } = {}): CalibratedRow[] {
  if (reports.length < 2) throw new JitmemError('ERR_INVALID_FLAG', `calibration needs two or more reports of the same commit; got ${reports.length}`, { reports: reports.length });
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const rows = new Map<string, { key: RowKey; kind: 'time' | 'ratio'; values: number[] }>();
  const put = (key: RowKey, kind: 'time' | 'ratio', value: number) => {
    const label = labelOf(key);
    const row = rows.get(label) ?? rows.set(label, { key, kind, values: [] }).get(label)!;
    row.values.push(value);
  };
  for (const report of reports) {
    if (!options.ratiosOnly) for (const { key, samples } of timeSamples(report, options.phases ?? false).values()) put(key, 'time', median(samples));
    for (const { key, row } of ratioRows(report).values()) put(key, 'ratio', row.speedup);
  }
  const out: CalibratedRow[] = [];
  const rowAlpha = alpha / Math.max(1, [...rows.values()].filter((r) => r.values.filter((v) => v > 0).length >= 2).length);
  for (const [label, { key, kind, values }] of rows) {
    const positive = values.filter((v) => v > 0);
    if (positive.length < 2) continue;
    const low = Math.min(...positive);
    const high = Math.max(...positive);
    // Times regress upwards (head / base largest: high / low), speedups downwards (low / high).
    const worstChange = kind === 'time' ? high / low - 1 : 1 - low / high;
    const logs = positive.map(Math.log);
    const m = logs.reduce((a, b) => a + b, 0) / logs.length;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - m) ** 2, 0) / (logs.length - 1));
    const bound = studentTQuantile(1 - rowAlpha / 2, logs.length - 1) * sd * Math.SQRT2;
    const noiseBound = kind === 'time' ? Math.expm1(bound) : -Math.expm1(-bound);
    const worst = Math.max(worstChange, noiseBound);
    out.push({ key, label, runs: positive.length, worstChange, noiseBound, suggested: Math.max(0.05, Math.ceil((worst * 100 - 1e-9) / 5) * 0.05) });
  }
  return out;
}
