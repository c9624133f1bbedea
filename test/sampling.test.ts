import test from 'ava';
import {
  firstUnsettled,
  groupWidths,
  halfWidthPercent,
  headlinesSettledToStop,
  isHeadlineRatio,
  isSettled,
  isSettledToStop,
  speedupSettledToStop,
  roundsToSettle,
  roundsToSettleAtBest,
  roundOrder,
  roundsNeeded,
  samplingLines,
  verdictOf,
  widerThan,
  withRounds,
} from '../harness/bench/sampling.js';
import type { RatioRow, ResultRow, SamplingGroup } from '../harness/report/report.js';
import { htmlPage } from '../harness/charts/html-page.js';
import { defaultShapedReport } from './helpers/default-report.js';

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
    "precision: 1 of 2 groups reached 95% CI half-width <= 5% on every speedup, each headline's (shared memory over RPC copy) verdict settled (its interval clear of the edges of ±5% around 1); not converged (2 speedups wider than 5%):",
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
    "precision: 1 of 2 groups reached 95% CI half-width <= 3% on their headline speedups (shared memory over RPC copy), each headline's verdict settled (its interval clear of the edges of ±3% around 1); not converged:",
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
    "precision: 1 of 1 groups reached 95% CI half-width <= 3% on their headline speedups (shared memory over RPC copy), each headline's verdict settled (its interval clear of the edges of ±3% around 1).",
    '  other speedups wider than 3% (not waited for):',
    '    cray/load rpc over in-process (first-fit) ±4.1%',
    '    cray/load inprocess over RPC copy (first-fit) ±3.5%',
  ]);
});

test('the HTML page gives the precision account as the summary does: each group short of it in red with its speedups under it, the speedups not waited for folded under one line', (t) => {
  const groups: SamplingGroup[] = [
    crayLoadGroup({
      rounds: 8,
      elapsedMs: 3_000,
      waitedFor: 'headlines',
      notConverged: [
        { label: 'cray/load rpc over in-process (first-fit)', percent: 4.1 },
        { label: 'cray/load dualmap over RPC copy (first-fit)', percent: 3.46 },
      ],
    }),
    {
      workload: 'cray',
      pattern: 'churn',
      policy: 'best-fit',
      rounds: 4,
      elapsedMs: 2_700,
      converged: false,
      waitedFor: 'headlines',
      notConverged: [{ label: 'cray/churn shared over RPC copy (best-fit)', percent: 46.5, headline: true }],
      unsettled: { label: 'cray/churn shared over RPC copy (best-fit)', ci95: [0.672, 1.653], roundsToSettle: 1599 },
      roundsNeeded: 961,
      secondsNeeded: 637,
    },
  ];
  const sampling = { precision: 3, minRounds: 8, gcBetweenRounds: true, warmupPerRound: 1, groups };
  const report = { ...defaultShapedReport({ llvm: false }), sampling };
  const page = htmlPage([report], [], []);
  const lines = samplingLines(groups, 3);
  const escaped = (s: string) =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#39;').replace(/"/g, '&quot;');
  t.true(page.includes(`<h3>Precision</h3>\n<p>${escaped(lines[0]!)}</p>`));
  t.true(
    page.includes(
      `<li><span class="over">${escaped(lines[1]!.trim())}</span><ul><li>cray/churn shared over RPC copy (best-fit) ±46.5%</li></ul></li>`,
    ),
  );
  t.is(lines[2], '    cray/churn shared over RPC copy (best-fit) ±46.5%');
  t.regex(lines[3]!, /^ {2}NOT SETTLED cray\/churn \(best-fit\)/);
  t.true(page.includes(`<li><span class="over">${escaped(lines[3]!.trim())}</span></li>`));
  t.is(lines[4], '  other speedups wider than 3% (not waited for):');
  t.true(
    page.includes(
      '<li><details><summary>other speedups wider than 3% (not waited for): 2</summary><ul><li>cray/load rpc over in-process (first-fit) ±4.1%</li><li>cray/load dualmap over RPC copy (first-fit) ±3.5%</li></ul></details></li>',
    ),
  );
});

test('a verdict is read against a band of the precision around 1: beyond it faster or slower, within it not distinguishable, across an edge not settled', (t) => {
  const r = (lo: number, hi: number) => ({ speedup: Math.sqrt(lo * hi), ci95: [lo, hi] as [number, number] });
  // Beyond the band (±3%: 0.971-1.03): a difference of at least the size asked.
  t.is(verdictOf(r(1.031, 1.09), 3), 'faster');
  t.is(verdictOf(r(0.9, 0.95), 3), 'slower');
  // Within it, however near 1 or clear of it: a difference smaller than the precision asked.
  t.is(verdictOf(r(0.98, 1.029), 3), 'not distinguishable');
  t.is(verdictOf(r(1.004, 1.013), 3), 'not distinguishable');
  t.is(verdictOf(r(0.999, 1.001), 3), 'not distinguishable');
  // Across an edge: the run cannot say which side of the band the difference lies on. The rows
  // that flipped between the previous rule's verdicts (python-script end to end, 1.014-1.066 then
  // 0.980-1.039; cray processes per run, 0.963-0.989) are not settled at 3%.
  t.is(verdictOf(r(1.014, 1.066), 3), 'not settled');
  t.is(verdictOf(r(0.963, 0.989), 3), 'not settled');
  t.is(verdictOf(r(0.95, 1.05), 3), 'not settled');
  t.is(verdictOf(r(1.02, 1.04), 3), 'not settled');
  t.false(isSettled(r(1.02, 1.04), 3));
  t.true(isSettled(r(1.04, 1.06), 3));
  // The band follows the precision: 1.02-1.04 is within ±5%.
  t.is(verdictOf(r(1.02, 1.04), 5), 'not distinguishable');
  t.is(verdictOf(r(1.051, 1.07), 5), 'faster');
  // Fixed rounds (no precision): the classic reading against 1, never "not settled".
  t.is(verdictOf(r(1.004, 1.061), undefined), 'faster');
  t.is(verdictOf(r(0.99, 1.055), undefined), 'not distinguishable');
  t.is(verdictOf(r(0.9, 0.99), 0), 'slower');
  // Rounds to settle: the half-width must fall below the estimate's distance from the edge it
  // crosses (here 1.0% of a 2.0% half-width: four times the rounds).
  const crossing = { speedup: Math.exp(0.0396), ci95: [Math.exp(0.0196), Math.exp(0.0596)] as [number, number] };
  t.is(verdictOf(crossing, 3), 'not settled');
  t.is(roundsToSettle(crossing, 3, 10), 40);
  // An estimate on the edge: no number of rounds settles it.
  const onEdge = { speedup: 1.03, ci95: [1.01, 1.05] as [number, number] };
  t.is(roundsToSettle(onEdge, 3, 10), Infinity);
  // Whether rounds are worth spending: judged at the value of the interval farthest from the
  // edges. A warm cray group read 0.979 (0.952-1.007) after 7 rounds: 80 rounds on its estimate,
  // 8 were it 1 (which its interval holds), so it goes on instead of giving its time away.
  const nearOne = { speedup: 0.979, ci95: [0.952, 1.007] as [number, number] };
  t.is(roundsToSettle(nearOne, 3, 7), 80);
  t.is(roundsToSettleAtBest(nearOne, 3, 7), 8);
  // Clear of 1 and crossing the upper edge: at best the upper end, 3.0% beyond the edge.
  t.is(roundsToSettleAtBest(crossing, 3, 10), 11);
  t.is(roundsToSettleAtBest(onEdge, 3, 10), 11);
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
  t.deepEqual(firstUnsettled([{ ...rows[0]!, ...r(1.005, 1.067), rounds: [1.01, 1.03, 1.05, 1.04] }], 3), {
    label: 'cray/run shared over RPC copy (first-fit)',
    ci95: [1.005, 1.067],
    roundsToSettle: 125,
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
        widest: { label: 'cray/run shared over RPC copy (warm controller)', percent: 1.4 },
        unsettled: {
          label: 'cray/run shared over RPC copy (warm controller)',
          ci95: [1.016, 1.045],
          roundsToSettle: 400,
        },
      },
      {
        workload: 'python',
        pattern: 'run',
        policy: 'warm controller',
        rounds: 9,
        elapsedMs: 20_000,
        converged: false,
        widest: { label: 'python/run shared over RPC copy (warm controller)', percent: 1.0 },
        unsettled: { label: 'python/run shared over RPC copy (warm controller)', ci95: [1.02, 1.04] },
      },
    ],
    3,
  );
  t.is(
    lines[1],
    '  NOT SETTLED cray/run (warm controller): cray/run shared over RPC copy (warm controller): its 95% CI 1.016–1.045 crosses an edge of ±3% around 1 (0.971–1.030), so neither a difference nor its absence at that size can be claimed; about 54 s (400 rounds) would settle it, after 90 rounds, 12.0 s',
  );
  t.is(
    lines[2],
    '  NOT SETTLED python/run (warm controller): python/run shared over RPC copy (warm controller): its 95% CI 1.020–1.040 crosses an edge of ±3% around 1 (0.971–1.030), so neither a difference nor its absence at that size can be claimed; its estimate lies on an edge of the band: no number of rounds would settle it, after 9 rounds, 20.0 s',
  );
});

test('sampling stops early only on a verdict its 99% interval settles too; the verdict stated is the 95% one', (t) => {
  // Around 1, five rounds: the 99% interval is 4.604 / 2.776 = 1.658 times the 95% one on the log
  // scale, so a 95% half-width up to ln(1.03) / 1.658 = 0.01782 may stop; one of 0.0180 is
  // settled ("not distinguishable") but not firmly enough to stop.
  const around1 = (half: number) => ({ ci95: [Math.exp(-half), Math.exp(half)] as [number, number] });
  t.true(isSettledToStop(around1(0.0177), 3, 5));
  t.is(verdictOf(around1(0.018), 3), 'not distinguishable');
  t.false(isSettledToStop(around1(0.018), 3, 5));
  // More rounds, a t quantile nearer the normal one: 20 rounds widen by 2.861 / 2.093 = 1.367.
  t.true(isSettledToStop(around1(0.018), 3, 20));
  t.false(isSettledToStop(around1(0.0217), 3, 20));
  // python-script's warm speedup in one of five runs, "not distinguishable" 1.010 (0.992-1.028) after
  // five rounds where the other four read "not settled": its 99% interval crosses 1.03.
  t.false(isSettledToStop({ ci95: [0.992, 1.028] }, 3, 5));
  // Far from the edges a verdict stops at once; one not settled never does.
  t.true(isSettledToStop({ ci95: [1.1, 1.2] }, 3, 3));
  t.false(isSettledToStop({ ci95: [1.02, 1.04] }, 3, 50));
  t.false(isSettledToStop({ ci95: [1.1, 1.2] }, 3, 1));
  // A group's headlines (shared memory over RPC copy): every one must be settled so; other speedups do not count.
  const row = (mapper: string, baseline: string, ci95: [number, number], rounds: number) =>
    ({
      workload: 'cray',
      pattern: 'load',
      policy: 'first-fit',
      executor: 'jitmem',
      mapper,
      baseline,
      speedup: Math.sqrt(ci95[0] * ci95[1]),
      ci95,
      rounds: Array.from({ length: rounds }, () => 1),
    }) as unknown as RatioRow;
  const other = row('inprocess', 'rpc', [0.99, 1.04], 5);
  t.true(headlinesSettledToStop([row('shared', 'rpc', [1.1, 1.2], 8), other], 3));
  // ±2% around 1: within the band; its 99% interval after 5 rounds is not (±3.3%), after 40 it is (±2.7%).
  const twoPercent: [number, number] = [Math.exp(-0.02), Math.exp(0.02)];
  t.false(headlinesSettledToStop([row('shared', 'rpc', twoPercent, 5), other], 3));
  t.true(headlinesSettledToStop([row('shared', 'rpc', twoPercent, 40), other], 3));
  // One rule for every speedup sampling may stop on (the matrix's headlines, the per-process ones):
  // with per-round speedups, the widened interval; without, an interval of another kind, settled.
  t.false(speedupSettledToStop({ ci95: twoPercent, rounds: [1, 1, 1, 1, 1] }, 3));
  t.true(speedupSettledToStop({ ci95: twoPercent }, 3));
  t.false(speedupSettledToStop({ ci95: [1.02, 1.04] }, 3));
});
