import { bootstrapRatioOfMedians, meanInterval, median, wilcoxonSignedRank } from '../statistics.js';
import {
  PHASES,
  type BudgetRow,
  type PhaseName,
  type PhaseSpeedup,
  type RatioRow,
  type ResultRow,
} from '../report/report.js';

/**
 * Per-round (paired) speedups of `candidate` over `baseline`: round i ran both back to back,
 * so median(baseline, round i) / median(candidate, round i) cancels whatever drift the machine
 * had between rounds. Null unless both rows carry the same number of rounds, at least three
 * of which measured both.
 */
export function pairedRoundRatios(baseline: ResultRow, candidate: ResultRow): number[] | null {
  const a = baseline.rounds;
  const b = candidate.rounds;
  if (!a || !b || a.length !== b.length) return null;
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.samples > 0 && b[i]!.samples > 0 && a[i]!.p50 > 0 && b[i]!.p50 > 0) out.push(a[i]!.p50 / b[i]!.p50);
  }
  return out.length >= 3 ? out : null;
}

/**
 * Per-round medians of a sample set cut into rounds of `sizes` samples, in order (NaN for a
 * round with no sample).
 */
export function roundMedians(samples: readonly number[], sizes: readonly number[]): number[] {
  const out: number[] = [];
  let start = 0;
  for (const size of sizes) {
    out.push(size > 0 ? median(samples.slice(start, start + size)) : Number.NaN);
    start += size;
  }
  return out;
}

/**
 * Paired per-round ratios baseline[i] / candidate[i] of two rows' per-round medians; rounds
 * where either is missing or zero are left out. Null unless both have the same number of
 * rounds and at least three pair up.
 */
export function pairRoundMedians(baseline: readonly number[], candidate: readonly number[]): number[] | null {
  if (baseline.length !== candidate.length) return null;
  const out: number[] = [];
  for (let i = 0; i < baseline.length; i++) {
    const a = baseline[i]!;
    const b = candidate[i]!;
    if (a > 0 && b > 0 && Number.isFinite(a) && Number.isFinite(b)) out.push(a / b);
  }
  return out.length >= 3 ? out : null;
}

/** The geometric mean of paired ratios, its Student-t 95% interval (log scale) and the signed-rank p. */
export function summarizePaired(paired: number[]): PhaseSpeedup {
  const logs = paired.map(Math.log);
  const est = meanInterval(logs);
  return {
    speedup: Math.exp(est.mean),
    ci95: [Math.exp(est.low), Math.exp(est.high)],
    rounds: paired,
    p: wilcoxonSignedRank(logs).p,
  };
}

/**
 * Paired per-round speedups of each mapper phase both rows timed in every iteration. Phase
 * samples are taken in the same iterations as the latency's, so the recorded rounds' sample
 * counts cut them into the same rounds.
 */
export function phaseSpeedups(
  baseline: ResultRow,
  candidate: ResultRow,
): Partial<Record<PhaseName, PhaseSpeedup>> | undefined {
  const sizesA = baseline.rounds?.map((r) => r.samples);
  const sizesB = candidate.rounds?.map((r) => r.samples);
  if (!sizesA || !sizesB || sizesA.length !== sizesB.length) return undefined;
  const out: Partial<Record<PhaseName, PhaseSpeedup>> = {};
  for (const phase of PHASES) {
    const a = baseline.phases[phase];
    const b = candidate.phases[phase];
    if (
      !a ||
      !b ||
      a.samples.length !== sizesA.reduce((x, y) => x + y, 0) ||
      b.samples.length !== sizesB.reduce((x, y) => x + y, 0)
    )
      continue;
    const paired = pairRoundMedians(roundMedians(a.samples, sizesA), roundMedians(b.samples, sizesB));
    if (paired) out[phase] = summarizePaired(paired);
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The speedup of a pair of rows: with rounds, the geometric mean of the per-round speedups
 * with a Student-t 95% interval over rounds (on the log scale) and the signed-rank p-value
 * against "no difference"; without, median(baseline) / median(mapper) with a bootstrap interval
 * over samples (reports of older versions).
 */
export function speedupOf(
  baseline: ResultRow,
  candidate: ResultRow,
  seed: number,
): Pick<RatioRow, 'speedup' | 'ci95' | 'rounds' | 'p' | 'phases'> | null {
  const paired = pairedRoundRatios(baseline, candidate);
  if (paired) {
    const { speedup, ci95, p } = summarizePaired(paired);
    const phases = phaseSpeedups(baseline, candidate);
    return { speedup, ci95, rounds: paired, p, ...(phases ? { phases } : {}) };
  }
  const est = bootstrapRatioOfMedians(baseline.latency.samples, candidate.latency.samples, { seed });
  if (!(est.ratio > 0) || !Number.isFinite(est.ratio)) return null;
  return { speedup: est.ratio, ci95: [est.low, est.high] };
}

/**
 * Speedups measured inside one run: for every workload, pattern, policy and executor, each
 * mapper against RPC copy and against in-process (speedupOf: paired over rounds). Ratios from
 * one run hold across machines far better than times.
 */
export function computeRatios(rows: readonly ResultRow[], seed: number): RatioRow[] {
  const out: RatioRow[] = [];
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const key = `${r.workload}\0${r.pattern}\0${r.policy}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(r);
  }
  for (const group of groups.values()) {
    const executors = [...new Set(group.filter((r) => r.executor !== 'none').map((r) => r.executor))];
    const inprocess = group.find((r) => r.mapper === 'inprocess');
    for (const executor of executors.length ? executors : ['none' as const]) {
      const rpc = group.find((r) => r.mapper === 'rpc' && r.executor === executor);
      // In-process mappers (executor none) stand beside every executor's rows.
      const candidates = group.filter((r) => r.executor === executor || r.executor === 'none');
      for (const [baselineName, baseline] of [
        ['rpc', rpc],
        ['inprocess', inprocess],
      ] as const) {
        if (!baseline) continue;
        for (const c of candidates) {
          if (c === baseline) continue;
          // In-process is compared with our RPC copy once; against LLVM's it would say the same
          // thing again under a misleading executor name.
          if (executor === 'llvm' && c.executor === 'none') continue;
          const est = speedupOf(baseline, c, seed);
          if (!est || !(est.speedup > 0) || !Number.isFinite(est.speedup)) continue;
          out.push({
            workload: c.workload,
            pattern: c.pattern,
            policy: c.policy,
            executor,
            mapper: c.mapper,
            baseline: baselineName,
            ...est,
          });
        }
      }
    }
  }
  return out;
}

/** The budgets for python/load: extra ms of shared memory and RPC copy over in-process. */
export const EXTRA_MS_BUDGETS = { shared: 8, rpc: 8 } as const;

/**
 * A budget's verdict from the value's 95% interval: ok when all of it is within the budget,
 * over when all of it is past it, undecided when it straddles the budget. One run of a commit
 * cannot flip between ok and over on noise alone: a run whose interval straddles says so.
 */
export function budgetVerdict(
  ci95: readonly [number, number],
  budget: number,
  direction: 'at-most' | 'at-least' = 'at-most',
): 'ok' | 'over' | 'undecided' {
  const [lo, hi] = ci95;
  if (direction === 'at-most') return hi <= budget ? 'ok' : lo > budget ? 'over' : 'undecided';
  return lo >= budget ? 'ok' : hi < budget ? 'over' : 'undecided';
}

/**
 * Paired per-round differences of two rows' round medians (candidate − baseline), with their mean and Student-t 95%
 * interval; null without 3 paired rounds.
 */
export function pairedDifference(
  baseline: ResultRow,
  candidate: ResultRow,
): { mean: number; ci95: [number, number]; rounds: number } | null {
  const a = baseline.rounds;
  const b = candidate.rounds;
  if (!a || !b || a.length !== b.length) return null;
  const diffs: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i]!.samples > 0 && b[i]!.samples > 0) diffs.push(b[i]!.p50 - a[i]!.p50);
  if (diffs.length < 3) return null;
  const est = meanInterval(diffs);
  return { mean: est.mean, ci95: [est.low, est.high], rounds: diffs.length };
}

/**
 * A budget row with its interval's verdict, or the value's alone when there is no interval. A row
 * measured only to stand beside ours (LLVM's executor's) gets no verdict: the budget is not its to
 * meet, and the summary never states one for it.
 */
function judged(row: Omit<BudgetRow, 'ok' | 'verdict'>, informational = false): BudgetRow {
  if (informational) return { ...row, informational: true, ok: true };
  const verdict = row.ci95
    ? budgetVerdict(row.ci95, row.budget, row.direction)
    : (row.direction === 'at-least' ? row.value >= row.budget : row.value <= row.budget)
      ? 'ok'
      : 'over';
  return { ...row, verdict, ok: verdict !== 'over' };
}

/**
 * Extra milliseconds of each remote mapper over in-process, for python/load, against its
 * budget: with rounds, the mean of the paired per-round differences of medians with its 95%
 * interval; without (older reports), the difference of medians. Rows of LLVM's executor are
 * measured and reported beside ours; the budget is ours to meet, so theirs are informational.
 */
export function extraTimeBudgets(rows: readonly ResultRow[]): BudgetRow[] {
  const out: BudgetRow[] = [];
  for (const policy of new Set(rows.map((r) => r.policy))) {
    const base = rows.find(
      (r) => r.workload === 'python' && r.pattern === 'load' && r.policy === policy && r.mapper === 'inprocess',
    );
    if (!base) continue;
    const baseMs = median(base.latency.samples);
    for (const r of rows) {
      if (r.workload !== 'python' || r.pattern !== 'load' || r.policy !== policy || r.executor === 'none') continue;
      const mapper = r.mapper as 'shared' | 'rpc';
      const paired = pairedDifference(base, r);
      const budget = EXTRA_MS_BUDGETS[mapper];
      out.push(
        judged(
          {
            label: `python/load ${policy}: extra time of ${mapper === 'rpc' ? 'RPC copy' : 'shared memory'} over in-process, ${r.executor === 'llvm' ? "LLVM's executor" : 'jitmem executor'}`,
            value: paired ? paired.mean : median(r.latency.samples) - baseMs,
            budget,
            unit: 'ms',
            ...(paired ? { ci95: paired.ci95, rounds: paired.rounds } : {}),
          },
          r.executor === 'llvm',
        ),
      );
    }
  }
  return out;
}

/**
 * Where shared memory should win (the 2022 report's conjecture for updates), with the jitmem
 * executor: patching through shared memory within 2x of in-process and 10x faster than RPC
 * copy; churn and update within 2x of in-process. Each ratio is the one paired statistic
 * (speedupOf) with its interval.
 */
export function transportRatioBudgets(rows: readonly ResultRow[]): BudgetRow[] {
  const out: BudgetRow[] = [];
  const find = (pattern: string, policy: string, mapper: string) =>
    rows.find(
      (r) =>
        r.workload === 'python' &&
        r.pattern === pattern &&
        r.policy === policy &&
        r.mapper === mapper &&
        (r.executor === 'jitmem' || r.executor === 'none'),
    );
  for (const policy of new Set(rows.map((r) => r.policy))) {
    for (const pattern of ['patch', 'churn', 'update'] as const) {
      const shared = find(pattern, policy, 'shared');
      const inprocess = find(pattern, policy, 'inprocess');
      if (!shared || !inprocess) continue;
      // shared over in-process: the baseline over the candidate, as speedupOf takes them.
      const over = speedupOf(shared, inprocess, 1);
      if (over) {
        out.push(
          judged({
            label: `python/${pattern} ${policy}: shared memory time over in-process`,
            value: over.speedup,
            budget: 2,
            unit: 'x',
            direction: 'at-most',
            ...(over.rounds ? { ci95: over.ci95, rounds: over.rounds.length } : {}),
          }),
        );
      }
      if (pattern !== 'patch') continue;
      const rpc = find(pattern, policy, 'rpc');
      if (!rpc) continue;
      const speedup = speedupOf(rpc, shared, 1);
      if (speedup) {
        out.push(
          judged({
            label: `python/patch ${policy}: shared memory speedup over RPC copy`,
            value: speedup.speedup,
            budget: 10,
            unit: 'x',
            direction: 'at-least',
            ...(speedup.rounds ? { ci95: speedup.ci95, rounds: speedup.rounds.length } : {}),
          }),
        );
      }
    }
  }
  return out;
}
