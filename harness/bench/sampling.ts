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
 * counts as settled: a quarter of the precision asked. An interval that ends this close to 1
 * says "faster" in one run and "not distinguishable" in the next for the same code (measured:
 * cray end to end, 95% CI 0.999-1.055 in one default run and 1.005-1.067 in the next).
 */
export function settleMarginPercent(precision: number): number {
  return precision / 4;
}

/** How far the end of a speedup's interval nearest to 1 lies from 1, in percent (log scale). */
export function edgePercent(r: Pick<RatioRow, 'ci95'>): number {
  const [lo, hi] = r.ci95;
  return Math.min(Math.abs(Math.log(lo)), Math.abs(Math.log(hi))) * 100;
}

/**
 * Whether a speedup's verdict is settled at a precision target: its interval ends at least the
 * margin away from 1 (above it, below it, or around it), or it is itself narrower than the
 * margin (a change that small is where any verdict has its edge).
 */
export function isSettled(r: Pick<RatioRow, 'speedup' | 'ci95'>, precision: number): boolean {
  const margin = settleMarginPercent(precision);
  return edgePercent(r) >= margin || halfWidthPercent(r) <= margin;
}

/** The first of `ratios` whose verdict is not settled at `precision`, with how far its interval ends from 1. */
export function firstUnsettled(
  ratios: readonly RatioRow[],
  precision: number,
): { label: string; edgePercent: number } | undefined {
  const r = ratios.find((x) => isHeadlineRatio(x) && !isSettled(x, precision));
  return r ? { label: ratioLabel(r), edgePercent: Math.round(edgePercent(r) * 100) / 100 } : undefined;
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
    `precision: ${done} of ${groups.length} groups reached 95% CI half-width <= ${target}% on ${every ? 'every speedup, each headline' : 'their headline speedups'} (shared memory over RPC copy)${every ? '' : ', each interval'} ending at least ${settleMarginPercent(target)}% from 1 or narrower than that${open.length ? `; not converged${rows ? ` (${rows} speedup${rows === 1 ? '' : 's'} wider than ${target}%)` : ''}:` : '.'}`,
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
        `  NOT SETTLED ${where}: ${g.unsettled.label}: its interval ends ${g.unsettled.edgePercent.toFixed(2)}% from 1, within the ${settleMarginPercent(target)}% where the verdict could go either way, ${after}; more rounds would settle it`,
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
