import test from 'ava';
import { fileURLToPath } from 'node:url';
import { readReport, type Report, type ResultRow } from '../harness/report/report.js';
import { headlineItems } from '../harness/bench/summary.js';
import { chartSpecs } from '../harness/charts/chart-specs.js';
import { htmlPage } from '../harness/charts/html-page.js';
import { compareReports } from '../harness/compare/judge.js';
import { formatText } from '../harness/compare/format.js';
import { historyMarkdown } from '../harness/commands/history.js';
import { trends } from '../harness/report/history.js';
import { meanInterval } from '../harness/statistics.js';

/**
 * One statistic per quantity: every headline speedup (shared memory over RPC copy) is computed
 * here from the report's raw rounds (each round's median latency of both rows), by its one
 * definition: the geometric mean of the paired per-round speedups, with a Student-t 95%
 * interval over rounds on the log scale. The bench's summary, the speedup chart, the HTML
 * page, compare and history must print that same number. The report is a real quick run
 * (reports/baseline.json, committed).
 */

const baselineFile = fileURLToPath(new URL('../../reports/baseline.json', import.meta.url));

function fromRounds(
  report: Report,
  workload: string,
  pattern: string,
  policy: string,
  executor: string,
): { speedup: number; low: number; high: number; rounds: number } {
  const row = (mapper: string) =>
    report.results.find(
      (r) =>
        r.workload === workload &&
        r.pattern === pattern &&
        r.policy === policy &&
        r.mapper === mapper &&
        r.executor === executor,
    ) as ResultRow;
  const rpc = row('rpc').rounds!;
  const shared = row('shared').rounds!;
  const logs: number[] = [];
  for (let i = 0; i < rpc.length; i++)
    if (rpc[i]!.samples > 0 && shared[i]!.samples > 0) logs.push(Math.log(rpc[i]!.p50 / shared[i]!.p50));
  const est = meanInterval(logs);
  return { speedup: Math.exp(est.mean), low: Math.exp(est.low), high: Math.exp(est.high), rounds: logs.length };
}

test('every headline speedup prints the same number, computed from raw rounds, in the summary, the chart, the HTML page, compare and history', (t) => {
  const report = readReport(baselineFile);
  const headlines = report.ratios.filter((r) => r.mapper === 'shared' && r.baseline === 'rpc');
  t.true(headlines.length >= 2);
  const summary = headlineItems(report).map((h) => h.text);
  const speedupChart = chartSpecs([report]).charts.find((c) => c.name === 'speedup')!;
  const chartValues = (
    speedupChart.spec as { data: { values: Array<{ speedup: number; label: string; tip: string }> } }
  ).data.values;
  const page = htmlPage([report], [], []);
  const comparison = compareReports(report, report, { ratiosOnly: true });
  const compareText = formatText(comparison, 'a.json', 'a.json');
  const history = historyMarkdown('history', trends([{ file: 'a.json', report }]), undefined);
  for (const h of headlines) {
    const expected = fromRounds(report, h.workload, h.pattern, h.policy, h.executor);
    const x2 = expected.speedup.toFixed(2);
    const ci = `95% CI ${expected.low.toFixed(2)}–${expected.high.toFixed(2)}`;
    t.true(expected.rounds >= 3);
    // 1. The bench's summary.
    const line = summary.find((s) => s.startsWith(`${h.workload}/${h.pattern} (${h.policy})`));
    t.truthy(line, `no summary line for ${h.workload}/${h.pattern}`);
    t.true(line!.includes(`(speedup ${x2}, ${ci}, ${expected.rounds} rounds)`), line);
    // 2. The speedup chart: the dot, its label and its tooltip.
    const dot = chartValues.find(
      (v) =>
        v.tip.startsWith(`${h.workload}`) &&
        v.tip.includes('shared memory') &&
        Math.abs(v.speedup - expected.speedup) < 1e-9 * expected.speedup,
    );
    t.truthy(dot, `no chart point at ${expected.speedup} for ${h.workload}/${h.pattern}`);
    t.is(dot!.label, `${x2}×`);
    t.true(
      dot!.tip.includes(
        `${x2}× the speed of RPC copy (95% CI ${expected.low.toFixed(2)}×–${expected.high.toFixed(2)}×, ${expected.rounds} rounds)`,
      ),
      dot!.tip,
    );
    // 3. The HTML page's summary.
    t.true(page.includes(`(speedup ${x2}, ${ci}, ${expected.rounds} rounds)`));
    // 4. compare: a report against itself shows the report's speedup in its base and head columns.
    const row = comparison.ratios.find(
      (r) => r.label === `${h.workload}/${h.pattern}/shared/${h.executor}/${h.policy}/speedup-vs-rpc`,
    )!;
    t.is(row.base.speedup.toFixed(2), x2);
    t.is(row.head.speedup.toFixed(2), x2);
    const bracket = `\\[${expected.low.toFixed(2)}x, ${expected.high.toFixed(2)}x\\]`;
    t.regex(
      compareText,
      new RegExp(`^${row.label.replace(/[/.]/g, '\\$&')} +${x2}x +${bracket} +${x2}x +${bracket} `, 'm'),
    );
    // 5. history: one run is one point, the run's own speedup.
    t.true(
      history.includes(`${x2}x [${expected.low.toFixed(2)}x, ${expected.high.toFixed(2)}x]`),
      `history lacks ${x2}x`,
    );
  }
  // The caption says what the figure is.
  t.regex(
    speedupChart.caption,
    /geometric mean of those per-round speedups, the whiskers its 95% Student-t interval over rounds/,
  );
});
