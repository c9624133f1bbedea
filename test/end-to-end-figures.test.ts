import test from 'ava';
import { transportShare } from '../harness/bench/end-to-end.js';
import type { ResultRow } from '../harness/report/report.js';
import { meanInterval, median } from '../harness/statistics.js';

/**
 * A jitmem end-to-end row with `rounds` of iterations: each iteration's time to exit and its
 * transport phases (reserve, write, initialize), in milliseconds.
 */
function runRow(
  rounds: ReadonlyArray<ReadonlyArray<{ exit: number; reserve: number; write: number; initialize: number }>>,
): ResultRow {
  const all = rounds.flat();
  const phase = (name: 'reserve' | 'write' | 'initialize') => ({ samples: all.map((i) => i[name]) });
  return {
    workload: 'python',
    pattern: 'run',
    mapper: 'rpc',
    latency: { samples: all.map((i) => i.exit) },
    phases: { reserve: phase('reserve'), write: phase('write'), initialize: phase('initialize') },
    rounds: rounds.map((r, position) => ({ samples: r.length, p50: median(r.map((i) => i.exit)), position })),
  } as unknown as ResultRow;
}

/** Iterations of 50 ms to exit whose transport takes `ms` in all. */
function iterations(...ms: number[]) {
  return ms.map((t) => ({ exit: 50, reserve: 0.2 * t, write: 0.3 * t, initialize: 0.5 * t }));
}

test("transport share: the mean of the rounds' median shares, with the Student-t interval over rounds", (t) => {
  const row = runRow([iterations(2, 3, 4), iterations(3, 4, 5), iterations(2.5, 3.5, 4.5)]);
  const share = transportShare(row)!;
  const expected = meanInterval([3 / 50, 4 / 50, 3.5 / 50]);
  t.is(share.rounds, 3);
  t.true(Math.abs(share.share - expected.mean) < 1e-12);
  t.true(Math.abs(share.ci95[0] - expected.low) < 1e-12);
  t.true(Math.abs(share.ci95[1] - expected.high) < 1e-12);
  t.true(share.ci95[0] > 0 && share.ci95[1] < 1);
});

test('transport share: an interval reaching past 0 or 1 is cut there, never a negative share', (t) => {
  // One round far from the others, as a default run measured: a t interval over three rounds
  // reached below zero.
  const low = transportShare(runRow([iterations(1, 1, 1), iterations(1.2, 1.2, 1.2), iterations(20, 20, 20)]))!;
  const raw = meanInterval([1 / 50, 1.2 / 50, 20 / 50]);
  t.true(raw.low < 0, `the uncut interval reaches below zero (${raw.low})`);
  t.is(low.ci95[0], 0);
  t.true(Math.abs(low.ci95[1] - raw.high) < 1e-12);
  t.true(Math.abs(low.share - raw.mean) < 1e-12);

  const high = transportShare(runRow([iterations(49, 49, 49), iterations(48.8, 48.8, 48.8), iterations(30, 30, 30)]))!;
  t.true(meanInterval([49 / 50, 48.8 / 50, 30 / 50]).high > 1);
  t.is(high.ci95[1], 1);
  t.true(high.ci95[0] > 0);
});
