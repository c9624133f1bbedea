import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RatioRow, ResultRow, RoundSummary, SamplingGroup } from '../report/report.js';
import { median, studentTQuantile } from '../statistics.js';
import { computeRatios } from './ratios.js';

/**
 * How long the bench samples: a fixed number of interleaved rounds, or, with a precision target,
 * rounds added to each workload/pattern/policy group until every speedup of the group is known
 * to the asked width (or its share of the time budget is spent).
 */

/**
 * The row with its per-round medians: `ends[i]` is the number of samples measured by the end
 * of round i, `positions[i]` the row's place in round i's order. Rounds that measured nothing
 * are kept with 0 samples (ratios pair rounds by index and skip a pair with an empty side).
 */
export function withRounds(row: ResultRow, ends: readonly number[], positions?: readonly number[]): ResultRow {
  const samples = row.latency.samples;
  if (ends.length < 2 || ends[ends.length - 1] !== samples.length) return row;
  const rounds: RoundSummary[] = [];
  let start = 0;
  for (const [i, end] of ends.entries()) {
    rounds.push({
      samples: end - start,
      p50: end > start ? median(samples.slice(start, end)) : 0,
      ...(positions?.[i] !== undefined ? { position: positions[i] } : {}),
    });
    start = end;
  }
  return { ...row, rounds };
}

/**
 * The relative half-width of a speedup's 95% interval, in percent of the speedup: what
 * `--precision` bounds. The interval is taken on the log scale, so it is not symmetric; half
 * its whole width is the figure.
 */
export function halfWidthPercent(r: Pick<RatioRow, 'speedup' | 'ci95'>): number {
  const w = ((r.ci95[1] - r.ci95[0]) / 2 / r.speedup) * 100;
  return Number.isFinite(w) ? w : Infinity;
}

/**
 * The order of a group's cells in round `round`: forward in even rounds, backward in odd ones
 * (A B C D, D C B A, ...), so that a drift of the machine's speed within a round falls on each
 * cell as often early as late and cancels over pairs of rounds.
 */
export function roundOrder(cells: number, round: number): number[] {
  const order = Array.from({ length: cells }, (_, i) => i);
  return round % 2 === 0 ? order : order.reverse();
}

let gcFunction: ((options?: { type: 'minor' | 'major' }) => void) | null | undefined;

/**
 * A garbage collection, between rounds, outside the timed phases: garbage one round left would
 * otherwise be collected inside the next round's. `minor` (what the bench runs) collects the
 * young generation. A full collection there cost more than it saved: after it V8 shrinks the
 * young generation, and the first 2-5 iterations of every round ran 1.5-3x slower while it grew
 * back (python under a CPU hog; four warm-up iterations or a 60 ms pause after it did not help).
 * Node exposes gc() only with --expose-gc; the flag can be set at run time and the function
 * taken from a fresh context.
 */
export function collectGarbage(kind: 'minor' | 'full' = 'full'): boolean {
  if (gcFunction === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFunction = g;
    else {
      try {
        setFlagsFromString('--expose-gc');
        gcFunction = runInNewContext('gc') as () => void;
      } catch {
        gcFunction = null;
      }
    }
  }
  if (!gcFunction) return false;
  if (kind === 'minor') gcFunction({ type: 'minor' });
  else gcFunction();
  return true;
}

/** The rows a group has measured so far, enough for its ratios: latency samples cut into rounds. */
export interface PartialRow {
  readonly row: Pick<ResultRow, 'workload' | 'pattern' | 'mapper' | 'executor' | 'policy'>;
  readonly samples: readonly number[];
  /** Samples measured by the end of each round. */
  readonly roundEnds: readonly number[];
}

/**
 * A speedup's verdict as every view states it, at the run's precision target p (percent; none
 * for a fixed number of rounds). The verdict is read against a band of ±p around 1 (on the log
 * scale), the difference the run was asked to resolve:
 * - "faster" when the whole 95% interval lies above 1 + p, "slower" when below 1 / (1 + p);
 * - "not distinguishable" when it lies within the band: whatever difference there is, is smaller
 *   than the precision asked;
 * - "not settled" when it crosses an edge of the band: the run cannot say which side the
 *   difference lies on, and no verdict is claimed.
 * A verdict is thus a claim about a difference of the size asked, which a repeat run can only
 * contradict by an interval moving across a whole edge of the band. Read against 1 instead (with
 * a margin near 1: the rule of the previous version), the rows whose difference is near zero
 * flipped between "not distinguishable" and "not settled" as their intervals' ends wandered near
 * 1: on five default runs of one commit, 21 of 30 headlines kept one verdict, against 26 of 30 on
 * the same reports read against the band (docs/measurement.md). Without a target, the classic
 * reading: faster or slower when the interval is clear of 1, otherwise not distinguishable.
 */
export type Verdict = 'faster' | 'slower' | 'not distinguishable' | 'not settled';

/** The edge of the band, ln(1 + p/100): the log-scale distance from 1 a verdict is read against. */
function bandEdge(precision: number | undefined): number {
  return Math.log1p(Math.max(0, precision ?? 0) / 100);
}

export function verdictOf(r: Pick<RatioRow, 'ci95'>, precision: number | undefined): Verdict {
  const edge = bandEdge(precision);
  const lo = Math.log(r.ci95[0]);
  const hi = Math.log(r.ci95[1]);
  if (lo > edge) return 'faster';
  if (hi < -edge) return 'slower';
  if (edge === 0 || (lo >= -edge && hi <= edge)) return 'not distinguishable';
  return 'not settled';
}

/** Whether a speedup's verdict is settled at a precision target: its interval does not cross an edge of the band. */
export function isSettled(r: Pick<RatioRow, 'ci95'>, precision: number | undefined): boolean {
  return verdictOf(r, precision) !== 'not settled';
}

/**
 * The rounds an unsettled speedup would need before its verdict settles, at the spread its
 * rounds show (the half-width falls as one over the root of the rounds): its half-width must fall
 * below its estimate's distance from the edge of the band it crosses. Infinity when the estimate
 * lies on an edge: no number of rounds settles a difference of exactly the precision asked.
 */
export function roundsToSettle(r: Pick<RatioRow, 'speedup' | 'ci95'>, precision: number, rounds: number): number {
  const edge = bandEdge(precision) * 100;
  const estimate = Math.log(r.speedup) * 100;
  return roundsToNarrow(r, Math.min(Math.abs(estimate - edge), Math.abs(estimate + edge)), rounds);
}

/** The rounds after which the half-width falls below `distance` (both percent), at one over the root of the rounds. */
function roundsToNarrow(r: Pick<RatioRow, 'speedup' | 'ci95'>, distance: number, rounds: number): number {
  const half = halfWidthPercent(r);
  if (!(distance > 1e-9) || !(half > 0) || !Number.isFinite(half)) return Infinity;
  return Math.max(rounds + 1, Math.ceil(rounds * (half / distance) ** 2));
}

/**
 * The fewest rounds after which a speedup's verdict could settle: roundsToSettle, were the
 * speedup the value in its interval farthest from the band's edges (1 itself, when the interval
 * holds it). What decides whether rounds are worth spending on an unsettled group: an estimate
 * near an edge is as often a spell of the machine as the speedup itself, and judged on it alone
 * a group whose speedup is 1 gave up after a few rounds that happened to read 0.98.
 */
export function roundsToSettleAtBest(r: Pick<RatioRow, 'speedup' | 'ci95'>, precision: number, rounds: number): number {
  const edge = bandEdge(precision) * 100;
  const low = Math.log(r.ci95[0]) * 100;
  const high = Math.log(r.ci95[1]) * 100;
  const fromEdges = (x: number) => Math.min(Math.abs(x - edge), Math.abs(x + edge));
  return roundsToNarrow(r, Math.max(fromEdges(low), fromEdges(high), low < 0 && high > 0 ? edge : 0), rounds);
}

/** The two-sided error rate an early stop's verdict is judged at (isSettledToStop): 1%. */
const EARLY_STOP_ALPHA = 0.01;

/**
 * Whether sampling may stop before its budget is spent on a speedup's verdict: its interval at
 * 99% (the 95% one, `rounds` rounds, widened by the ratio of Student-t quantiles on the log
 * scale) is also clear of the band's edges. A group that stopped at the first look whose 95%
 * interval settled would pick, among its looks, the one whose interval happened to be narrow:
 * over repeated looks a verdict is claimed more often than 95% allows (optional stopping). An
 * early stop is therefore judged more strictly, as group-sequential designs judge interim looks;
 * the verdict stated is still read at 95%, at the look sampling stopped on.
 */
export function isSettledToStop(r: Pick<RatioRow, 'ci95'>, precision: number, rounds: number): boolean {
  // The widened interval holds the 95% one, so settled at 99% is settled at 95%, on the same side.
  if (rounds < 2) return false;
  const df = rounds - 1;
  const widen = studentTQuantile(1 - EARLY_STOP_ALPHA / 2, df) / studentTQuantile(0.975, df);
  const lo = Math.log(r.ci95[0]);
  const hi = Math.log(r.ci95[1]);
  const centre = (lo + hi) / 2;
  const half = ((hi - lo) / 2) * widen;
  return isSettled({ ci95: [Math.exp(centre - half), Math.exp(centre + half)] }, precision);
}

/**
 * Whether a speedup is settled firmly enough for sampling to stop early: isSettledToStop over its
 * per-round speedups. Without them (an interval of another kind) there is no t-interval to
 * widen, and settled is settled.
 */
export function speedupSettledToStop(
  r: Pick<RatioRow, 'ci95'> & { readonly rounds?: readonly number[] },
  precision: number,
): boolean {
  return r.rounds ? isSettledToStop(r, precision, r.rounds.length) : isSettled(r, precision);
}

/** Whether every headline of `ratios` is settled firmly enough for its group to stop early. */
export function headlinesSettledToStop(ratios: readonly RatioRow[], precision: number): boolean {
  return ratios.every((r) => !isHeadlineRatio(r) || speedupSettledToStop(r, precision));
}

/** The first headline of `ratios` not settled at `precision`. */
export function firstUnsettled(ratios: readonly RatioRow[], precision: number): Unsettled | undefined {
  const r = ratios.find((x) => isHeadlineRatio(x) && !isSettled(x, precision));
  return r ? unsettledOf(ratioLabel(r), r, precision) : undefined;
}

/** A headline left unsettled, as the report's sampling groups record it (SamplingGroup.unsettled). */
export type Unsettled = NonNullable<SamplingGroup['unsettled']>;

/**
 * How an unsettled speedup is recorded: its label, its 95% interval (rounded to 0.0001), and the
 * rounds that would settle it at the spread its rounds show (absent when none would).
 */
export function unsettledOf(
  label: string,
  r: Pick<RatioRow, 'speedup' | 'ci95' | 'rounds'>,
  precision: number,
): Unsettled {
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  const settleIn = r.rounds?.length ? roundsToSettle(r, precision, r.rounds.length) : Infinity;
  return {
    label,
    ci95: [round(r.ci95[0]), round(r.ci95[1])],
    ...(Number.isFinite(settleIn) ? { roundsToSettle: settleIn } : {}),
  };
}

/**
 * The headlines, shared memory over RPC copy (over each executor), as the summary states them:
 * a precision run waits for their verdicts to be settled and for their width (with `--quick`
 * and `--full`, for every speedup's width).
 */
export function isHeadlineRatio(r: Pick<RatioRow, 'mapper' | 'baseline'>): boolean {
  return r.mapper === 'shared' && r.baseline === 'rpc';
}

/**
 * The speedups of a group's rows so far: the widest interval (percent) among those the precision
 * target waits for (every speedup, or the headlines only; a group without a headline waits for
 * all), which it stops on, and the widest among all its speedups.
 */
export function groupWidths(
  rows: readonly PartialRow[],
  seed: number,
  waitsFor: 'every' | 'headlines' = 'every',
): {
  ratios: RatioRow[];
  widest: { label: string; percent: number } | undefined;
  widestAny: { label: string; percent: number } | undefined;
} {
  const full = rows.map((p) =>
    withRounds(
      {
        ...p.row,
        latency: {
          samples: [...p.samples],
          samplesCount: p.samples.length,
          mean: 0,
          p50: 0,
          p75: 0,
          p99: 0,
          min: 0,
          max: 0,
          rme: 0,
        },
        phases: {},
        bytes: { content: 0, zeroFill: 0, moved: 0 },
        roundTrips: 0,
      },
      p.roundEnds,
    ),
  );
  const ratios = computeRatios(full, seed);
  const widestOf = (list: readonly RatioRow[]) => {
    let widest: { label: string; percent: number } | undefined;
    for (const r of list) {
      const percent = halfWidthPercent(r);
      if (!widest || percent > widest.percent) widest = { label: ratioLabel(r), percent };
    }
    return widest;
  };
  const headlines = ratios.filter(isHeadlineRatio);
  const waited = waitsFor === 'headlines' && headlines.length ? headlines : ratios;
  return { ratios, widest: widestOf(waited), widestAny: widestOf(ratios) };
}

/** Every speedup whose 95% CI half-width is above `precision` percent, widest first, by label; headlines marked. */
export function widerThan(
  ratios: readonly RatioRow[],
  precision: number,
): Array<{ label: string; percent: number; headline?: true }> {
  return ratios
    .map((r) => ({
      label: ratioLabel(r),
      percent: halfWidthPercent(r),
      ...(isHeadlineRatio(r) ? { headline: true as const } : {}),
    }))
    .filter((w) => w.percent > precision)
    .sort((a, b) => b.percent - a.percent);
}

export function ratioLabel(
  r: Pick<RatioRow, 'workload' | 'pattern' | 'policy' | 'mapper' | 'executor' | 'baseline'>,
): string {
  const mapper =
    r.executor === 'llvm' && r.mapper !== 'inprocess' && r.mapper !== 'dualmap' ? `${r.mapper}@llvm` : r.mapper;
  return `${r.workload}/${r.pattern} ${mapper} over ${r.baseline === 'rpc' ? 'RPC copy' : 'in-process'} (${r.policy})`;
}

/**
 * Rounds a group would need for its widest interval to reach `target` percent: an interval's
 * width shrinks as one over the square root of the rounds.
 */
export function roundsNeeded(rounds: number, widest: number, target: number): number {
  if (!(widest > 0) || !Number.isFinite(widest)) return Infinity;
  return Math.ceil(rounds * (widest / target) ** 2);
}

/** An unsettled headline in words: its interval, the band edge it crosses, and the time settling would take. */
function unsettledWords(g: SamplingGroup, target: number): string {
  const u = g.unsettled!;
  // Reports of the previous version recorded how near 1 the interval ended instead.
  if (!('ci95' in u) || !u.ci95)
    return `${u.label}: its interval ended too near 1 for a verdict (the previous version's rule)`;
  const [lo, hi] = u.ci95;
  const band = `${(1 / (1 + target / 100)).toFixed(3)}–${(1 + target / 100).toFixed(3)}`;
  const settle =
    u.roundsToSettle !== undefined && g.rounds > 0
      ? `; about ${Math.ceil(((g.elapsedMs / g.rounds) * u.roundsToSettle) / 1000)} s (${u.roundsToSettle} rounds) would settle it`
      : '; its estimate lies on an edge of the band: no number of rounds would settle it';
  return `${u.label}: its 95% CI ${lo.toFixed(3)}–${hi.toFixed(3)} crosses an edge of ±${target}% around 1 (${band}), so neither a difference nor its absence at that size can be claimed${settle}`;
}

/** One entry of the precision account under its first line: a group's or the not-waited-for speedups'. */
export interface SamplingEntry {
  /** not-converged, not-settled: a group short of its target; not-waited: speedups no group waited for. */
  readonly kind: 'not-converged' | 'not-settled' | 'not-waited';
  readonly text: string;
  /** The speedups it names, each with the half-width it reached. */
  readonly rows: readonly string[];
}

/**
 * The precision account of a run, for the summary and the HTML page: how many groups reached the
 * precision asked, then, for each that did not, every speedup it waited for still wider than it
 * (label and half-width, as the report's `sampling.groups[].notConverged` lists them) and a
 * headline whose verdict is not settled; then the speedups wider than it that were not waited
 * for (groups that wait for the headlines only), each named. Reports of older versions (no
 * `notConverged`) waited for the headlines: their widest headline is named, and the widest of the
 * other speedups. Undefined without a precision target.
 */
export function samplingOutline(
  groups: readonly SamplingGroup[],
  target: number | undefined,
): { readonly head: string; readonly entries: readonly SamplingEntry[] } | undefined {
  if (target === undefined) return undefined;
  const entries: SamplingEntry[] = [];
  const open = groups.filter((g) => !g.converged);
  const done = groups.length - open.length;
  const waited = (g: SamplingGroup) =>
    g.notConverged?.filter((w) => g.waitedFor !== 'headlines' || w.headline) ??
    (g.widest && g.widest.percent > target ? [g.widest] : []);
  const width = (w: { label: string; percent: number }) => `${w.label} ±${w.percent.toFixed(1)}%`;
  const rows = open.reduce((n, g) => n + (g.notConverged ? waited(g).length : 0), 0);
  const every = groups.some((g) => g.waitedFor === 'every');
  const head = `precision: ${done} of ${groups.length} groups reached 95% CI half-width <= ${target}% on ${every ? "every speedup, each headline's (shared memory over RPC copy)" : "their headline speedups (shared memory over RPC copy), each headline's"} verdict settled (its interval clear of the edges of ±${target}% around 1)${open.length ? `; not converged${rows ? ` (${rows} speedup${rows === 1 ? '' : 's'} wider than ${target}%)` : ''}:` : '.'}`;
  for (const g of open) {
    const where = `${g.workload}/${g.pattern} (${g.policy})`;
    const after = `after ${g.rounds} rounds, ${(g.elapsedMs / 1000).toFixed(1)} s`;
    const needs = Number.isFinite(g.secondsNeeded ?? Infinity)
      ? `; about ${Math.ceil(g.secondsNeeded!)} s (${g.roundsNeeded} rounds) would reach it`
      : '';
    const wide = waited(g);
    if (wide.length)
      entries.push({ kind: 'not-converged', text: `NOT CONVERGED ${where} ${after}${needs}:`, rows: wide.map(width) });
    if (g.unsettled)
      entries.push({
        kind: 'not-settled',
        text: `NOT SETTLED ${where}: ${unsettledWords(g, target)}, ${after}`,
        rows: [],
      });
    else if (!wide.length) {
      entries.push({
        kind: 'not-converged',
        text: `NOT CONVERGED ${where}: widest ${g.widest ? width(g.widest) : 'no speedup'} ${after}${needs}`,
        rows: [],
      });
    }
  }
  // Groups that wait for the headlines: the other speedups, measured in the same rounds, named when wider.
  const notWaited = groups.flatMap((g) =>
    g.waitedFor === 'headlines' ? (g.notConverged ?? []).filter((w) => !w.headline) : [],
  );
  if (notWaited.length)
    entries.push({
      kind: 'not-waited',
      text: `other speedups wider than ${target}% (not waited for):`,
      rows: notWaited.map(width),
    });
  // Older reports: only the widest of the other speedups was recorded.
  const wider = groups.filter((g) => !g.notConverged && g.widestAny && g.widestAny.percent > target);
  if (wider.length) {
    const widest = wider.reduce((a, g) => (g.widestAny!.percent > a.widestAny!.percent ? g : a));
    entries.push({
      kind: 'not-waited',
      text: `other speedups wider than ${target}% (not waited for) in ${wider.length} group${wider.length === 1 ? '' : 's'}; the widest: ${width(widest.widestAny!)}`,
      rows: [],
    });
  }
  return { head, entries };
}

/** The precision account as the summary prints it: its first line, then each entry and its speedups, indented. */
export function samplingLines(groups: readonly SamplingGroup[], target: number | undefined): string[] {
  const outline = samplingOutline(groups, target);
  if (!outline) return [];
  return [outline.head, ...outline.entries.flatMap((e) => [`  ${e.text}`, ...e.rows.map((r) => `    ${r}`)])];
}
