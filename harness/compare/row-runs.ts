import { PHASES, type PhaseName, type RatioRow, type Report, type ResultRow } from '../report/report.js';
import { pairRoundMedians, roundMedians, summarizePaired } from '../bench/ratios.js';
import { mean, median } from '../statistics.js';
import { labelOf, type Measure, type RowKey } from './comparison.js';

/**
 * A report reduced, row by row, to what the comparison's tests need: each row's per-round
 * values on the log scale and the run's value (see judge.ts).
 */

export function timeKey(row: ResultRow, measure: Measure): RowKey {
  // A cold cell (a fresh slab every iteration) measures something else than a warm one: it
  // only ever matches another cold cell.
  const pattern = `${row.pattern === 'sweep' && row.contentBytes !== undefined ? `sweep@${row.contentBytes}` : row.pattern}${row.cold ? '+cold' : ''}`;
  // A run row is also told apart by its linker, and llvm-jitlink's two RPC modes by memory manager.
  const linker = row.linker === 'llvm-jitlink' ? `+llvm-jitlink${row.memmgr ? `:${row.memmgr}` : ''}` : '';
  // jitmem's warm controller and its process per run are different measurements (cold rows keep their old key).
  const controller = row.controller === 'warm' ? '+warm' : '';
  return {
    workload: row.workload,
    pattern: pattern + linker + controller,
    mapper: row.mapper,
    executor: row.executor,
    policy: row.policy,
    measure,
  };
}

function ratioKey(row: RatioRow): RowKey {
  return {
    workload: row.workload,
    pattern: row.pattern,
    mapper: row.mapper,
    executor: row.executor,
    policy: row.policy,
    measure: `speedup-vs-${row.baseline}`,
  };
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
 * A run's value from its per-round values: their mean on the log scale, so that a speedup's run
 * value is the report's own figure (the geometric mean of the paired per-round speedups, as
 * ratios.ts summarizePaired defines it) and compare prints the same number as the bench's
 * summary, the charts and history. (The median of rounds, which resists a round a burst of
 * other work hit, is kept for studies of the gate; a precision run's many rounds dilute such a
 * round instead.)
 */
let runCenter: (rounds: readonly number[]) => number = mean;

/** For studies of the gate (test/tools/gate-study.ts): the run value as the median of rounds instead. */
export function setRunCenter(center: 'median' | 'mean'): void {
  runCenter = center === 'mean' ? mean : median;
}

/** One row of one report, reduced to what the tests need. */
export interface RowRun {
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
export function timeRuns(report: Report, phases: boolean, cpu = false, latency = true): Map<string, RowRun> {
  const out = new Map<string, RowRun>();
  const put = (key: RowKey, samples: readonly number[], sizes: readonly number[], recorded?: ResultRow['rounds']) => {
    const label = labelOf(key);
    if (out.has(label)) return;
    // The latency's per-round medians were recorded from every sample; use them as they are.
    const rounds =
      recorded && recorded.length >= 2
        ? recorded.filter((r) => r.samples > 0 && r.p50 > 0).map((r) => Math.log(r.p50))
        : roundLogMedians(samples, sizes);
    const m = median(samples);
    out.set(label, {
      key,
      rounds,
      value: rounds.length ? runCenter(rounds) : Math.log(m),
      median: m,
      samples: samples.length,
    });
  };
  for (const row of report.results) {
    if (cpu && row.cpu) {
      // CPU samples are taken in the same iterations as the latency's: the same rounds cut them.
      put(timeKey(row, 'cpu-controller'), row.cpu.controller.samples, roundSizes(row, row.cpu.controller));
      if (row.cpu.executor)
        put(timeKey(row, 'cpu-executor'), row.cpu.executor.samples, roundSizes(row, row.cpu.executor));
    }
    if (!latency) continue;
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
  const baseline = report.results.find(
    (r) =>
      same(r) &&
      r.mapper === row.baseline &&
      (row.baseline === 'inprocess' ? r.executor === 'none' : r.executor === row.executor),
  );
  const candidate = report.results.find(
    (r) => same(r) && r.mapper === row.mapper && (r.executor === row.executor || r.executor === 'none'),
  );
  if (!baseline || !candidate || !baseline.rounds || !candidate.rounds) return null;
  const a = baseline.phases[phase];
  const b = candidate.phases[phase];
  if (!a || !b) return null;
  return pairRoundMedians(
    roundMedians(a.samples, roundSizes(baseline, a)),
    roundMedians(b.samples, roundSizes(candidate, b)),
  );
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
  const baseline = report.results.find(
    (r) =>
      same(r) &&
      r.mapper === row.baseline &&
      (row.baseline === 'inprocess' ? r.executor === 'none' : r.executor === row.executor),
  );
  const candidate = report.results.find(
    (r) => same(r) && r.mapper === row.mapper && (r.executor === row.executor || r.executor === 'none'),
  );
  return (
    !!baseline &&
    !!candidate &&
    phaseShare(baseline, phase) >= MIN_PHASE_SHARE &&
    phaseShare(candidate, phase) >= MIN_PHASE_SHARE
  );
}

/**
 * Ratio rows: each mapper's whole-iteration speedup and, beside it, its speedup in each mapper
 * phase (`initialize.speedup-vs-rpc`...). A change to one phase shows at its full size in that
 * phase's ratio, diluted in the whole iteration's; both are judged alike.
 */
export function ratioRuns(report: Report, phaseFilter = false, withPhases = true): Map<string, RowRun> {
  const out = new Map<string, RowRun>();
  const put = (key: RowKey, row: RatioRow, perRound: readonly number[] | undefined, whole: number) => {
    const label = labelOf(key);
    if (out.has(label)) return;
    const rounds = (perRound ?? []).filter((r) => r > 0).map(Math.log);
    out.set(label, {
      key,
      rounds: rounds.length >= 2 ? rounds : [],
      value: rounds.length >= 2 ? runCenter(rounds) : Math.log(whole),
      median: Number.NaN,
      samples: 0,
      ratio: row,
    });
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
      put(
        { ...key, measure: `${phase}.speedup-vs-${row.baseline}` },
        { ...rest, speedup, ci95, rounds, p },
        rounds,
        speedup,
      );
    }
  }
  return out;
}
