import test from 'ava';
import { allocBudgets, runAllocBench, type AllocBenchRow } from '../harness/component-benches/alloc-bench.js';
import { budgetVerdict } from '../harness/bench/ratios.js';
import { meanInterval } from '../harness/statistics.js';

/**
 * The allocator microbenchmark measures its sizes in interleaved rounds and judges each budget by
 * its interval over them: a figure per round, a geometric mean, a Student-t interval on the logs.
 */

test('a real run: every size of a policy measured in each round, the index unchanged, the budgets over the same rounds', async (t) => {
  const rounds: number[] = [];
  const rows = await runAllocBench({
    policies: ['first-fit'],
    sizes: [1_000, 10_000, 100_000],
    rounds: 4,
    time: 40,
    batch: 200,
    onRound: (_policy, round) => rounds.push(round),
  });
  t.deepEqual(rounds, [0, 1, 2, 3]);
  t.deepEqual(
    rows.map((r) => r.freeRanges),
    [1_000, 10_000, 100_000],
  );
  for (const r of rows) {
    t.is(r.roundP50s.length, 4);
    t.true(r.samples >= 4 * 3, `${r.samples} samples`);
    t.is(r.pairsPerSample, 200);
    t.true(r.min > 0 && r.min <= r.p50 && r.p50 <= r.p75 && r.p75 <= r.p99 && r.p99 <= r.max);
    for (const p of r.roundP50s) t.true(p >= r.min && p <= r.max);
  }
  const budgets = allocBudgets(rows);
  t.deepEqual(
    budgets.map((b) => [b.label, b.rounds, b.unit, b.budget]),
    [
      ['first-fit: round median at 10k free ranges', 4, 'us', 1],
      ['first-fit: round median at 100k over at 1k', 4, 'x', 2],
    ],
  );
  for (const b of budgets) {
    t.true(b.ci95[0] <= b.value && b.value <= b.ci95[1]);
    t.is(b.verdict, budgetVerdict(b.ci95, b.budget));
  }
});

function row(freeRanges: number, roundP50s: number[]): AllocBenchRow {
  const sorted = [...roundP50s].sort((a, b) => a - b);
  return {
    policy: 'best-fit',
    freeRanges,
    p50: sorted[1]!,
    p75: sorted[2]!,
    p99: sorted[3]!,
    mean: sorted[1]!,
    min: sorted[0]!,
    max: sorted[3]!,
    rme: 1,
    samples: 40,
    pairsPerSample: 1000,
    roundP50s,
  };
}

/** The geometric mean of `xs` and its Student-t 95% interval, computed here from the logs. */
function geometric(xs: number[]): [number, number, number] {
  const e = meanInterval(xs.map(Math.log));
  return [Math.exp(e.mean), Math.exp(e.low), Math.exp(e.high)];
}

test('budgets: ok, OVER and undecided by the whole interval, the ratio taken round by round', (t) => {
  const check = (r1k: number[], r10k: number[], r100k: number[], verdicts: string[]) => {
    const budgets = allocBudgets([row(1_000, r1k), row(10_000, r10k), row(100_000, r100k)]);
    t.deepEqual(
      budgets.map((b) => b.verdict),
      verdicts,
    );
    const [g10k, lo10k, hi10k] = geometric(r10k);
    const [gRatio, loRatio, hiRatio] = geometric(r100k.map((x, i) => x / r1k[i]!));
    t.deepEqual(
      budgets.map((b) => [b.value, ...b.ci95].map((x) => x.toFixed(9))),
      [
        [g10k, lo10k, hi10k].map((x) => x.toFixed(9)),
        [gRatio, loRatio, hiRatio].map((x) => x.toFixed(9)),
      ],
    );
  };
  check([0.4, 0.5, 0.45, 0.42], [0.5, 0.52, 0.48, 0.5], [0.6, 0.75, 0.7, 0.62], ['ok', 'ok']);
  // 100k three times 1k in every round: over whatever the machine did to both.
  check([0.4, 0.8, 0.45, 0.9], [1.5, 1.6, 1.4, 1.5], [1.2, 2.4, 1.4, 2.7], ['over', 'over']);
  // Rounds that disagree: an interval that holds the budget decides nothing.
  check([0.4, 0.4, 0.4, 0.4], [0.5, 1.6, 0.6, 1.7], [0.6, 1.04, 0.5, 1.2], ['undecided', 'undecided']);
  // A ratio read from round medians of different runs could not be paired: none is given.
  t.deepEqual(
    allocBudgets([row(1_000, [1, 1, 1, 1]), row(100_000, [1, 1, 1])]).map((b) => b.label),
    [],
  );
});
