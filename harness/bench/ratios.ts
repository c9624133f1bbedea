import { bootstrapRatioOfMedians, meanInterval, median, wilcoxonSignedRank } from '../statistics.js';
import { PHASES, type BudgetRow, type PhaseName, type PhaseSpeedup, type RatioRow, type ResultRow } from '../report/report.js';

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
  return { speedup: Math.exp(est.mean), ci95: [Math.exp(est.low), Math.exp(est.high)], rounds: paired, p: wilcoxonSignedRank(logs).p };
}

/**
 * Paired per-round speedups of each mapper phase both rows timed in every iteration. Phase
 * samples are taken in the same iterations as the latency's, so the recorded rounds' sample
 * counts cut them into the same rounds.
 */
export function phaseSpeedups(baseline: ResultRow, candidate: ResultRow): Partial<Record<PhaseName, PhaseSpeedup>> | undefined {
  const sizesA = baseline.rounds?.map((r) => r.samples);
  const sizesB = candidate.rounds?.map((r) => r.samples);
  if (!sizesA || !sizesB || sizesA.length !== sizesB.length) return undefined;
  const out: Partial<Record<PhaseName, PhaseSpeedup>> = {};
  for (const phase of PHASES) {
    const a = baseline.phases[phase];
    const b = candidate.phases[phase];
    if (!a || !b || a.samples.length !== sizesA.reduce((x, y) => x + y, 0) || b.samples.length !== sizesB.reduce((x, y) => x + y, 0)) continue;
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
export function speedupOf(baseline: ResultRow, candidate: ResultRow, seed: number): Pick<RatioRow, 'speedup' | 'ci95' | 'rounds' | 'p' | 'phases'> | null {
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
      if (r.workload !== 'python' || r.pattern !== 'load' || r.policy !== policy || r.executor === 'none') continue;
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

/**
 * Where shared memory should win (the 2022 report's conjecture for updates): medians of one run
 * set against each other, with the jitmem executor. Patching through shared memory within 2x of
 * in-process and 10x faster than RPC copy; churn and update within 2x of in-process.
 */
export function transportRatioBudgets(rows: readonly ResultRow[]): BudgetRow[] {
  const out: BudgetRow[] = [];
  const find = (pattern: string, policy: string, mapper: string) =>
    rows.find((r) => r.workload === 'python' && r.pattern === pattern && r.policy === policy && r.mapper === mapper && (r.executor === 'jitmem' || r.executor === 'none'));
  for (const policy of new Set(rows.map((r) => r.policy))) {
    for (const pattern of ['patch', 'churn', 'update'] as const) {
      const shared = find(pattern, policy, 'shared');
      const inprocess = find(pattern, policy, 'inprocess');
      if (!shared || !inprocess) continue;
      const ratio = median(shared.latency.samples) / median(inprocess.latency.samples);
      out.push({ label: `python/${pattern} ${policy}: shared memory time over in-process`, value: ratio, budget: 2, unit: 'x', direction: 'at-most', ok: ratio <= 2 });
      if (pattern !== 'patch') continue;
      const rpc = find(pattern, policy, 'rpc');
      if (!rpc) continue;
      const speedup = median(rpc.latency.samples) / median(shared.latency.samples);
      out.push({ label: `python/patch ${policy}: shared memory speedup over RPC copy`, value: speedup, budget: 10, unit: 'x', direction: 'at-least', ok: speedup >= 10 });
    }
  }
  return out;
}
