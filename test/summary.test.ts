import test from 'ava';
import { budgetItems, headlineItems, overBudget, renderSummary, skippedLines, TABLE_LEGEND } from '../harness/bench/summary.js';
import { budgetVerdict } from '../harness/bench/ratios.js';
import type { PatternName, Report } from '../harness/report/report.js';
import { planCells, presetSelection } from '../harness/bench/matrix.js';
import { defaultShapedReport } from './helpers/default-report.js';

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

test('a speedup whose interval holds 1 reads "no measurable difference"; one outside it says faster or slower', (t) => {
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
  const texts = headlineItems({
    ...report,
    ratios: [ratio(1.0, [0.97, 1.04]), ratio(0.8, [0.7, 0.9]), ratio(2.5, [2.1, 2.9])],
  } as Report).map((h) => h.text);
  t.deepEqual(texts, [
    'cray/load (first-fit): shared memory and RPC copy: no measurable difference (speedup 1.00, 95% CI 0.97–1.04).',
    'cray/load (first-fit): shared memory is 1.25x slower than RPC copy (speedup 0.80, 95% CI 0.70–0.90).',
    'cray/load (first-fit): shared memory is 2.50x faster than RPC copy (speedup 2.50, 95% CI 2.10–2.90).',
  ]);
});

test('the summary explains rme, calls and (cold) under the table, and an exceeded budget is marked and explained', (t) => {
  const report = defaultShapedReport({ llvm: true });
  // python/load: RPC copy 42 ms against in-process 17 ms is over the 8 ms budget.
  t.true(overBudget(report));
  const text = renderSummary(report, 'r.json', { skipped: skippedCells });
  const tableEnd = text.indexOf('\n\n');
  t.is(
    text.slice(tableEnd - TABLE_LEGEND.join('\n').length, tableEnd),
    TABLE_LEGEND.join('\n'),
    'the legend sits right under the table',
  );
  t.regex(text, /^rme: /m);
  t.regex(text, /^calls: /m);
  t.regex(text, /^\(cold\): /m);
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
  // LLVM's rows are for comparison: never over budget, never highlighted.
  t.regex(text, /LLVM's executor: \+\d+\.\d\d ms( \(95% CI [^)]*\))?, budget <= 8 ms \(measured for comparison\)/);
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
  const row = (ci95: [number, number], verdict: 'ok' | 'over' | 'undecided') => ({ label: 'python/load first-fit: extra time of shared memory over in-process, jitmem executor', value: (ci95[0] + ci95[1]) / 2, budget: 8, unit: 'ms', ci95, rounds: 12, verdict, ok: verdict !== 'over' });
  const lines = (budgets: ReturnType<typeof row>[]) => budgetItems({ ...report, budgets } as Report);
  const [ok, over, undecided] = lines([row([5, 7], 'ok'), row([8.5, 11], 'over'), row([6, 10], 'undecided')]);
  t.regex(ok!.text, /: \+6\.00 ms \(95% CI 5\.00–7\.00, 12 rounds\), budget <= 8 ms: ok/);
  t.false(ok!.over);
  t.regex(over!.text, /^OVER BUDGET: .*\+9\.75 ms \(95% CI 8\.50–11\.00, 12 rounds\), budget <= 8 ms/);
  t.true(over!.over);
  t.regex(undecided!.text, /: \+8\.00 ms \(95% CI 6\.00–10\.00, 12 rounds\), budget <= 8 ms: undecided \(CI 6\.00–10\.00 ms straddles the budget\)/);
  t.false(undecided!.over);
  t.is(budgetVerdict([5, 7], 8), 'ok');
  t.is(budgetVerdict([8.01, 9], 8), 'over');
  t.is(budgetVerdict([7, 9], 8), 'undecided');
  t.is(budgetVerdict([11, 12], 10, 'at-least'), 'ok');
  t.is(budgetVerdict([8, 9.9], 10, 'at-least'), 'over');
  t.is(budgetVerdict([9, 11], 10, 'at-least'), 'undecided');
});
