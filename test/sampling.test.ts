import test from 'ava';
import { halfWidthPercent, roundOrder, roundsNeeded, samplingLines, withRounds } from '../harness/bench/sampling.js';
import type { ResultRow } from '../harness/report/report.js';

test('rounds alternate the order of a group\'s cells, forward then backward', (t) => {
  t.deepEqual(roundOrder(4, 0), [0, 1, 2, 3]);
  t.deepEqual(roundOrder(4, 1), [3, 2, 1, 0]);
  t.deepEqual(roundOrder(4, 2), [0, 1, 2, 3]);
  t.deepEqual(roundOrder(1, 7), [0]);
  t.deepEqual(roundOrder(0, 0), []);
});

test('the precision asked of a speedup is half its 95% interval in percent of the speedup; rounds needed grow with the square of the ratio of widths', (t) => {
  t.is(halfWidthPercent({ speedup: 2, ci95: [1.9, 2.1] }).toFixed(9), '5.000000000');
  t.is(halfWidthPercent({ speedup: 1, ci95: [0.97, 1.03] }).toFixed(6), '3.000000');
  t.is(halfWidthPercent({ speedup: 1, ci95: [Number.NaN, 1] }), Infinity);
  t.is(roundsNeeded(10, 6, 3), 40);
  t.is(roundsNeeded(10, 3, 3), 10);
  t.is(roundsNeeded(10, Infinity, 3), Infinity);
});

test('per-round medians and each cell\'s place in its round go into the row', (t) => {
  const row = { latency: { samples: [1, 2, 3, 10, 20, 30, 5] } } as unknown as ResultRow;
  const out = withRounds(row, [3, 6, 7], [0, 1, 0]);
  t.deepEqual(out.rounds, [
    { samples: 3, p50: 2, position: 0 },
    { samples: 3, p50: 20, position: 1 },
    { samples: 1, p50: 5, position: 0 },
  ]);
  // Ends that do not account for every sample leave the row as it was.
  t.is(withRounds(row, [3, 6]), row);
});

test('the summary names every group that did not reach the precision, the width it reached and the time it would need', (t) => {
  const lines = samplingLines(
    [
      { workload: 'cray', pattern: 'load', policy: 'first-fit', rounds: 40, elapsedMs: 20_000, converged: true, widest: { label: 'cray/load shared over RPC copy (first-fit)', percent: 2.5 } },
      { workload: 'python', pattern: 'load', policy: 'first-fit', rounds: 20, elapsedMs: 25_000, converged: false, widest: { label: 'python/load shared over in-process (first-fit)', percent: 9.5 }, roundsNeeded: 201, secondsNeeded: 252 },
    ],
    3,
  );
  t.deepEqual(lines, [
    'precision: 1 of 2 groups reached 95% CI half-width <= 3% on every speedup; not converged:',
    '  NOT CONVERGED python/load (first-fit): widest python/load shared over in-process (first-fit) ±9.5% after 20 rounds, 25.0 s; about 252 s (201 rounds) would reach it',
  ]);
  t.deepEqual(samplingLines([], undefined), []);
});
