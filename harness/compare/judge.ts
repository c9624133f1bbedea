import { JitmemError } from '../../core/errors.js';
import {
  PROCESS_COUNTER_NAMES,
  UNGATED_COUNTERS,
  type PhaseName,
  type Report,
  type ResultRow,
} from '../report/report.js';
import { geometricMean, holmSignificant, intervalEstimateTest, median } from '../statistics.js';
import {
  DEFAULT_ALPHA,
  DEFAULT_COUNTER_TOLERANCE,
  DEFAULT_THRESHOLD,
  labelOf,
  type CompareOptions,
  type Comparison,
  type CounterComparison,
  type Evidence,
  type GeometricMeanRow,
  type RatioComparison,
  type ReportIdentity,
  type RowKey,
  type TimeComparison,
  type UnmatchedRow,
  type Verdict,
} from './comparison.js';
import { ratioRuns, timeKey, timeRuns, type RowRun } from './row-runs.js';
import { roundTest, runsTest, type RowTest, type TestContext } from './row-tests.js';
import { thresholdFor } from './thresholds.js';

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
 *   all, which one run against one cannot tell from a change common to every mapper; so does a
 *   speedup row's, its group's, since such a spell does not slow every mapper alike.
 *   Reports without rounds (older versions) are cut into contiguous blocks of samples for
 *   times; their ratios fall back to a test on the two intervals.
 * - with further runs (`noiseReports`: other runs of HEAD's commit; `baseRuns`: other runs of
 *   BASE's, e.g. the last N stored in a history directory): each run gives one value per row;
 *   base and head are the means of their runs, and a t-test with the between-run spread
 *   (pooled over both sides) decides; a 'same' verdict rests on the one-sided 95% bound of the
 *   change in the regression direction (row-tests.ts says why one-sided is honest). The
 *   smallest change that test could flag is shown as the row's `noise`; above 100%
 *   the row is refused (no verdict) and a warning says why.
 *
 * Across rows, significance is Holm–Bonferroni at `alpha` on one-sided p-values (half the
 * two-sided p, in the direction the change went): alpha is the chance that an unchanged commit
 * shows any regression at all (and, apart, any improvement), not each row's. A change counts as a regression
 * or an improvement when significant AND beyond the row's threshold (default 5%).
 */

function identity(report: Report): ReportIdentity {
  return {
    createdAt: report.createdAt,
    commit: report.env.commit,
    dirty: report.env.dirty,
    node: report.env.node,
    cpuModel: report.env.cpuModel,
  };
}

function geometricMeanRow(changes: readonly number[]): GeometricMeanRow | null {
  const factors = changes.map((c) => 1 + c).filter((f) => f > 0 && Number.isFinite(f));
  if (factors.length === 0) return null;
  return { rows: factors.length, change: geometricMean(factors) - 1 };
}

const signedPercent = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;

/** Fewest time rows a group needs before its common move is taken from them. */
const MIN_COMMON_MOVE_ROWS = 3;

/**
 * The group of a time row: its label without mapper and executor (and a sweep's content size,
 * which its workload, synthetic-<size>, names already, as a speedup row's does).
 */
function moveGroupOf(key: RowKey): string {
  return `${key.workload}/${key.pattern.replace(/@\d+/, '')}/${key.policy}/${key.measure}`;
}

/** The group of time rows a speedup row is held to the move of: the whole iteration's, or its phase's. */
function ratioMoveGroupOf(key: RowKey): string {
  const [phase, speedup] = key.measure.split('.');
  return moveGroupOf({ ...key, measure: speedup === undefined ? 'latency' : (phase as PhaseName) });
}

/**
 * One report against one: per group of time rows (every mapper of one workload, pattern,
 * policy and measure), the median of their log changes. A report measured in a slower spell of
 * the machine (another process's memory traffic, a vCPU's host) moves every mapper of a
 * workload alike: 6.2 to 11.4 ms for python/load in-process between quick runs of one commit
 * here, while the rounds inside each run agreed. Single runs cannot tell that from a change
 * common to every mapper, so each row is held to its threshold plus its group's common move,
 * and a large move is named in a warning. The group's speedups are held to it too: paired within
 * each round, they would not move were every mapper slowed alike, but a spell does not do that.
 * Two quick runs of one commit in the false-alarm test, one of them in a slower spell: every
 * cray/load mapper's time moved, -31% at the median (in process -38%, RPC copy -21%), and the
 * speedups with an in-process side moved by 19-30%, read as regressions beyond their 15%. With
 * three or more rows, one mapper's own change leaves the median where the others are. Over runs
 * the spread between runs already holds such spells; no move is taken.
 */
function commonMoves(
  rows: ReadonlyArray<{ kind: 'time' | 'ratio'; key: RowKey; test: RowTest | null }>,
): Map<string, { move: number; rows: number }> {
  const diffs = new Map<string, number[]>();
  for (const row of rows) {
    if (row.kind !== 'time' || !row.test || row.test.evidence !== 'rounds') continue;
    const group = moveGroupOf(row.key);
    diffs.set(group, [...(diffs.get(group) ?? []), row.test.diff]);
  }
  const out = new Map<string, { move: number; rows: number }>();
  for (const [group, ds] of diffs)
    if (ds.length >= MIN_COMMON_MOVE_ROWS) out.set(group, { move: median(ds), rows: ds.length });
  return out;
}

export const REFUSAL =
  'noise bound above 100%: the runs of one commit disagree by more than a factor of two here, so no change could be told from noise; measure more runs (--noise), on a quieter machine, or with more --rounds';

function settingsWarnings(base: Report, head: Report): string[] {
  const warnings: string[] = [];
  if (base.options.preset !== head.options.preset) {
    warnings.push(
      `different presets (base: ${base.options.preset}; head: ${head.options.preset}): sampling and plans differ, times are not comparable and ratios only roughly`,
    );
  }
  if (base.options.time !== head.options.time || base.options.iterations !== head.options.iterations) {
    warnings.push(
      `different sampling (base: --time ${base.options.time ?? '?'} --iterations ${base.options.iterations ?? '?'}; head: --time ${head.options.time ?? '?'} --iterations ${head.options.iterations ?? '?'})`,
    );
  }
  const workloads = (r: Report) => [...new Set(r.results.map((x) => x.workload))].sort().join(', ');
  if (workloads(base) !== workloads(head))
    warnings.push(`different workload sets (base: ${workloads(base) || 'none'}; head: ${workloads(head) || 'none'})`);
  if (base.env.cpuModel !== head.env.cpuModel) {
    warnings.push(
      `different CPU models (base: ${base.env.cpuModel}; head: ${head.env.cpuModel}): absolute times are not comparable, speedup ratios are more so`,
    );
  }
  if (base.env.node !== head.env.node)
    warnings.push(`different Node versions (base: ${base.env.node}; head: ${head.env.node})`);
  return warnings;
}

/**
 * The counters of the cells both reports measured them in, process by process. Exact: a gated
 * counter regresses when head - base exceeds both tolerance * base and half a count.
 */
function compareCounters(
  base: Report,
  head: Report,
  tolerance: number,
  keep: (label: string) => boolean,
  unmatched: UnmatchedRow[],
): CounterComparison[] {
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
          if (counter === 'roundTrips' && (!hc || hc.counters[side] === null))
            unmatched.push({ kind: 'counter', key, label, only: 'base' });
          continue;
        }
        const bv = bs[counter];
        const hv = hs[counter];
        // A counter newer than one of the reports (handlerNs): nothing to compare.
        if (bv === undefined || hv === undefined) continue;
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

/** A matched row before its test: its runs on each side (the report's own first). */
type CollectedRow = Omit<PendingRow, 'test'> & { bs: RowRun[]; hs: RowRun[] };

/** The fields every judged row carries, time or ratio, apart from its change and verdict. */
interface JudgedFields {
  readonly p: number;
  readonly significant: boolean;
  readonly evidence: Evidence;
  readonly runs: { readonly base: number; readonly head: number };
  readonly threshold: number;
  readonly noise: number | null;
  readonly refused?: string;
  readonly commonMove?: number;
}

/** How a comparison judges: over runs or round by round, at which alpha, with which extra reports. */
interface JudgeSettings {
  readonly alpha: number;
  readonly byRuns: boolean;
  readonly noiseReports: readonly Report[];
  readonly baseRuns: readonly Report[];
}

/**
 * Rows of base and head matched by label (with the extra runs of each side), and those only one
 * side has. Phase speedups beside the whole iteration's only with --phases: each is one more row
 * a spell of load can move, and the whole-iteration rows are the default gate.
 */
function matchRows(
  base: Report,
  head: Report,
  options: CompareOptions,
): { pending: CollectedRow[]; unmatched: UnmatchedRow[] } {
  const phases = options.phases ?? false;
  const keep = options.rowFilter ?? (() => true);
  const unmatched: UnmatchedRow[] = [];
  const pending: CollectedRow[] = [];
  const collect = (
    kind: 'time' | 'ratio',
    of: (r: Report) => Map<string, RowRun>,
    ofBase: (r: Report) => Map<string, RowRun> = of,
  ) => {
    const baseRows = ofBase(base);
    const headRows = of(head);
    const extraBase = (options.baseRuns ?? []).map(of);
    const extraHead = (options.noiseReports ?? []).map(of);
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
    for (const [label, h] of headRows)
      if (keep(label) && !baseRows.has(label) && !(kind === 'ratio' && h.key.measure.includes('.')))
        unmatched.push({ kind, key: h.key, label, only: 'head' });
  };
  if (!options.ratiosOnly || options.cpu)
    collect('time', (r) => timeRuns(r, phases && !options.ratiosOnly, options.cpu ?? false, !options.ratiosOnly));
  collect(
    'ratio',
    (r) => ratioRuns(r, false, phases),
    (r) => ratioRuns(r, true, phases),
  );
  return { pending, unmatched };
}

/** Each matched row's test: over runs, or round by round; none for a time row that is zero on both sides. */
function testRows(pending: readonly CollectedRow[], settings: JudgeSettings): PendingRow[] {
  const ctx: TestContext = { alpha: settings.alpha, rows: pending.length };
  return pending.map((row) => {
    const bothZeroTime = row.kind === 'time' && row.b.median === 0 && row.h.median === 0;
    const test = bothZeroTime
      ? null
      : settings.byRuns
        ? runsTest(row.bs, row.hs, ctx)
        : roundTest(row.b, row.h, row.kind, ctx);
    return { kind: row.kind, label: row.label, key: row.key, b: row.b, h: row.h, test, threshold: row.threshold };
  });
}

/** A row's p-value; rows without a usable test: ratios of reports without rounds fall back to their intervals. */
function pOf(row: PendingRow): number {
  if (row.test) return row.test.p;
  if (row.kind === 'ratio' && row.b.ratio && row.h.ratio) {
    const { p } = intervalEstimateTest(
      { value: row.b.ratio.speedup, ci95: row.b.ratio.ci95 },
      { value: row.h.ratio.speedup, ci95: row.h.ratio.ci95 },
    );
    return Number.isNaN(p) ? 1 : p;
  }
  return 1;
}

/** A row whose noise bound exceeds 100% is not judged. */
function refusedOf(row: PendingRow): boolean {
  return row.test?.noise !== null && row.test?.noise !== undefined && Math.expm1(row.test.noise) > 1;
}

/** Warns of each group whose mappers' times all moved together beyond the threshold. */
function commonMoveWarnings(moves: Map<string, { move: number; rows: number }>, threshold: number): string[] {
  const warnings: string[] = [];
  for (const [group, { move, rows }] of moves) {
    if (Math.abs(Math.expm1(move)) <= threshold) continue;
    warnings.push(
      `${group}: all ${rows} mappers' times moved ${signedPercent(Math.expm1(move))} together (median): one run against one cannot tell a slower or faster spell of the machine from a change common to every mapper, so each of these rows, and each speedup of the group, is held to its threshold plus that move (a spell does not slow every mapper alike, so even speedups paired within rounds move with it); judge it over runs with --noise`,
    );
  }
  return warnings;
}

/** The verdict of a change past `threshold` in the given direction (+1: larger is worse, -1: smaller is worse). */
function verdictOf(fields: JudgedFields, change: number, worse: 1 | -1): Verdict {
  if (!fields.refused && fields.significant && Math.abs(change) > fields.threshold)
    return change * worse > 0 ? 'regression' : 'improvement';
  return 'same';
}

/** A time row judged: its change (positive is slower), verdict, and why it is undecided if it is. */
function judgeTime(row: PendingRow, fields: JudgedFields, asked: number, byRuns: boolean): TimeComparison {
  const t = row.test;
  const change = t
    ? Math.expm1(t.diff)
    : row.b.median === 0 && row.h.median === 0
      ? 0
      : row.h.median / row.b.median - 1;
  const verdict = verdictOf(fields, change, 1);
  const reach = t ? Math.expm1(t.diff + boundHalf(t)) : change;
  const undecided = undecidedWhy(fields.refused !== undefined, verdict, reach, asked, t, byRuns, 1);
  return {
    kind: 'time',
    key: row.key,
    label: row.label,
    base: { median: row.b.median, samples: row.b.samples },
    head: { median: row.h.median, samples: row.h.samples },
    change,
    ci95: t ? [Math.expm1(t.low), Math.expm1(t.high)] : [change, change],
    ...fields,
    ...(undecided ? { undecided } : {}),
    verdict,
  };
}

/** A speedup row judged: its change (negative is a loss of speedup), verdict, and why it is undecided if it is. */
function judgeRatio(row: PendingRow, fields: JudgedFields, asked: number, byRuns: boolean): RatioComparison {
  const t = row.test;
  const b = row.b.ratio!;
  const h = row.h.ratio!;
  const baseSpeedup = Math.exp(t?.baseValue ?? row.b.value);
  const headSpeedup = t ? Math.exp(t.headValue) : Math.exp(row.h.value);
  const change = t ? Math.expm1(t.diff) : h.speedup / b.speedup - 1;
  const [low, high] = b.ci95;
  const verdict = verdictOf(fields, change, -1);
  // A lower speedup is the regression direction: the interval's low end must stay within it.
  const reach = t ? -Math.expm1(t.diff - boundHalf(t)) : -change;
  const undecided = undecidedWhy(fields.refused !== undefined, verdict, reach, asked, t, byRuns, -1);
  return {
    kind: 'ratio',
    key: row.key,
    label: row.label,
    base: { speedup: baseSpeedup, ci95: t?.baseCi ? [Math.exp(t.baseCi[0]), Math.exp(t.baseCi[1])] : b.ci95 },
    head: { speedup: headSpeedup, ci95: t?.headCi ? [Math.exp(t.headCi[0]), Math.exp(t.headCi[1])] : h.ci95 },
    change,
    ci95: t ? [Math.expm1(t.low), Math.expm1(t.high)] : [change, change],
    outsideBaseCi: headSpeedup < Math.min(low, high) || headSpeedup > Math.max(low, high),
    ...fields,
    ...(undecided ? { undecided } : {}),
    verdict,
  };
}

/**
 * Every tested row judged against its threshold. Each verdict is a one-sided question, asked in
 * the direction the change went: did this row regress (the gate's only question), or improve?
 * Half the two-sided p answers it, and Holm keeps the chance of any false regression at alpha
 * (and of any false improvement at alpha).
 */
function judgeRows(
  tested: readonly PendingRow[],
  moves: Map<string, { move: number; rows: number }>,
  settings: JudgeSettings,
): { times: TimeComparison[]; ratios: RatioComparison[] } {
  const { byRuns } = settings;
  const ps = tested.map((row) => (refusedOf(row) ? Number.NaN : pOf(row)));
  const significant = holmSignificant(
    ps.map((p) => p / 2),
    settings.alpha,
  );
  const times: TimeComparison[] = [];
  const ratios: RatioComparison[] = [];
  tested.forEach((row, i) => {
    const t = row.test;
    const noise = t?.noise === null || t?.noise === undefined ? null : Math.expm1(t.noise);
    const move = moves.get(row.kind === 'time' ? moveGroupOf(row.key) : ratioMoveGroupOf(row.key))?.move;
    const floor = t?.noiseRaisesThreshold && noise !== null ? Math.max(row.threshold, noise) : row.threshold;
    // A threshold widened by the group's common move, on the log scale (the move is the machine's).
    const withMove = (x: number) => (move === undefined ? x : Math.expm1(Math.log1p(x) + Math.abs(move)));
    const fields: JudgedFields = {
      p: Number.isNaN(ps[i]!) ? pOf(row) : ps[i]!,
      significant: significant[i]!,
      evidence: t?.evidence ?? ('intervals' as Evidence),
      runs: {
        base: byRuns ? 1 + settings.baseRuns.length : 1,
        head: byRuns ? 1 + settings.noiseReports.length : 1,
      },
      threshold: withMove(floor),
      noise,
      ...(refusedOf(row) ? { refused: REFUSAL } : {}),
      ...(move === undefined ? {} : { commonMove: Math.expm1(move) }),
    };
    // The threshold a 'same' must be known to stay within: the row's own (with the common move of
    // its group, which is the machine's), never one raised by the row's noise: a noisy row is
    // not thereby known to be unchanged.
    const asked = withMove(row.threshold);
    if (row.kind === 'time') times.push(judgeTime(row, fields, asked, byRuns));
    else ratios.push(judgeRatio(row, fields, asked, byRuns));
  });
  return { times, ratios };
}

/** Warns of the rows not judged because of their noise, naming the first three. */
function refusalWarning(refusedRows: ReadonlyArray<TimeComparison | RatioComparison>): string[] {
  if (!refusedRows.length) return [];
  return [
    `${refusedRows.length} row${refusedRows.length === 1 ? '' : 's'} not judged: ${REFUSAL} (${refusedRows
      .slice(0, 3)
      .map((r) => `${r.label}: ${((r.noise ?? 0) * 100).toFixed(0)}%`)
      .join('; ')}${refusedRows.length > 3 ? '; ...' : ''})`,
  ];
}

export function compareReports(base: Report, head: Report, options: CompareOptions = {}): Comparison {
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  if (!(alpha > 0 && alpha < 1))
    throw new JitmemError('ERR_INVALID_ARGUMENT', `alpha must be between 0 and 1 (exclusive); got ${alpha}`, { alpha });
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  const warnings = settingsWarnings(base, head);
  const noiseReports = options.noiseReports ?? [];
  const baseRuns = options.baseRuns ?? [];
  if (noiseReports.length > 0 && noiseReports.length < 3) {
    warnings.push(
      `${noiseReports.length} noise run${noiseReports.length === 1 ? '' : 's'}: fewer than 3 measure run-to-run noise too loosely to judge by (the bound rests on ${noiseReports.length + baseRuns.length} degree${noiseReports.length + baseRuns.length === 1 ? '' : 's'} of freedom); give at least 3 --noise runs`,
    );
  }
  const settings: JudgeSettings = {
    alpha,
    byRuns: noiseReports.length > 0 || baseRuns.length > 0,
    noiseReports,
    baseRuns,
  };
  const { pending, unmatched } = matchRows(base, head, options);
  const tested = testRows(pending, settings);
  const moves = settings.byRuns ? new Map<string, { move: number; rows: number }>() : commonMoves(tested);
  warnings.push(...commonMoveWarnings(moves, threshold));
  const { times, ratios } = judgeRows(tested, moves, settings);
  const counterTolerance = options.counterTolerance ?? DEFAULT_COUNTER_TOLERANCE;
  const counters = compareCounters(base, head, counterTolerance, options.rowFilter ?? (() => true), unmatched);
  const all = [...times, ...ratios, ...counters];
  const refusedRows = [...times, ...ratios].filter((r) => r.refused);
  warnings.push(...refusalWarning(refusedRows));
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
    undecided: [...times, ...ratios].filter((r) => r.undecided).length,
  };
}

/**
 * How far the bound a 'same' verdict rests on reaches from the change (log scale): one-sided
 * over runs, else half the 95% interval.
 */
function boundHalf(t: RowTest): number {
  return t.oneSidedHalf ?? (t.high - t.low) / 2;
}

/**
 * Why a row could not be judged, or undefined when it was: a regression or an improvement
 * beyond its threshold is a verdict; 'same' is one only when the interval of the change stays
 * within the asked threshold in the regression direction (`reach`: how far towards a
 * regression the interval goes, as a positive change). Says what would narrow the interval
 * enough: an interval's half-width shrinks as one over the square root of the rounds (one run
 * against one) or of the runs.
 */
function undecidedWhy(
  refused: boolean,
  verdict: Verdict,
  reach: number,
  asked: number,
  t: RowTest | null,
  byRuns: boolean,
  regressionSign: 1 | -1,
): string | undefined {
  if (refused) return `${REFUSAL}`;
  if (verdict !== 'same' || reach <= asked) return undefined;
  const bound = t?.oneSidedHalf !== undefined ? 'the one-sided 95% bound' : 'the 95% interval';
  const reachText = `${bound} of its change reaches a ${(reach * 100).toFixed(1)}% regression, past its threshold ${(asked * 100).toFixed(1)}%`;
  if (!t) return `${reachText} (the reports have no rounds to judge it by)`;
  const half = boundHalf(t);
  // How far the estimate sits from a regression of the asked size (log scale): the interval's
  // half-width must shrink below that to rule one out.
  const room = Math.log1p(asked) - regressionSign * t.diff;
  if (!(room > 0))
    return `${reachText}; its change is itself a regression beyond the threshold, not a significant one: more rounds or runs would tell`;
  const factor = Math.ceil((half / room) ** 2 * 10) / 10;
  return byRuns
    ? `${reachText}; about ${factor}x as many runs (--noise / --base-run) would rule it out`
    : `${reachText}; about ${factor}x as many rounds in each report (bench --precision ${Math.max(0.5, Math.floor((room / Math.SQRT2) * 1000) / 10)} or tighter), or judging over runs with at least 3 --noise runs, would rule it out`;
}
