import { bootstrapRatioOfMedians, meanInterval, median, wilcoxonSignedRank } from '../statistics.js';
import type { BudgetRow, RatioRow, ResultRow } from '../report.js';

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
 * The speedup of a pair of rows: with rounds, the geometric mean of the per-round speedups
 * with a Student-t 95% interval over rounds (on the log scale) and the signed-rank p-value
 * against "no difference"; without, median(baseline) / median(mapper) with a bootstrap interval
 * over samples (reports of older versions).
 */
export function speedupOf(baseline: ResultRow, candidate: ResultRow, seed: number): Pick<RatioRow, 'speedup' | 'ci95' | 'rounds' | 'p'> | null {
  const paired = pairedRoundRatios(baseline, candidate);
  if (paired) {
    const logs = paired.map(Math.log);
    const est = meanInterval(logs);
    return { speedup: Math.exp(est.mean), ci95: [Math.exp(est.low), Math.exp(est.high)], rounds: paired, p: wilcoxonSignedRank(logs).p };
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
      const candidates = group.filter((r) => r.executor === executor || r.mapper === 'inprocess');
      for (const [baselineName, baseline] of [
        ['rpc', rpc],
        ['inprocess', inprocess],
      ] as const) {
        if (!baseline) continue;
        for (const c of candidates) {
          if (c === baseline) continue;
          // In-process is compared with our RPC copy once; against LLVM's it would say the same
          // thing again under a misleading executor name.
          if (executor === 'llvm' && c.mapper === 'inprocess') continue;
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

/** The budget for python/load: extra ms of shared and RPC copy over in-process. */
export const EXTRA_MS_BUDGETS = { shared: 8, rpc: 15 } as const;

/**
 * Extra milliseconds (median) of each remote mapper over in-process, for python/load, against
 * its budget. Rows of LLVM's executor are measured and reported beside ours; the budget is
 * ours to meet, so theirs are informational (ok is always true for them).
 */
export function extraTimeBudgets(rows: readonly ResultRow[]): BudgetRow[] {
  const out: BudgetRow[] = [];
  for (const policy of new Set(rows.map((r) => r.policy))) {
    const base = rows.find((r) => r.workload === 'python' && r.pattern === 'load' && r.policy === policy && r.mapper === 'inprocess');
    if (!base) continue;
    const baseMs = median(base.latency.samples);
    for (const r of rows) {
      if (r.workload !== 'python' || r.pattern !== 'load' || r.policy !== policy || r.mapper === 'inprocess') continue;
      const mapper = r.mapper as 'shared' | 'rpc';
      const extra = median(r.latency.samples) - baseMs;
      const budget = EXTRA_MS_BUDGETS[mapper];
      out.push({
        label: `python/load ${policy}: extra time of ${mapper === 'rpc' ? 'RPC copy' : 'shared memory'} over in-process, ${r.executor === 'llvm' ? "LLVM's executor" : 'jitmem executor'}`,
        value: extra,
        budget,
        unit: 'ms',
        ok: r.executor === 'llvm' ? true : extra <= budget,
      });
    }
  }
  return out;
}
