import { Bench } from 'tinybench';
import { FreeRangeIndex, FIT_POLICIES, type FitPolicy } from '../../mappers/slab/free-range-index.js';
import { seededRandom as rng } from '../statistics.js';

/**
 * The allocator microbenchmark: the latency of one allocate+free pair in a FreeRangeIndex that
 * holds N free ranges, for each fit policy. This is the allocator's own decision cost (find a
 * range, split it, give it back, coalesce), without any transport: mappers are measured by
 * `jitmem bench`.
 *
 * A sample is the mean of a batch of pairs, because one pair takes less time than the clock
 * resolves reliably; the state after each pair is the state before it (the freed range merges
 * back), so every pair sees the same N.
 */

/** Request sizes drawn before a cell is timed, then taken in turn (a ring). */
const REQUESTS = 4096;

export interface AllocBenchOptions {
  readonly sizes?: readonly number[];
  readonly policies?: readonly FitPolicy[];
  /** Milliseconds of sampling per cell. */
  readonly time?: number;
  /** Pairs per sample. */
  readonly batch?: number;
  readonly seed?: number;
  /** Called before each cell starts (for progress output). */
  readonly onCell?: (policy: FitPolicy, freeRanges: number) => void;
}

export interface AllocBenchRow {
  readonly policy: FitPolicy;
  readonly freeRanges: number;
  /** Latency of one allocate+free pair, in microseconds. */
  readonly p50: number;
  readonly p75: number;
  readonly p99: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** Relative margin of error of the mean, in percent. */
  readonly rme: number;
  readonly samples: number;
  readonly pairsPerSample: number;
}

export interface AllocBenchBudget {
  readonly label: string;
  readonly figure: string;
  readonly budget: string;
  readonly ok: boolean;
}

const PAGE = 4096;
const STRIDE = 64 * PAGE;

/** N free ranges of 1..16 pages, separated by live gaps so that none coalesce. */
export function fragmentedIndex(policy: FitPolicy, freeRanges: number, seed: number): FreeRangeIndex {
  const index = new FreeRangeIndex(policy);
  const rand = rng(seed);
  for (let i = 0; i < freeRanges; i++) index.add(0x10000000 + i * STRIDE, (1 + Math.floor(rand() * 16)) * PAGE);
  return index;
}

export async function runAllocBench(options: AllocBenchOptions = {}): Promise<AllocBenchRow[]> {
  const sizes = options.sizes ?? [1_000, 10_000, 100_000];
  const policies = options.policies ?? FIT_POLICIES;
  const batch = options.batch ?? 1000;
  const seed = options.seed ?? 42;
  const rows: AllocBenchRow[] = [];
  for (const policy of policies) {
    for (const n of sizes) {
      options.onCell?.(policy, n);
      const index = fragmentedIndex(policy, n, seed);
      const rand = rng(seed + 1);
      const requests = Float64Array.from({ length: REQUESTS }, () => (1 + Math.floor(rand() * 16)) * PAGE);
      let r = 0;
      const bench = new Bench({ time: options.time ?? 500, warmupTime: 100, retainSamples: false });
      bench.add(`${policy} ${n}`, () => {
        const t0 = bench.now();
        for (let i = 0; i < batch; i++) {
          const size = requests[r++ % REQUESTS]!;
          const at = index.take(size);
          if (at === undefined) throw new Error(`no free range of ${size} bytes`);
          index.add(at, size);
        }
        const elapsed = bench.now() - t0;
        return { overriddenDuration: elapsed / batch, overriddenIterationCost: elapsed };
      });
      await bench.run();
      if (index.count !== n) throw new Error(`the index drifted: ${index.count} free ranges, expected ${n}`);
      const result = bench.tasks[0]!.result;
      if (!('latency' in result)) throw new Error(`benchmark cell ${policy}/${n} did not complete (${result.state})`);
      const l = result.latency;
      const us = (ms: number) => ms * 1000;
      rows.push({
        policy,
        freeRanges: n,
        p50: us(l.p50),
        p75: us(l.p75),
        p99: us(l.p99),
        mean: us(l.mean),
        min: us(l.min),
        max: us(l.max),
        rme: l.rme,
        samples: l.samplesCount,
        pairsPerSample: batch,
      });
    }
  }
  return rows;
}

/** The budgets: p50 <= 1 us at 10k free ranges; the 100k p50 within 2x of the 1k p50. */
export function allocBudgets(rows: readonly AllocBenchRow[]): AllocBenchBudget[] {
  const out: AllocBenchBudget[] = [];
  for (const policy of new Set(rows.map((r) => r.policy))) {
    const at = (n: number) => rows.find((r) => r.policy === policy && r.freeRanges === n);
    const r10k = at(10_000);
    if (r10k)
      out.push({
        label: `${policy}: p50 at 10k free ranges`,
        figure: `${r10k.p50.toFixed(3)} us`,
        budget: '<= 1 us',
        ok: r10k.p50 <= 1,
      });
    const r1k = at(1_000);
    const r100k = at(100_000);
    if (r1k && r100k) {
      const ratio = r100k.p50 / r1k.p50;
      out.push({
        label: `${policy}: p50 at 100k / p50 at 1k`,
        figure: `${ratio.toFixed(2)}x`,
        budget: '<= 2x',
        ok: ratio <= 2,
      });
    }
  }
  return out;
}
