import test from 'ava';
import {
  edgePercent,
  firstUnsettled,
  groupWidths,
  halfWidthPercent,
  isHeadlineRatio,
  isSettled,
  roundOrder,
  roundsNeeded,
  samplingLines,
  settleMarginPercent,
  verdictOf,
  widerThan,
  withRounds,
} from '../harness/bench/sampling.js';
import type { ResultRow, SamplingGroup } from '../harness/report/report.js';

/** A converged cray/load sampling group with the given figures. */
function crayLoadGroup(figures: Pick<SamplingGroup, 'rounds' | 'elapsedMs'> & Partial<SamplingGroup>): SamplingGroup {
  return { workload: 'cray', pattern: 'load', policy: 'first-fit', converged: true, ...figures };
}

test("rounds alternate the order of a group's cells, forward then backward", (t) => {
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

test("per-round medians and each cell's place in its round go into the row", (t) => {
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

test('the summary names every speedup that did not reach the precision, with the width it reached, and the time its group would need', (t) => {
  const lines = samplingLines(
    [
      {
        workload: 'cray',
        pattern: 'load',
        policy: 'first-fit',
        rounds: 40,
        elapsedMs: 20_000,
        converged: true,
        widest: { label: 'cray/load rpc over in-process (first-fit)', percent: 2.5 },
        widestAny: { label: 'cray/load rpc over in-process (first-fit)', percent: 2.5 },
        waitedFor: 'every',
        notConverged: [],
      },
      {
        workload: 'python',
        pattern: 'load',
        policy: 'first-fit',
        rounds: 20,
        elapsedMs: 25_000,
        converged: false,
        widest: { label: 'python/load dualmap over in-process (first-fit)', percent: 6.2 },
        widestAny: { label: 'python/load dualmap over in-process (first-fit)', percent: 6.2 },
        waitedFor: 'every',
        notConverged: [
          { label: 'python/load dualmap over in-process (first-fit)', percent: 6.2 },
          { label: 'python/load dualmap over RPC copy (first-fit)', percent: 5.31 },
        ],
        roundsNeeded: 31,
        secondsNeeded: 39,
      },
    ],
    5,
  );
  t.deepEqual(lines, [
    "precision: 1 of 2 groups reached 95% CI half-width <= 5% on every speedup, each headline's (shared memory over RPC copy) verdict settled (an interval around 1 ending at least 1.25% and a quarter of its half-width from it; one clear of 1, 1.25% and its own half-width); not converged (2 speedups wider than 5%):",
    '  NOT CONVERGED python/load (first-fit) after 20 rounds, 25.0 s; about 39 s (31 rounds) would reach it:',
    '    python/load dualmap over in-process (first-fit) ±6.2%',
    '    python/load dualmap over RPC copy (first-fit) ±5.3%',
  ]);
});

test('reports of older versions, whose precision mode waited for the headlines only: the widest headline is named, and the widest other speedup', (t) => {
  const lines = samplingLines(
    [
      crayLoadGroup({
        rounds: 40,
        elapsedMs: 20_000,
        widest: { label: 'cray/load shared over RPC copy (first-fit)', percent: 2.5 },
        widestAny: { label: 'cray/load dualmap over in-process (first-fit)', percent: 4 },
      }),
      {
        workload: 'python',
        pattern: 'load',
        policy: 'first-fit',
        rounds: 20,
        elapsedMs: 25_000,
        converged: false,
        widest: { label: 'python/load shared over RPC copy (first-fit)', percent: 9.5 },
        widestAny: { label: 'python/load dualmap over in-process (first-fit)', percent: 14 },
        roundsNeeded: 201,
        secondsNeeded: 252,
      },
    ],
    3,
  );
  t.deepEqual(lines, [
    "precision: 1 of 2 groups reached 95% CI half-width <= 3% on their headline speedups (shared memory over RPC copy), each headline's verdict settled (an interval around 1 ending at least 0.75% and a quarter of its half-width from it; one clear of 1, 0.75% and its own half-width); not converged:",
    '  NOT CONVERGED python/load (first-fit) after 20 rounds, 25.0 s; about 252 s (201 rounds) would reach it:',
    '    python/load shared over RPC copy (first-fit) ±9.5%',
    '  other speedups wider than 3% (not waited for) in 2 groups; the widest: python/load dualmap over in-process (first-fit) ±14.0%',
  ]);
  t.deepEqual(samplingLines([], undefined), []);
});

test('the precision target waits for every speedup of a group, those with an in-process or dual-mapped side too', (t) => {
  t.true(isHeadlineRatio({ mapper: 'shared', baseline: 'rpc' }));
  t.false(isHeadlineRatio({ mapper: 'shared', baseline: 'inprocess' }));
  t.false(isHeadlineRatio({ mapper: 'dualmap', baseline: 'rpc' }));
  // Three rounds of a group: shared over RPC copy steady (2x in every round), dualmap over RPC copy not.
  const rows = [
    {
      row: {
        workload: 'w',
        pattern: 'load' as const,
        mapper: 'rpc' as const,
        executor: 'jitmem' as const,
        policy: 'first-fit' as const,
      },
      samples: [4, 4, 4, 4, 4, 4],
      roundEnds: [2, 4, 6],
    },
    {
      row: {
        workload: 'w',
        pattern: 'load' as const,
        mapper: 'shared' as const,
        executor: 'jitmem' as const,
        policy: 'first-fit' as const,
      },
      samples: [2, 2, 2, 2, 2, 2],
      roundEnds: [2, 4, 6],
    },
    {
      row: {
        workload: 'w',
        pattern: 'load' as const,
        mapper: 'dualmap' as const,
        executor: 'none' as const,
        policy: 'first-fit' as const,
      },
      samples: [1, 1, 3, 3, 1, 1],
      roundEnds: [2, 4, 6],
    },
  ];
  const { ratios, widest, widestAny } = groupWidths(rows, 1);
  // The widest is the dual mapping's (its rounds 1, 3, 1), not the steady headline's.
  t.is(widest!.label, 'w/load dualmap over RPC copy (first-fit)');
  t.true(widest!.percent > 10, JSON.stringify(widest));
  t.deepEqual(widestAny, widest);
  const headline = ratios.find(isHeadlineRatio)!;
  t.is(halfWidthPercent(headline), 0);
  // Every speedup above the precision is named, widest first; the steady headline is not.
  const wide = widerThan(ratios, 5);
  t.deepEqual(wide, [{ label: 'w/load dualmap over RPC copy (first-fit)', percent: widest!.percent }]);
  t.deepEqual(widerThan(ratios, 1000), []);
  t.deepEqual(
    widerThan(ratios, -1).map((w) => [w.label, w.headline ?? false]),
    [
      ['w/load dualmap over RPC copy (first-fit)', false],
      ['w/load shared over RPC copy (first-fit)', true],
    ],
  );
  // The default preset waits for the headlines only: the widest it stops on is the headline's.
  const headlinesOnly = groupWidths(rows, 1, 'headlines');
  t.is(headlinesOnly.widest!.label, 'w/load shared over RPC copy (first-fit)');
  t.deepEqual(headlinesOnly.widestAny, widest);
});

test('a group that waits for the headlines only names each other speedup wider than the precision, as not waited for', (t) => {
  const lines = samplingLines(
    [
      crayLoadGroup({
        rounds: 8,
        elapsedMs: 3_000,
        widest: { label: 'cray/load shared over RPC copy (first-fit)', percent: 1.5 },
        widestAny: { label: 'cray/load rpc over in-process (first-fit)', percent: 4.1 },
        waitedFor: 'headlines',
        notConverged: [
          { label: 'cray/load rpc over in-process (first-fit)', percent: 4.1 },
          { label: 'cray/load inprocess over RPC copy (first-fit)', percent: 3.46 },
        ],
      }),
    ],
    3,
  );
  t.deepEqual(lines, [
    "precision: 1 of 1 groups reached 95% CI half-width <= 3% on their headline speedups (shared memory over RPC copy), each headline's verdict settled (an interval around 1 ending at least 0.75% and a quarter of its half-width from it; one clear of 1, 0.75% and its own half-width).",
    '  other speedups wider than 3% (not waited for):',
    '    cray/load rpc over in-process (first-fit) ±4.1%',
    '    cray/load inprocess over RPC copy (first-fit) ±3.5%',
  ]);
});

test('a verdict is settled when its interval ends a quarter of the precision from 1, and its own half-width when clear of 1 or a quarter of it around 1', (t) => {
  const r = (lo: number, hi: number) => ({ speedup: Math.sqrt(lo * hi), ci95: [lo, hi] as [number, number] });
  // The two same-commit default runs that disagreed: both end within 0.75% of 1 at precision 3.
  t.true(edgePercent(r(0.999, 1.055)) < 0.75);
  t.false(isSettled(r(0.999, 1.055), 3));
  t.false(isSettled(r(1.005, 1.067), 3));
  // Clear of 1, above or below, by more than its half-width; around 1, by a quarter of it.
  t.true(isSettled(r(1.015, 1.045), 3));
  t.true(isSettled(r(0.95, 0.98), 3));
  t.true(isSettled(r(0.98, 1.02), 3));
  // Clear of 1 is settled only when the interval ends its own half-width from 1: python end to
  // end read 1.004-1.061 and 1.011-1.051 in two runs, python-script 1.014-1.066, then 0.980-1.039.
  t.false(isSettled(r(1.004, 1.061), 3));
  t.false(isSettled(r(1.014, 1.066), 3));
  t.false(isSettled(r(0.963, 0.989), 3));
  t.true(isSettled(r(1.03, 1.09), 3));
  t.true(isSettled(r(0.98, 1.039), 3));
  // A wide interval around 1 must end a quarter of its half-width from it (here 2.5%).
  t.false(isSettled(r(0.985, 1.2), 3));
  t.is(settleMarginPercent(3, 5), 1.25);
  t.is(settleMarginPercent(3, 2), 0.75);
  t.is(settleMarginPercent(3, 5, true), 5);
  t.is(settleMarginPercent(3, 0.5, true), 0.75);
  // However narrow, an interval ending nearer 1 than the margin claims nothing.
  t.false(isSettled(r(1.001, 1.011), 3));
  t.false(isSettled(r(0.999, 1.055), 20));
  // Fixed rounds (no precision): the half-width rules alone.
  t.false(isSettled(r(1.004, 1.061), 0));
  t.true(isSettled(r(0.99, 1.055), 0));
  t.is(verdictOf(r(1.03, 1.09), 3), 'faster');
  t.is(verdictOf(r(0.9, 0.95), 3), 'slower');
  t.is(verdictOf(r(0.98, 1.039), 3), 'not distinguishable');
  t.is(verdictOf(r(1.004, 1.061), 3), 'not settled');
  t.is(verdictOf(r(1.004, 1.061), undefined), 'not settled');
  const rows = [
    {
      workload: 'cray',
      pattern: 'run',
      policy: 'first-fit',
      executor: 'jitmem',
      mapper: 'shared',
      baseline: 'rpc' as const,
    },
    {
      workload: 'cray',
      pattern: 'run',
      policy: 'first-fit',
      executor: 'jitmem',
      mapper: 'inprocess',
      baseline: 'rpc' as const,
    },
  ];
  // Only headlines count: an unsettled in-process row does not hold the group.
  t.is(
    firstUnsettled(
      [
        { ...rows[1]!, ...r(0.999, 1.055) },
        { ...rows[0]!, ...r(1.1, 1.2) },
      ],
      3,
    ),
    undefined,
  );
  t.deepEqual(firstUnsettled([{ ...rows[0]!, ...r(1.005, 1.067) }], 3), {
    label: 'cray/run shared over RPC copy (first-fit)',
    edgePercent: 0.5,
    marginPercent: 2.99,
  });
  const lines = samplingLines(
    [
      {
        workload: 'cray',
        pattern: 'run',
        policy: 'warm controller',
        rounds: 90,
        elapsedMs: 12_000,
        converged: false,
        widest: { label: 'cray/run shared over RPC copy (warm controller)', percent: 2.1 },
        unsettled: { label: 'cray/run shared over RPC copy (warm controller)', edgePercent: 0.4 },
      },
    ],
    3,
  );
  t.is(
    lines[1],
    '  NOT SETTLED cray/run (warm controller): cray/run shared over RPC copy (warm controller): its interval ends 0.40% from 1, within the 0.75% where the verdict could go either way, after 90 rounds, 12.0 s; more rounds would settle it',
  );
});
