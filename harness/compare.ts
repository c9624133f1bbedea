import { JitmemError } from '../core/errors.js';
import { PHASES, PROCESS_COUNTER_NAMES, UNGATED_COUNTERS, type PhaseName, type ProcessCounters, type RatioRow, type Report, type ResultRow } from './report.js';
import { pairRoundMedians, roundMedians, summarizePaired } from './bench/ratios.js';
import { geometricMean, intervalEstimateTest, mean, meanInterval, median, studentTCdf, studentTQuantile, welchTTest } from './statistics.js';

/**
 * Comparison of benchmark reports, row by row: is a change real? Pure: takes validated reports
 * and returns typed rows; `jitmem compare` formats them.
 *
 * Rows are matched by workload, pattern (with the content size for `sweep`), mapper, executor
 * and policy, and with `phases` by phase too. A row is either a time (an iteration's or a
 * phase's median) or a speedup ratio (a mapper over RPC copy or over in-process).
 *
 * The unit of evidence is the measurement round, not the sample. A bench runs the mappers of a
 * group in interleaved rounds; thousands of samples inside one round are not independent (the
 * machine's state carries over), so a rank test over samples calls tiny shifts significant.
 * Per row and per report, each round gives one value: the log of its median (times) or the log
 * of its paired speedup (ratios: both mappers measured in the same round, so the machine's
 * drift between rounds cancels). Then:
 *
 * - one report against one report: Welch's t-test on the two sets of per-round values; the
 *   change is exp(mean head - mean base) - 1 with its 95% interval. Rows are also held to a
 *   noise threshold from the reports' own per-round spread: the change two single rounds show
 *   at level alpha (a run-wide shift of the machine's speed must look like more than a bad
 *   round). A time row's threshold also includes the move its whole group (every mapper of
 *   its workload, pattern and measure) made together: a slower spell of the machine moves them
 *   all, which one run against one cannot tell from a change common to every mapper.
 *   Reports without rounds (older versions) are cut into contiguous blocks of samples for
 *   times; their ratios fall back to a test on the two intervals.
 * - with further runs (`noiseReports`: other runs of HEAD's commit; `baseRuns`: other runs of
 *   BASE's, e.g. the last N stored in a history directory): each run gives one value per row;
 *   the base is the median of the base runs (as github-action-benchmark does), the head the
 *   mean of the head runs, and a t-test with the between-run spread (pooled over both sides)
 *   decides. The smallest change that test could flag is shown as the row's `noise`; above 100%
 *   the row is refused (no verdict) and a warning says why.
 *
 * Across rows, significance is Holm–Bonferroni at `alpha` on one-sided p-values (half the
 * two-sided p, in the direction the change went): alpha is the chance that an unchanged commit
 * shows any regression at all (and, apart, any improvement), not each row's. A change counts as a regression
 * or an improvement when significant AND beyond the row's threshold (default 5%).
 */

/** What a compared row measures: the whole iteration, one phase, a speedup over a baseline mapper, or a cost counter of one process. */
export type Measure =
  | 'latency'
  | PhaseName
  | 'speedup-vs-rpc'
  | 'speedup-vs-inprocess'
  | `${PhaseName}.speedup-vs-${'rpc' | 'inprocess'}`
  | `${'controller' | 'executor'}.${keyof ProcessCounters}`;

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
  /** The threshold the change was held to: the row's threshold, raised to `noise` for rows compared round by round (and for time rows by their group's `commonMove`). */
  readonly threshold: number;
  /**
   * Noise bound of the row: for rows compared round by round, the change two single rounds
   * of one commit exceed with probability alpha; with runs, the smallest change the between-run
   * test could flag. Null when there is none.
   */
  readonly noise: number | null;
  /** Set when the row was not judged because its noise bound exceeds 100%: why. */
  readonly refused?: string;
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
  /**
   * One report against one: the move the row's whole group made together (same workload,
   * pattern, policy and measure, every mapper; see commonMoves), as a fraction. The threshold
   * includes it. Absent when judged over runs or when the group has fewer than three rows.
   */
  readonly commonMove?: number;
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
  /** Compare phase times as well as whole-iteration times, and each mapper phase's paired speedup beside the whole iteration's. */
  readonly phases?: boolean;
  /** Compare only the speedup ratios (what CI does across machines). */
  readonly ratiosOnly?: boolean;
  /** Further runs of the HEAD commit: rows are then judged on between-run statistics. */
  readonly noiseReports?: readonly Report[];
  /** Further runs of the BASE commit (the last N stored runs, say); the base value is the median over all base runs. */
  readonly baseRuns?: readonly Report[];
  /** Only the rows whose labels this returns true for are compared (the gate's headline rows, say). */
  readonly rowFilter?: (label: string) => boolean;
  /** Relative increase of a gated counter that fails (default 1%); an increase must also exceed half a count per iteration. */
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
}

export const DEFAULT_ALPHA = 0.05;
export const DEFAULT_COUNTER_TOLERANCE = 0.01;
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

/** Blocks a report without recorded rounds is cut into: contiguous runs of samples, in the order measured. */
const PSEUDO_ROUNDS = 8;

/**
 * Sample counts of a sample set's rounds: the recorded ones; when the set was cut down on load
 * (readReport keeps an evenly spaced subsample, in order: sample i of m is sample
 * floor((i + 0.5) n / m) of n), how many of the kept samples fall in each round; without
 * recorded rounds, PSEUDO_ROUNDS contiguous blocks.
 */
function roundSizes(row: ResultRow, stats: ResultRow['latency'] = row.latency): number[] {
  const m = stats.samples.length;
  const n = stats.samplesCount;
  const recorded = row.rounds?.map((r) => r.samples);
  if (recorded && recorded.reduce((a, b) => a + b, 0) === n && n >= m) {
    if (m === n) return recorded;
    const sizes = recorded.map(() => 0);
    let round = 0;
    let end = recorded[0]!;
    for (let i = 0; i < m; i++) {
      const j = Math.floor(((i + 0.5) * n) / m);
      while (j >= end && round < recorded.length - 1) end += recorded[++round]!;
      sizes[round]!++;
    }
    return sizes;
  }
  const k = Math.min(PSEUDO_ROUNDS, m);
  return Array.from({ length: k }, (_, i) => Math.floor(((i + 1) * m) / k) - Math.floor((i * m) / k));
}

/** The log medians of the rounds of a sample set (rounds with no sample or a zero median left out). */
function roundLogMedians(samples: readonly number[], sizes: readonly number[]): number[] {
  const out: number[] = [];
  let start = 0;
  for (const size of sizes) {
    if (size > 0) {
      const m = median(samples.slice(start, start + size));
      if (m > 0) out.push(Math.log(m));
    }
    start += size;
  }
  return out;
}

/**
 * A run's value from its per-round values, for the tests over runs: the median. A round that a
 * burst of other work on the machine hit is an outlier on the log scale; a mean would carry it
 * into the run's value and inflate the spread between runs, a median does not.
 */
let runCenter: (rounds: readonly number[]) => number = median;

/** For studies of the gate (test/tools/gate-study.ts): the run value as the mean of rounds instead. */
export function setRunCenter(center: 'median' | 'mean'): void {
  runCenter = center === 'mean' ? mean : median;
}

/** One row of one report, reduced to what the tests need. */
interface RowRun {
  readonly key: RowKey;
  /** Per-round values on the log scale (log medians; log paired speedups). */
  readonly rounds: readonly number[];
  /** The run's value on the log scale: the mean of `rounds`, or the log of the whole figure without them. */
  readonly value: number;
  /** Times: median over all samples and their count. */
  readonly median: number;
  readonly samples: number;
  /** Ratios: the report's speedup and interval. */
  readonly ratio?: RatioRow;
}

/** A report's time rows by label (the first row wins when a label repeats). */
function timeRuns(report: Report, phases: boolean): Map<string, RowRun> {
  const out = new Map<string, RowRun>();
  const put = (key: RowKey, samples: readonly number[], sizes: readonly number[], recorded?: ResultRow['rounds']) => {
    const label = labelOf(key);
    if (out.has(label)) return;
    // The latency's per-round medians were recorded from every sample; use them as they are.
    const rounds = recorded && recorded.length >= 2 ? recorded.filter((r) => r.samples > 0 && r.p50 > 0).map((r) => Math.log(r.p50)) : roundLogMedians(samples, sizes);
    const m = median(samples);
    out.set(label, { key, rounds, value: rounds.length ? runCenter(rounds) : Math.log(m), median: m, samples: samples.length });
  };
  for (const row of report.results) {
    put(timeKey(row, 'latency'), row.latency.samples, roundSizes(row), row.rounds);
    if (phases) {
      for (const phase of PHASES) {
        const stats = row.phases[phase];
        if (!stats) continue;
        // Phase samples are taken in the same iterations as the latency's, so the same rounds cut them.
        put(timeKey(row, phase), stats.samples, roundSizes(row, stats));
      }
    }
  }
  return out;
}

/**
 * A ratio row's paired per-round phase speedups: as the report recorded them, or, for reports
 * from before they were recorded, from the two result rows' phase samples cut into their rounds
 * (as computeRatios pairs rows: the first row of the group per mapper).
 */
function phaseRatioRounds(report: Report, row: RatioRow, phase: PhaseName): number[] | null {
  const recorded = row.phases?.[phase]?.rounds;
  if (recorded) return recorded;
  if (row.phases) return null;
  const same = (r: ResultRow) => r.workload === row.workload && r.pattern === row.pattern && r.policy === row.policy;
  const baseline = report.results.find((r) => same(r) && r.mapper === row.baseline && (row.baseline === 'inprocess' ? r.executor === 'none' : r.executor === row.executor));
  const candidate = report.results.find((r) => same(r) && r.mapper === row.mapper && (r.executor === row.executor || r.executor === 'none'));
  if (!baseline || !candidate || !baseline.rounds || !candidate.rounds) return null;
  const a = baseline.phases[phase];
  const b = candidate.phases[phase];
  if (!a || !b) return null;
  return pairRoundMedians(roundMedians(a.samples, roundSizes(baseline, a)), roundMedians(b.samples, roundSizes(candidate, b)));
}

/**
 * A phase's rows are judged only when it takes at least this share of the iteration (its median
 * over the sum of all phases' medians) in both rows of the base report. A phase of a few
 * microseconds (cray's write: 0.7 us of 20) is timer resolution and scheduling jitter: on
 * quick runs of one commit its ratio swung by 39% and alarmed. Decided on the base alone, before
 * the head is seen, so the choice cannot bend a verdict; fewer rows also spend less of Holm's
 * alpha on rows that cannot carry a transport's change.
 */
export const MIN_PHASE_SHARE = 0.1;

function phaseShare(row: ResultRow, phase: PhaseName): number {
  const sum = Object.values(row.phases).reduce((a, s) => a + (s?.p50 ?? 0), 0);
  const p50 = row.phases[phase]?.p50 ?? 0;
  return sum > 0 ? p50 / sum : 0;
}

function materialPhase(report: Report, row: RatioRow, phase: PhaseName): boolean {
  const same = (r: ResultRow) => r.workload === row.workload && r.pattern === row.pattern && r.policy === row.policy;
  const baseline = report.results.find((r) => same(r) && r.mapper === row.baseline && (row.baseline === 'inprocess' ? r.executor === 'none' : r.executor === row.executor));
  const candidate = report.results.find((r) => same(r) && r.mapper === row.mapper && (r.executor === row.executor || r.executor === 'none'));
  return !!baseline && !!candidate && phaseShare(baseline, phase) >= MIN_PHASE_SHARE && phaseShare(candidate, phase) >= MIN_PHASE_SHARE;
}

/**
 * Ratio rows: each mapper's whole-iteration speedup and, beside it, its speedup in each mapper
 * phase (`initialize.speedup-vs-rpc`...). A change to one phase shows at its full size in that
 * phase's ratio, diluted in the whole iteration's; both are judged alike.
 */
function ratioRuns(report: Report, phaseFilter = false, withPhases = true): Map<string, RowRun> {
  const out = new Map<string, RowRun>();
  const put = (key: RowKey, row: RatioRow, perRound: readonly number[] | undefined, whole: number) => {
    const label = labelOf(key);
    if (out.has(label)) return;
    const rounds = (perRound ?? []).filter((r) => r > 0).map(Math.log);
    out.set(label, { key, rounds: rounds.length >= 2 ? rounds : [], value: rounds.length >= 2 ? runCenter(rounds) : Math.log(whole), median: Number.NaN, samples: 0, ratio: row });
  };
  for (const row of report.ratios) {
    const key = ratioKey(row);
    put(key, row, row.rounds, row.speedup);
    for (const phase of withPhases ? PHASES : []) {
      if (phaseFilter && !materialPhase(report, row, phase)) continue;
      const rounds = phaseRatioRounds(report, row, phase);
      if (!rounds || rounds.length < 3) continue;
      // The row's figures (speedup, interval) are the phase's own, for display and fallbacks.
      const { speedup, ci95, p } = row.phases?.[phase] ?? summarizePaired(rounds);
      const { phases: _whole, ...rest } = row;
      put({ ...key, measure: `${phase}.speedup-vs-${row.baseline}` }, { ...rest, speedup, ci95, rounds, p }, rounds, speedup);
    }
  }
  return out;
}

function identity(report: Report): ReportIdentity {
  return { createdAt: report.createdAt, commit: report.env.commit, dirty: report.env.dirty, node: report.env.node, cpuModel: report.env.cpuModel };
}

function geometricMeanRow(changes: readonly number[]): GeometricMeanRow | null {
  const factors = changes.map((c) => 1 + c).filter((f) => f > 0 && Number.isFinite(f));
  if (factors.length === 0) return null;
  return { rows: factors.length, change: geometricMean(factors) - 1 };
}

function sdOf(xs: readonly number[]): { sd: number; df: number } {
  if (xs.length < 2) return { sd: 0, df: 0 };
  const m = mean(xs);
  return { sd: Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)), df: xs.length - 1 };
}

/** What a test says about one row, before the correction across rows. */
interface RowTest {
  /** head - base on the log scale. */
  readonly diff: number;
  readonly low: number;
  readonly high: number;
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
interface TestContext {
  readonly alpha: number;
  /** Rows compared, for the noise bound's Bonferroni quantile. */
  readonly rows: number;
}

/**
 * One report against one report: Welch's t on per-round values. For times, the noise bound is
 * the difference two single rounds show at level alpha: t(1 - alpha/2, df) * sqrt(s_b^2 + s_h^2).
 */
function roundTest(b: RowRun, h: RowRun, kind: 'time' | 'ratio', ctx: TestContext): RowTest | null {
  if (b.rounds.length < 2 || h.rounds.length < 2) return null;
  const w = welchTTest(b.rounds, h.rounds);
  // Times and ratios alike: a whole run can be slower, or starve one process, in ways no
  // round of it shows apart from the others; the floor asks a change to look like more than a
  // bad round. (Measured here: without it, 4 of 10 pairs of quick runs of one commit on a
  // loaded machine flagged a cray speedup.)
  void kind;
  const sb = sdOf(b.rounds);
  const sh = sdOf(h.rounds);
  const noise = studentTQuantile(1 - ctx.alpha / 2, sb.df + sh.df) * Math.hypot(sb.sd, sh.sd);
  return { diff: w.diff, low: w.low, high: w.high, p: Number.isNaN(w.p) ? 1 : w.p, evidence: 'rounds', noise, noiseRaisesThreshold: true, headValue: h.value };
}

/**
 * Several runs on one side or both: each run's value is one observation. The base is the
 * median of the base runs (the mean with fewer than three), the head the mean of the head runs;
 * the spread between runs, pooled over both sides, gives the standard error (a median of k
 * values has about pi/2 times the variance of their mean). The noise bound is the smallest
 * change this test flags at alpha / rows (one-sided, as the verdicts are).
 */
function runsTest(bs: readonly RowRun[], hs: readonly RowRun[], ctx: TestContext): RowTest | null {
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
  const baseCenter = bv.length >= 3 ? median(bv) : mean(bv);
  const headCenter = mean(hv);
  const se = s * Math.sqrt(1 / hv.length + (bv.length >= 3 ? Math.PI / 2 : 1) / bv.length);
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

const signedPercent = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;

/** Fewest time rows a group needs before its common move is taken from them. */
const MIN_COMMON_MOVE_ROWS = 3;

/** The group of a time row: its label without mapper and executor. */
function moveGroupOf(key: RowKey): string {
  return `${key.workload}/${key.pattern}/${key.policy}/${key.measure}`;
}

/**
 * One report against one: per group of time rows (every mapper of one workload, pattern,
 * policy and measure), the median of their log changes. A report measured in a slower spell of
 * the machine (another process's memory traffic, a vCPU's host) moves every mapper of a
 * workload alike: 6.2 to 11.4 ms for python/load in-process between quick runs of one commit
 * here, while the rounds inside each run agreed. Single runs cannot tell that from a change
 * common to every mapper, so each row is held to its threshold plus its group's common move,
 * and a large move is named in a warning; the speedup ratios, paired within each round, are
 * not affected. With three or more rows, one mapper's own change leaves the median where the
 * others are. Over runs the spread between runs already holds such spells; no move is taken.
 */
function commonMoves(rows: ReadonlyArray<{ kind: 'time' | 'ratio'; key: RowKey; test: RowTest | null }>): Map<string, { move: number; rows: number }> {
  const diffs = new Map<string, number[]>();
  for (const row of rows) {
    if (row.kind !== 'time' || !row.test || row.test.evidence !== 'rounds') continue;
    const group = moveGroupOf(row.key);
    diffs.set(group, [...(diffs.get(group) ?? []), row.test.diff]);
  }
  const out = new Map<string, { move: number; rows: number }>();
  for (const [group, ds] of diffs) if (ds.length >= MIN_COMMON_MOVE_ROWS) out.set(group, { move: median(ds), rows: ds.length });
  return out;
}

/** Holm–Bonferroni: which of the p-values are significant at family-wise level alpha. */
export function holmSignificant(ps: readonly number[], alpha: number): boolean[] {
  const order = ps.map((p, i) => i).filter((i) => Number.isFinite(ps[i]!)).sort((i, j) => ps[i]! - ps[j]!);
  const m = order.length;
  const out = ps.map(() => false);
  for (let k = 0; k < m; k++) {
    if (ps[order[k]!]! <= alpha / (m - k)) out[order[k]!] = true;
    else break;
  }
  return out;
}

const REFUSAL =
  'noise bound above 100%: the runs of one commit disagree by more than a factor of two here, so no change could be told from noise; measure more runs (--noise), on a quieter machine, or with more --rounds';

function settingsWarnings(base: Report, head: Report): string[] {
  const warnings: string[] = [];
  if (base.options.preset !== head.options.preset) {
    warnings.push(`different presets (base: ${base.options.preset}; head: ${head.options.preset}): sampling and plans differ, times are not comparable and ratios only roughly`);
  }
  if (base.options.time !== head.options.time || base.options.iterations !== head.options.iterations) {
    warnings.push(`different sampling (base: --time ${base.options.time ?? '?'} --iterations ${base.options.iterations ?? '?'}; head: --time ${head.options.time ?? '?'} --iterations ${head.options.iterations ?? '?'})`);
  }
  const workloads = (r: Report) => [...new Set(r.results.map((x) => x.workload))].sort().join(', ');
  if (workloads(base) !== workloads(head)) warnings.push(`different workload sets (base: ${workloads(base) || 'none'}; head: ${workloads(head) || 'none'})`);
  if (base.env.cpuModel !== head.env.cpuModel) {
    warnings.push(`different CPU models (base: ${base.env.cpuModel}; head: ${head.env.cpuModel}): absolute times are not comparable, speedup ratios are more so`);
  }
  if (base.env.node !== head.env.node) warnings.push(`different Node versions (base: ${base.env.node}; head: ${head.env.node})`);
  return warnings;
}

/**
 * The counters of the cells both reports measured them in, process by process. Exact: a gated
 * counter regresses when head - base exceeds both tolerance * base and half a count.
 */
function compareCounters(base: Report, head: Report, tolerance: number, keep: (label: string) => boolean, unmatched: UnmatchedRow[]): CounterComparison[] {
  const index = (r: Report) => {
    const out = new Map<string, { row: ResultRow; counters: NonNullable<ResultRow['counters']> }>();
    for (const row of r.results) {
      if (!row.counters) continue;
      const label = labelOf(timeKey(row, 'latency'));
      if (!out.has(label)) out.set(label, { row, counters: row.counters });
    }
    return out;
  };
  const b = index(base);
  const h = index(head);
  const out: CounterComparison[] = [];
  for (const [cell, bc] of b) {
    const hc = h.get(cell);
    for (const side of ['controller', 'executor'] as const) {
      const bs = bc.counters[side];
      const hs = hc?.counters[side];
      if (!bs) continue;
      for (const counter of PROCESS_COUNTER_NAMES) {
        const key = timeKey(bc.row, `${side}.${counter}`);
        const label = labelOf(key);
        if (!keep(label)) continue;
        if (!hs) {
          // A cell of the base without counters in the head (or gone): listed once, by its round trips.
          if (counter === 'roundTrips' && (!hc || hc.counters[side] === null)) unmatched.push({ kind: 'counter', key, label, only: 'base' });
          continue;
        }
        const bv = bs[counter];
        const hv = hs[counter];
        const change = bv === hv ? 0 : bv === 0 ? Infinity : hv / bv - 1;
        const gated = !UNGATED_COUNTERS.has(counter);
        const beyond = Math.abs(hv - bv) > Math.max(tolerance * bv, 0.5);
        const verdict: Verdict = gated && beyond ? (hv > bv ? 'regression' : 'improvement') : 'same';
        out.push({ kind: 'counter', key, label, side, counter, base: bv, head: hv, change, gated, verdict });
      }
    }
  }
  return out;
}

interface PendingRow {
  readonly kind: 'time' | 'ratio';
  readonly label: string;
  readonly key: RowKey;
  readonly b: RowRun;
  readonly h: RowRun;
  readonly test: RowTest | null;
  readonly threshold: number;
}

export function compareReports(base: Report, head: Report, options: CompareOptions = {}): Comparison {
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  if (!(alpha > 0 && alpha < 1)) throw new JitmemError('ERR_INVALID_FLAG', `alpha must be between 0 and 1 (exclusive); got ${alpha}`, { alpha });
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const warnings = settingsWarnings(base, head);
  const noiseReports = options.noiseReports ?? [];
  const baseRuns = options.baseRuns ?? [];
  if (noiseReports.length > 0 && noiseReports.length < 3) {
    warnings.push(
      `${noiseReports.length} noise run${noiseReports.length === 1 ? '' : 's'}: fewer than 3 measure run-to-run noise too loosely to judge by (the bound rests on ${noiseReports.length + baseRuns.length} degree${noiseReports.length + baseRuns.length === 1 ? '' : 's'} of freedom); give at least 3 --noise runs`,
    );
  }
  const byRuns = noiseReports.length > 0 || baseRuns.length > 0;
  const phases = options.phases ?? false;
  const keep = options.rowFilter ?? (() => true);

  const unmatched: UnmatchedRow[] = [];
  const pending: Array<Omit<PendingRow, 'test'> & { bs: RowRun[]; hs: RowRun[] }> = [];
  const collect = (kind: 'time' | 'ratio', of: (r: Report) => Map<string, RowRun>, ofBase: (r: Report) => Map<string, RowRun> = of) => {
    const baseRows = ofBase(base);
    const headRows = of(head);
    const extraBase = baseRuns.map(of);
    const extraHead = noiseReports.map(of);
    for (const [label, b] of baseRows) {
      if (!keep(label)) continue;
      const h = headRows.get(label);
      if (!h) {
        unmatched.push({ kind, key: b.key, label, only: 'base' });
        continue;
      }
      const bs = [b, ...extraBase.map((m) => m.get(label)).filter((x): x is RowRun => x !== undefined)];
      const hs = [h, ...extraHead.map((m) => m.get(label)).filter((x): x is RowRun => x !== undefined)];
      pending.push({ kind, label, key: b.key, b, h, bs, hs, threshold: thresholdFor(b.key, options) });
    }
    // A phase row the base left out as immaterial (MIN_PHASE_SHARE) is not a row HEAD added.
    for (const [label, h] of headRows) if (keep(label) && !baseRows.has(label) && !(kind === 'ratio' && h.key.measure.includes('.'))) unmatched.push({ kind, key: h.key, label, only: 'head' });
  };
  if (!options.ratiosOnly) collect('time', (r) => timeRuns(r, phases));
  // Phase speedups beside the whole iteration's only with --phases: each is one more row a
  // spell of load can move, and the whole-iteration rows are the default gate.
  collect('ratio', (r) => ratioRuns(r, false, phases), (r) => ratioRuns(r, true, phases));

  const ctx: TestContext = { alpha, rows: pending.length };
  const tested: PendingRow[] = pending.map((row) => {
    const bothZeroTime = row.kind === 'time' && row.b.median === 0 && row.h.median === 0;
    const test = bothZeroTime ? null : byRuns ? runsTest(row.bs, row.hs, ctx) : roundTest(row.b, row.h, row.kind, ctx);
    return { kind: row.kind, label: row.label, key: row.key, b: row.b, h: row.h, test, threshold: row.threshold };
  });
  // Rows without a usable test: ratios of reports without rounds fall back to their intervals.
  const pOf = (row: PendingRow): number => {
    if (row.test) return row.test.p;
    if (row.kind === 'ratio' && row.b.ratio && row.h.ratio) {
      const { p } = intervalEstimateTest({ value: row.b.ratio.speedup, ci95: row.b.ratio.ci95 }, { value: row.h.ratio.speedup, ci95: row.h.ratio.ci95 });
      return Number.isNaN(p) ? 1 : p;
    }
    return 1;
  };
  const refusedOf = (row: PendingRow): boolean => row.test?.noise !== null && row.test?.noise !== undefined && Math.expm1(row.test.noise) > 1;
  const ps = tested.map((row) => (refusedOf(row) ? Number.NaN : pOf(row)));
  // Each verdict is a one-sided question, asked in the direction the change went: did this row
  // regress (the gate's only question), or improve? Half the two-sided p answers it, and Holm
  // keeps the chance of any false regression at alpha (and of any false improvement at alpha).
  const significant = holmSignificant(
    ps.map((p) => p / 2),
    alpha,
  );

  const moves = byRuns ? new Map<string, { move: number; rows: number }>() : commonMoves(tested);
  for (const [group, { move, rows }] of moves) {
    if (Math.abs(Math.expm1(move)) <= threshold) continue;
    warnings.push(
      `${group}: all ${rows} mappers' times moved ${signedPercent(Math.expm1(move))} together (median): one run against one cannot tell a slower or faster spell of the machine from a change common to every mapper, so each of these rows is held to its threshold plus that move (the speedup ratios are paired within rounds and unaffected); judge it over runs with --noise`,
    );
  }
  const times: TimeComparison[] = [];
  const ratios: RatioComparison[] = [];
  tested.forEach((row, i) => {
    const t = row.test;
    const refused = refusedOf(row);
    const noise = t?.noise === null || t?.noise === undefined ? null : Math.expm1(t.noise);
    const move = row.kind === 'time' ? moves.get(moveGroupOf(row.key))?.move : undefined;
    const floor = t?.noiseRaisesThreshold && noise !== null ? Math.max(row.threshold, noise) : row.threshold;
    const rowThreshold = move === undefined ? floor : Math.expm1(Math.log1p(floor) + Math.abs(move));
    const common = {
      p: Number.isNaN(ps[i]!) ? pOf(row) : ps[i]!,
      significant: significant[i]!,
      evidence: t?.evidence ?? ('intervals' as Evidence),
      runs: { base: byRuns ? 1 + baseRuns.length : 1, head: byRuns ? 1 + noiseReports.length : 1 },
      threshold: rowThreshold,
      noise,
      ...(refused ? { refused: REFUSAL } : {}),
    };
    if (row.kind === 'time') {
      const change = t ? Math.expm1(t.diff) : row.b.median === 0 && row.h.median === 0 ? 0 : row.h.median / row.b.median - 1;
      const verdict: Verdict = !refused && common.significant && Math.abs(change) > rowThreshold ? (change > 0 ? 'regression' : 'improvement') : 'same';
      times.push({
        kind: 'time',
        key: row.key,
        label: row.label,
        base: { median: row.b.median, samples: row.b.samples },
        head: { median: row.h.median, samples: row.h.samples },
        change,
        ci95: t ? [Math.expm1(t.low), Math.expm1(t.high)] : [change, change],
        ...common,
        ...(move === undefined ? {} : { commonMove: Math.expm1(move) }),
        verdict,
      });
    } else {
      const b = row.b.ratio!;
      const h = row.h.ratio!;
      const baseSpeedup = Math.exp(t?.baseValue ?? row.b.value);
      const headSpeedup = t ? Math.exp(t.headValue) : Math.exp(row.h.value);
      const change = t ? Math.expm1(t.diff) : h.speedup / b.speedup - 1;
      const [low, high] = b.ci95;
      const verdict: Verdict = !refused && common.significant && Math.abs(change) > rowThreshold ? (change < 0 ? 'regression' : 'improvement') : 'same';
      ratios.push({
        kind: 'ratio',
        key: row.key,
        label: row.label,
        base: { speedup: baseSpeedup, ci95: t?.baseCi ? [Math.exp(t.baseCi[0]), Math.exp(t.baseCi[1])] : b.ci95 },
        head: { speedup: headSpeedup, ci95: t?.headCi ? [Math.exp(t.headCi[0]), Math.exp(t.headCi[1])] : h.ci95 },
        change,
        ci95: t ? [Math.expm1(t.low), Math.expm1(t.high)] : [change, change],
        outsideBaseCi: headSpeedup < Math.min(low, high) || headSpeedup > Math.max(low, high),
        ...common,
        verdict,
      });
    }
  });

  const counterTolerance = options.counterTolerance ?? DEFAULT_COUNTER_TOLERANCE;
  const counters = compareCounters(base, head, counterTolerance, keep, unmatched);
  const all = [...times, ...ratios, ...counters];
  const refusedRows = [...times, ...ratios].filter((r) => r.refused);
  if (refusedRows.length) {
    warnings.push(
      `${refusedRows.length} row${refusedRows.length === 1 ? '' : 's'} not judged: ${REFUSAL} (${refusedRows
        .slice(0, 3)
        .map((r) => `${r.label}: ${((r.noise ?? 0) * 100).toFixed(0)}%`)
        .join('; ')}${refusedRows.length > 3 ? '; ...' : ''})`,
    );
  }
  return {
    base: identity(base),
    head: identity(head),
    warnings,
    alpha,
    threshold,
    noiseRuns: noiseReports.length ? noiseReports.length + 1 : 0,
    baseRuns: 1 + baseRuns.length,
    times,
    ratios,
    counters,
    counterTolerance,
    unmatched,
    timesGeometricMean: geometricMeanRow(times.map((t) => t.change)),
    ratiosGeometricMean: geometricMeanRow(ratios.map((r) => r.change)),
    regressions: all.filter((r) => r.verdict === 'regression').length,
    improvements: all.filter((r) => r.verdict === 'improvement').length,
    refused: refusedRows.length,
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
export function calibrateThresholds(reports: readonly Report[], options: { phases?: boolean; ratiosOnly?: boolean; alpha?: number } = {}): CalibratedRow[] {
  if (reports.length < MIN_CALIBRATION_RUNS) {
    throw new JitmemError(
      'ERR_INVALID_FLAG',
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
    if (!options.ratiosOnly) for (const run of timeRuns(report, options.phases ?? false).values()) put(run.key, 'time', run.value);
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
    const { sd } = sdOf(values);
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
