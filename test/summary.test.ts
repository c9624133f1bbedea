import test from 'ava';
import {
  budgetItems,
  headlineItems,
  resultColumns,
  overBudget,
  renderSummary,
  resultsTable,
  skippedLines,
} from '../harness/bench/summary.js';
import { budgetVerdict } from '../harness/bench/ratios.js';
import { roundTripBudget } from '../harness/bench/round-trip-probe.js';
import type { PatternName, Report } from '../harness/report/report.js';
import { planCells, presetSelection } from '../harness/bench/matrix.js';
import { defaultShapedReport } from './helpers/default-report.js';
import { wrapText } from '../harness/report/format-table.js';

const skippedCells = ['churn', 'update', 'patch', 'sweep'].flatMap((pattern) =>
  ['shared', 'rpc'].map((mapper) => ({
    cell: `*/${pattern}/${mapper}@llvm`,
    reason: "LLVM 22's executor cannot initialize a freed range again; it runs only the load pattern",
  })),
);

test('skipped cells are said once per reason, listing the cells', (t) => {
  const lines = skippedLines([...skippedCells, { cell: '*/load/shared@llvm', reason: 'not installed' }]);
  t.is(lines.length, 2);
  t.is(
    lines[0],
    `skipped ${skippedCells.map((s) => s.cell).join(', ')}: LLVM 22's executor cannot initialize a freed range again; it runs only the load pattern`,
  );
  t.is(lines[1], 'skipped */load/shared@llvm: not installed');
});

test('a headline is read against ±precision around 1: within it "no difference beyond", outside it faster or slower, across an edge not settled; with fixed rounds, against 1', (t) => {
  const report = defaultShapedReport({ llvm: false });
  const ratio = (speedup: number, ci95: [number, number]) => ({
    workload: 'cray',
    pattern: 'load',
    policy: 'first-fit',
    executor: 'jitmem',
    mapper: 'shared',
    baseline: 'rpc' as const,
    speedup,
    ci95,
  });
  const ratios = [
    ratio(1.0, [0.98, 1.02]),
    ratio(0.8, [0.75, 0.85]),
    ratio(2.5, [2.1, 2.9]),
    // Across the edge at 1.03: no verdict is claimed.
    ratio(1.03, [1.004, 1.061]),
  ];
  const at = (sampling: Report['sampling']) =>
    headlineItems({ ...report, ratios, ...(sampling ? { sampling } : {}) } as Report).map((h) => h.text);
  t.deepEqual(
    at({ precision: 3, maxTimeMs: 125_000, minRounds: 8, gcBetweenRounds: true, warmupPerRound: 0, groups: [] }),
    [
      'cray/load (first-fit): shared memory and RPC copy: no difference beyond ±3% (speedup 1.00, 95% CI 0.98–1.02).',
      'cray/load (first-fit): shared memory is 1.25x slower than RPC copy (speedup 0.80, 95% CI 0.75–0.85).',
      'cray/load (first-fit): shared memory is 2.50x faster than RPC copy (speedup 2.50, 95% CI 2.10–2.90).',
      'cray/load (first-fit): shared memory over RPC copy: not settled (its interval crosses an edge of ±3% around 1) (speedup 1.03, 95% CI 1.00–1.06).',
    ],
  );
  const fixed = at(undefined);
  t.is(
    fixed[0],
    'cray/load (first-fit): shared memory and RPC copy: no measurable difference (speedup 1.00, 95% CI 0.98–1.02).',
  );
  t.is(
    fixed[3],
    'cray/load (first-fit): shared memory is 1.03x faster than RPC copy (speedup 1.03, 95% CI 1.00–1.06).',
  );
});

test('the summary explains rme, calls and (cold) under the table, and an exceeded budget is marked and explained', (t) => {
  const report = defaultShapedReport({ llvm: true });
  // python/load: RPC copy 42 ms against in-process 17 ms is over the 8 ms budget.
  t.true(overBudget(report));
  const text = renderSummary(report, 'r.json', { skipped: skippedCells });
  const matrix = report.results.filter((r) => r.pattern !== 'run');
  const { table, legend } = resultsTable(matrix);
  t.true(text.startsWith(table + legend.join('\n') + '\n\n'), 'the legend sits right under the table');
  t.regex(text, /^rme: /m);
  t.regex(text, /^calls: /m);
  t.regex(text, /^mapper: .*\(cold\): /m);
  t.regex(
    text,
    /^OVER BUDGET: python\/load first-fit: extra time of RPC copy over in-process, jitmem executor: \+\d+\.\d\d ms( \(95% CI [^)]*\))?, budget <= 8 ms/m,
  );
  t.regex(text, /a budget is exceeded \(exit status stays 0; --check-budgets makes it 1\)/);
  t.regex(
    renderSummary(report, 'r.json', { skipped: [], checkBudgets: true }),
    /a budget is exceeded: exit status 1 \(--check-budgets\)/,
  );
  t.regex(renderSummary(report, 'r.json', { skipped: [], colour: true }), /\x1b\[1;31mOVER BUDGET: /);
  t.notRegex(renderSummary(report, 'r.json', { skipped: [] }), /\x1b/);
  t.is(text.match(/^skipped /gm)?.length, 1);
  // LLVM's rows are for comparison: never over budget, never highlighted, and the report gives
  // them no verdict to read either.
  t.regex(text, /LLVM's executor: \+\d+\.\d\d ms( \(95% CI [^)]*\))?, budget <= 8 ms \(measured for comparison\)/);
  const theirs = report.budgets!.filter((b) => b.label.includes("LLVM's executor"));
  t.true(theirs.length > 0);
  for (const b of theirs) {
    t.true(b.informational, b.label);
    t.is(b.verdict, undefined, b.label);
    t.true(b.ok, b.label);
  }
  for (const b of report.budgets!.filter((x) => !x.label.includes("LLVM's executor"))) {
    t.is(b.informational, undefined, b.label);
    t.truthy(b.verdict, b.label);
  }
});

test('at 100 columns the table leaves out its least important columns and says so, every shown column is defined, and no line is longer', (t) => {
  const report = defaultShapedReport({ llvm: true });
  const text = renderSummary(report, 'r.json', { skipped: skippedCells, width: 100 });
  for (const line of text.split('\n')) t.true(line.length <= 100, `${line.length}: ${line}`);
  const header = text.split('\n', 1)[0]!;
  const columns = resultColumns(report.results.filter((r) => r.pattern !== 'run'));
  const shown = columns.filter((c) =>
    new RegExp(
      `(^|  )${(header.includes(c.header) ? c.header : (c.short ?? c.header)).replace(/[()/]/g, '\\$&')}(  |$)`,
    ).test(header),
  );
  t.true(shown.length >= 6 && shown.length < columns.length, header);
  for (const c of shown)
    if (c.legend)
      t.regex(
        text,
        new RegExp(
          `^${(header.includes(c.header) ? c.header : (c.short ?? c.header)).replace(/[()/]/g, '\\$&')}: `,
          'm',
        ),
        c.header,
      );
  const left = columns.filter((c) => !shown.includes(c));
  t.regex(text, new RegExp(`^left out to fit 100 columns: ${left.map((c) => c.header).join(', ')} `, 'm'));
  // The most important columns stay; numbers are right-aligned (the c/e columns too, when shown).
  for (const h of ['workload', 'pattern', 'mapper', 'p50 ms']) t.true(header.includes(h), h);
  // Without a width the whole table is there.
  t.regex(renderSummary(report, 'r.json', { skipped: [] }).split('\n', 1)[0]!, /p99 ms .* n /);
});

test('the plan says why it leaves cells out with a code, which the bench acts on, and a reason, which it prints', (t) => {
  const selection = {
    ...presetSelection('quick'),
    workloads: ['cray'],
    patterns: ['load', 'churn'] as PatternName[],
    executors: ['jitmem', 'llvm'] as const,
  };
  const withoutLlvm = planCells({ ...selection, executors: [...selection.executors] }, 1, false, {});
  t.deepEqual([...new Set(withoutLlvm.skipped.map((s) => s.code))], ['llvm-executor-missing']);
  t.true(withoutLlvm.skipped.every((s) => /llvm-jitlink-executor is not installed/.test(s.reason)));
  const withLlvm = planCells({ ...selection, executors: [...selection.executors] }, 1, true, {});
  t.deepEqual(
    withLlvm.skipped.map((s) => [s.cell, s.code]),
    [
      ['*/churn/shared@llvm', 'llvm-executor-load-only'],
      ['*/churn/rpc@llvm', 'llvm-executor-load-only'],
    ],
  );
});

test('a budget is judged by its interval: ok when all of it is within, OVER BUDGET when all of it is past, undecided when it straddles', (t) => {
  const report = defaultShapedReport({ llvm: false });
  const row = (ci95: [number, number], verdict: 'ok' | 'over' | 'undecided') => ({
    label: 'python/load first-fit: extra time of shared memory over in-process, jitmem executor',
    value: (ci95[0] + ci95[1]) / 2,
    budget: 8,
    unit: 'ms',
    ci95,
    rounds: 12,
    verdict,
    ok: verdict !== 'over',
  });
  const lines = (budgets: ReturnType<typeof row>[]) => budgetItems({ ...report, budgets } as Report);
  const [ok, over, undecided] = lines([row([5, 7], 'ok'), row([8.5, 11], 'over'), row([6, 10], 'undecided')]);
  t.regex(ok!.text, /: \+6\.00 ms \(95% CI 5\.00–7\.00, 12 rounds\), budget <= 8 ms: ok/);
  t.false(ok!.over);
  t.regex(over!.text, /^OVER BUDGET: .*\+9\.75 ms \(95% CI 8\.50–11\.00, 12 rounds\), budget <= 8 ms/);
  t.true(over!.over);
  t.regex(
    undecided!.text,
    /: \+8\.00 ms \(95% CI 6\.00–10\.00, 12 rounds\), budget <= 8 ms: undecided \(CI 6\.00–10\.00 ms straddles the budget\)/,
  );
  t.false(undecided!.over);
  t.is(budgetVerdict([5, 7], 8), 'ok');
  t.is(budgetVerdict([8.01, 9], 8), 'over');
  t.is(budgetVerdict([7, 9], 8), 'undecided');
  t.is(budgetVerdict([11, 12], 10, 'at-least'), 'ok');
  t.is(budgetVerdict([8, 9.9], 10, 'at-least'), 'over');
  t.is(budgetVerdict([9, 11], 10, 'at-least'), 'undecided');
});

test('the one-page finalize budget is judged by the interval of its per-block ratios', (t) => {
  const probe = (blockRatios: number[]) => ({
    noopUs: 10,
    finalizeUs: 14,
    samples: 50 * blockRatios.length,
    controllerFinalizeUs: 3,
    blockRatios,
  });
  // Geometric mean of the blocks, Student-t on their logs: all well under 1.5x is ok.
  const ok = roundTripBudget(probe([1.2, 1.25, 1.3, 1.22, 1.28]));
  t.is(ok.verdict, 'ok');
  t.true(ok.ok);
  t.is(ok.rounds, 5);
  t.is(
    Math.round(ok.value * 1000),
    Math.round(Math.exp([1.2, 1.25, 1.3, 1.22, 1.28].map(Math.log).reduce((a, b) => a + b) / 5) * 1000),
  );
  t.true(ok.ci95![0] < ok.value && ok.value < ok.ci95![1] && ok.ci95![1] < 1.5);
  // Around the budget: the interval straddles it, the verdict says so (a point value of 1.46 said "ok").
  const near = roundTripBudget(probe([1.3, 1.6, 1.4, 1.55, 1.45]));
  t.is(near.verdict, 'undecided');
  t.true(near.ok);
  t.is(roundTripBudget(probe([1.7, 1.75, 1.8, 1.72])).verdict, 'over');
  t.false(roundTripBudget(probe([1.7, 1.75, 1.8, 1.72])).ok);
  // Fewer than three blocks: the ratio of the medians alone decides, without an interval.
  const bare = roundTripBudget(probe([1.2]));
  t.is(bare.value, 1.4);
  t.is(bare.ci95, undefined);
  t.is(bare.verdict, 'ok');
});

test('a wrapped line keeps its own indentation, and its continuation lines are indented under it', (t) => {
  const line =
    '  NOT CONVERGED python/patch (first-fit) after 24 rounds, 5.7 s; about 22 s (90 rounds) would reach it:';
  const wrapped = wrapText(line, 60, '  ');
  t.deepEqual(wrapped, [
    '  NOT CONVERGED python/patch (first-fit) after 24 rounds,',
    '    5.7 s; about 22 s (90 rounds) would reach it:',
  ]);
  t.is(wrapped.join(' ').replace(/ +/g, ' ').trim(), line.trim());
  t.deepEqual(wrapText('short', 60, '  '), ['short']);
});
