import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isInformationalBudget, type Report } from '../../harness/report/report.js';
import { halfWidthPercent, ratioLabel, verdictOf } from '../../harness/bench/sampling.js';

/**
 * Do the verdicts of several runs of one commit agree? node dist/test/tools/verdict-table.js
 * [--checks] REPORT... prints, as a markdown table, every headline of each report (each
 * shared-memory-over-RPC-copy speedup, each end-to-end headline) with its verdict, as the
 * summary states it (sampling.ts verdictOf: faster, the whole 95% interval above 1; slower, below
 * 1; n.d., it holds 1; each only when settled at the report's precision, else "not settled"),
 * and every budget's verdict, then how many rows kept one verdict in all runs and how many had
 * settled verdicts that contradict each other (faster in one run, n.d. in another).
 *
 * With --checks (the CPU-hog criteria of issue 18, for quick runs): every speedup row's 95%
 * half-width is at most the precision asked or the row is named as not converged (at most two
 * such rows), every row's intervals overlap across the runs, and every result row's phase means
 * add up to its iteration mean within 2%. Exit 1 when a check fails. A row is named when its
 * group's `sampling.groups[].notConverged` lists it, as the summary's precision lines do
 * (reports of older versions, without that list: when its group is not converged).
 */

interface Cell {
  verdict: string;
  value: string;
}

const args = process.argv.slice(2);
const checks = args.includes('--checks');
const files = args.filter((a) => a !== '--checks');
if (files.length === 0) {
  console.error('usage: verdict-table [--checks] REPORT...');
  process.exit(2);
}
const reports = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Report);

const fmt = (x: number): string =>
  Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2);
const SHORT: Record<ReturnType<typeof verdictOf>, string> = {
  faster: 'faster',
  slower: 'slower',
  'not distinguishable': 'n.d.',
  'not settled': 'not settled',
};

function headlineCells(report: Report): Map<string, Cell> {
  const cells = new Map<string, Cell>();
  const precision = report.sampling?.precision;
  for (const r of report.ratios) {
    if (r.mapper !== 'shared' || r.baseline !== 'rpc') continue;
    const size = (r as { contentHint?: number }).contentHint;
    const label = `${r.workload}/${r.pattern}${size ? ` ${size}` : ''} (${r.policy}) ${r.executor} shared/RPC`;
    cells.set(label, { verdict: SHORT[verdictOf(r, precision)], value: r.speedup.toFixed(3) });
  }
  for (const h of report.endToEnd?.headlines ?? []) {
    const label = `${h.workload} end to end, ${h.linker} ${h.executor}${h.controller ? ` ${h.controller}` : ''} shared/${h.baseline}`;
    cells.set(label, { verdict: SHORT[verdictOf(h, precision)], value: h.speedup.toFixed(3) });
  }
  // Some budget labels carry a measured figure ("median 22.5 us"): rows are matched with every
  // number in the label blanked, and the figures shown beside the verdict.
  for (const b of report.budgets ?? []) {
    // Rows measured for comparison have no verdict.
    if (isInformationalBudget(b)) continue;
    const value = b.ci95 ? `${fmt(b.value)} (${fmt(b.ci95[0])}-${fmt(b.ci95[1])})` : fmt(b.value);
    cells.set(`budget: ${b.label.replace(/[-+]?\d+(\.\d+)?/g, '#')}`, {
      verdict: b.verdict ?? (b.ok ? 'ok' : 'over'),
      value: `${value}${b.unit.trim() ? ` ${b.unit.trim()}` : ''} / ${fmt(b.budget)}`,
    });
  }
  return cells;
}

const perRun = reports.map(headlineCells);
const labels = [...new Set(perRun.flatMap((m) => [...m.keys()]))];
console.log(`| row | ${files.map((f, i) => `run ${i + 1} (${path.basename(f)})`).join(' | ')} | same verdict |`);
console.log(`|---|${files.map(() => '---|').join('')}---|`);
let same = 0;
let contradicting = 0;
for (const label of labels) {
  const cells = perRun.map((m) => m.get(label));
  const verdicts = new Set(cells.map((c) => c?.verdict ?? 'absent'));
  const agree = verdicts.size === 1;
  if (agree) same++;
  const settled = new Set([...verdicts].filter((v) => v !== 'not settled' && v !== 'absent' && v !== 'undecided'));
  if (settled.size > 1) contradicting++;
  const shown = cells.map((c) => (c ? `${c.verdict}${c.value ? ` ${c.value}` : ''}` : 'absent'));
  console.log(`| ${label} | ${shown.join(' | ')} | ${agree ? 'yes' : 'NO'} |`);
}
// The machine each run had: the fixed walk timed before its rounds (reports from before it have none).
const speeds = reports.map((r) => r.sampling?.machineSpeed);
for (const part of ['run', 'matrix'] as const) {
  const figures = speeds.map((m) => m?.parts.find((p) => p.part === part));
  if (!figures.some(Boolean)) continue;
  const shown = figures.map((p) =>
    p
      ? `${p.wallMs.p50.toFixed(2)} ms (${p.wallMs.p5.toFixed(2)}-${p.wallMs.p95.toFixed(2)}, n = ${p.samples})`
      : 'absent',
  );
  console.log(
    `| machine speed before the ${part} rounds: the walk's median (5th-95th percentile) | ${shown.join(' | ')} | |`,
  );
}
console.log(`\n${same} of ${labels.length} rows kept one verdict in all ${reports.length} runs.`);
console.log(
  `${contradicting} of ${labels.length} rows had settled verdicts that contradict each other (not settled and undecided set aside).`,
);

if (checks) {
  let failed = 0;
  const problems: string[] = [];
  // Half-widths: every speedup row within the precision asked, or named as not converged.
  reports.forEach((report, i) => {
    const precision = report.sampling?.precision ?? 5;
    const groups = report.sampling?.groups ?? [];
    const namedRows = new Set(groups.flatMap((g) => (g.notConverged ?? []).map((w) => w.label)));
    const unconverged = new Set(
      groups.filter((g) => !g.converged && !g.notConverged).map((g) => `${g.workload}/${g.pattern}/${g.policy}`),
    );
    let named = 0;
    for (const r of report.ratios) {
      // The summary's measure: half the interval's width in percent of the speedup.
      const half = halfWidthPercent(r);
      if (half <= precision) continue;
      if (namedRows.has(ratioLabel(r)) || unconverged.has(`${r.workload}/${r.pattern}/${r.policy}`)) named++;
      else
        problems.push(
          `run ${i + 1}: ${ratioLabel(r)} half-width ${half.toFixed(1)}% > ${precision}% and not named as not converged`,
        );
    }
    console.log(`run ${i + 1}: ${named} speedup rows wider than ${precision}% in groups named as not converged`);
    if (named > 2) problems.push(`run ${i + 1}: ${named} rows not converged (at most 2)`);
  });
  // Overlap of every row's intervals across the runs.
  const key = (r: Report['ratios'][number]) =>
    `${r.workload}/${r.pattern}/${r.policy}/${r.executor}/${r.mapper}/${r.baseline}`;
  const rowKeys = new Set(reports.flatMap((rep) => rep.ratios.map(key)));
  let overlapping = 0;
  for (const k of rowKeys) {
    const cis = reports.map((rep) => rep.ratios.find((r) => key(r) === k)?.ci95).filter((c) => c !== undefined);
    const low = Math.max(...cis.map((c) => c[0]));
    const high = Math.min(...cis.map((c) => c[1]));
    if (low <= high) overlapping++;
    else
      problems.push(
        `${k}: intervals do not overlap (${cis.map((c) => `${c[0].toFixed(3)}-${c[1].toFixed(3)}`).join(' vs ')})`,
      );
  }
  console.log(`${overlapping} of ${rowKeys.size} speedup rows' intervals overlap across the runs`);
  // Phase means add up to the iteration mean.
  let worst = 0;
  for (const report of reports)
    for (const row of report.results) {
      const phases = Object.values(row.phases ?? {}) as Array<{ mean: number }>;
      if (!phases.length || !(row.latency.mean > 0)) continue;
      const sum = phases.reduce((a, p) => a + p.mean, 0);
      const err = Math.abs(sum - row.latency.mean) / row.latency.mean;
      worst = Math.max(worst, err);
      if (err > 0.02)
        problems.push(
          `${row.workload}/${row.pattern} ${row.mapper}: phases sum to ${sum.toFixed(4)} ms, iteration ${row.latency.mean.toFixed(4)} ms`,
        );
    }
  console.log(`phase means vs iteration mean: worst difference ${(worst * 100).toFixed(3)}% (criterion 2%)`);
  for (const p of problems) console.log(`FAIL ${p}`);
  failed = problems.length;
  console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
  process.exitCode = failed ? 1 : 0;
}
