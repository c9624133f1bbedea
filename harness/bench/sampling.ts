import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RatioRow, ResultRow, RoundSummary, SamplingGroup } from '../report/report.js';
import { median } from '../statistics.js';
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
 * How close to 1 an interval's end may come, in percent on the log scale, before a verdict
 * counts as settled: at least a quarter of the precision asked, and
 * - for an interval clear of 1 ("faster", "slower"), its own half-width: the estimate then lies
 *   two half-widths (about four standard errors) from 1, and a repeat run, whose interval end
 *   moves by about one standard error, says the same about 39 times in 40;
 * - for an interval around 1 ("not distinguishable"), a quarter of its half-width on both sides.
 * Nearer, the same code read "faster" in one run and "not distinguishable" in the next (cray end
 * to end, 95% CI 1.005-1.067, then 0.999-1.055; python-script end to end 1.014-1.066, then
 * 0.980-1.039), and a difference of 1-2% read "slower" in one run of five (cray, processes per
 * run, 0.963-0.989). The quarter for intervals around 1 was chosen on ten default runs of two
 * commits: with it, one row of 30 had settled verdicts that contradicted each other in five
 * runs; with none, two to three (docs/measurement.md).
 */
export function settleMarginPercent(precision: number, halfWidthPercent = 0, clearOfOne = false): number {
  return Math.max(precision / 4, clearOfOne ? halfWidthPercent : halfWidthPercent / 4);
}

/** Whether a speedup's interval lies wholly above or below 1. */
export function clearOfOne(r: Pick<RatioRow, 'ci95'>): boolean {
  return r.ci95[0] > 1 || r.ci95[1] < 1;
}

/** How far the end of a speedup's interval nearest to 1 lies from 1, in percent (log scale). */
export function edgePercent(r: Pick<RatioRow, 'ci95'>): number {
  const [lo, hi] = r.ci95;
  return Math.min(Math.abs(Math.log(lo)), Math.abs(Math.log(hi))) * 100;
}

/**
 * Whether a speedup's verdict is settled at a precision target (0 for a fixed number of rounds):
 * its interval ends at least the settle margin away from 1.
 */
export function isSettled(r: Pick<RatioRow, 'speedup' | 'ci95'>, precision: number): boolean {
  return edgePercent(r) >= settleMarginPercent(precision, halfWidthPercent(r), clearOfOne(r));
}

/** A speedup's verdict as every view states it. */
export type Verdict = 'faster' | 'slower' | 'not distinguishable' | 'not settled';

/**
 * The verdict on a speedup: faster (its whole 95% interval above 1), slower (below), not
 * distinguishable (it holds 1), each only when settled (isSettled at the run's precision, 0 for
 * fixed rounds); otherwise "not settled", with the interval shown and no claim made.
 */
export function verdictOf(r: Pick<RatioRow, 'speedup' | 'ci95'>, precision: number | undefined): Verdict {
  if (!isSettled(r, precision ?? 0)) return 'not settled';
  return r.ci95[0] > 1 ? 'faster' : r.ci95[1] < 1 ? 'slower' : 'not distinguishable';
}

/** The first headline of `ratios` not settled at `precision`: how far it ends from 1, and the margin it needed. */
export function firstUnsettled(
  ratios: readonly RatioRow[],
  precision: number,
): { label: string; edgePercent: number; marginPercent: number } | undefined {
  const r = ratios.find((x) => isHeadlineRatio(x) && !isSettled(x, precision));
  return r ? unsettledOf(ratioLabel(r), r, precision) : undefined;
}

/** How an unsettled interval is recorded: how far it ends from 1 and the margin it needed, rounded to 0.01%. */
export function unsettledOf(
  label: string,
  r: Pick<RatioRow, 'speedup' | 'ci95'>,
  precision: number,
): { label: string; edgePercent: number; marginPercent: number } {
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    label,
    edgePercent: round(edgePercent(r)),
    marginPercent: round(settleMarginPercent(precision, halfWidthPercent(r), clearOfOne(r))),
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

/**
 * The precision lines of the summary and the HTML page: how many groups reached the precision
 * asked, then, for each that did not, every speedup it waited for still wider than it (label and
 * half-width, as the report's `sampling.groups[].notConverged` lists them) and a headline whose
 * verdict is not settled; then the speedups wider than it that were not waited for (groups that
 * wait for the headlines only), each named. Reports of older versions (no `notConverged`) waited
 * for the headlines: their widest headline is named, and the widest of the other speedups.
 */
export function samplingLines(groups: readonly SamplingGroup[], target: number | undefined): string[] {
  if (target === undefined) return [];
  const out: string[] = [];
  const open = groups.filter((g) => !g.converged);
  const done = groups.length - open.length;
  const waited = (g: SamplingGroup) =>
    g.notConverged?.filter((w) => g.waitedFor !== 'headlines' || w.headline) ??
    (g.widest && g.widest.percent > target ? [g.widest] : []);
  const rows = open.reduce((n, g) => n + (g.notConverged ? waited(g).length : 0), 0);
  const every = groups.some((g) => g.waitedFor === 'every');
  out.push(
    `precision: ${done} of ${groups.length} groups reached 95% CI half-width <= ${target}% on ${every ? "every speedup, each headline's (shared memory over RPC copy)" : "their headline speedups (shared memory over RPC copy), each headline's"} verdict settled (an interval around 1 ending at least ${settleMarginPercent(target)}% and a quarter of its half-width from it; one clear of 1, ${settleMarginPercent(target)}% and its own half-width)${open.length ? `; not converged${rows ? ` (${rows} speedup${rows === 1 ? '' : 's'} wider than ${target}%)` : ''}:` : '.'}`,
  );
  for (const g of open) {
    const where = `${g.workload}/${g.pattern} (${g.policy})`;
    const after = `after ${g.rounds} rounds, ${(g.elapsedMs / 1000).toFixed(1)} s`;
    const needs = Number.isFinite(g.secondsNeeded ?? Infinity)
      ? `; about ${Math.ceil(g.secondsNeeded!)} s (${g.roundsNeeded} rounds) would reach it`
      : '';
    const wide = waited(g);
    if (wide.length) {
      out.push(`  NOT CONVERGED ${where} ${after}${needs}:`);
      for (const w of wide) out.push(`    ${w.label} ±${w.percent.toFixed(1)}%`);
    }
    if (g.unsettled) {
      out.push(
        `  NOT SETTLED ${where}: ${g.unsettled.label}: its interval ends ${g.unsettled.edgePercent.toFixed(2)}% from 1, within the ${(g.unsettled.marginPercent ?? settleMarginPercent(target)).toFixed(2)}% where the verdict could go either way, ${after}; more rounds would settle it`,
      );
    } else if (!wide.length) {
      out.push(
        `  NOT CONVERGED ${where}: widest ${g.widest ? `${g.widest.label} ±${g.widest.percent.toFixed(1)}%` : 'no speedup'} ${after}${needs}`,
      );
    }
  }
  // Groups that wait for the headlines: the other speedups, measured in the same rounds, named when wider.
  const notWaited = groups.flatMap((g) =>
    g.waitedFor === 'headlines' ? (g.notConverged ?? []).filter((w) => !w.headline) : [],
  );
  if (notWaited.length) {
    out.push(`  other speedups wider than ${target}% (not waited for):`);
    for (const w of notWaited) out.push(`    ${w.label} ±${w.percent.toFixed(1)}%`);
  }
  // Older reports: only the widest of the other speedups was recorded.
  const wider = groups.filter((g) => !g.notConverged && g.widestAny && g.widestAny.percent > target);
  if (wider.length) {
    const widest = wider.reduce((a, g) => (g.widestAny!.percent > a.widestAny!.percent ? g : a));
    out.push(
      `  other speedups wider than ${target}% (not waited for) in ${wider.length} group${wider.length === 1 ? '' : 's'}; the widest: ${widest.widestAny!.label} ±${widest.widestAny!.percent.toFixed(1)}%`,
    );
  }
  return out;
}
