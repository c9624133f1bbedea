import path from 'node:path';
import { defaultOutput, flagCommand } from './command.js';
import { invalidOperands, nonEmptyText, valueFlag } from './flags.js';
import { ensureOutputDirectory } from '../../core/files.js';
import { readReport } from '../report/report.js';
import { writeCharts } from '../charts/write-charts.js';

const SPEC = {
  name: 'charts',
  usage: 'jitmem charts REPORT.json... --out DIR',
  about: `Draws bench reports as Vega-Lite charts: for each chart DIR/<name>.vl.json (the spec, data
inline), DIR/<name>.svg and DIR/<name>.png (drawn with the font the project ships, so the same
on every machine), and one self-contained DIR/index.html: the last report's summary (headline
speedups, budgets, the table of cells) at the top, then every chart, with a tooltip on every
mark; no script, no network (it opens from file://). Given two reports, the page also says
what 'jitmem compare FIRST LAST' says. Each mapper has one colour in every chart.

charts (from the last report given, except the history):
  speedup   each mapper's speedup over RPC copy, a row per workload and pattern: dot, 95% CI
            whisker and value on one log axis, a rule at 1x
  phases    each phase's share of the median iteration, per row
  sweep     median latency over content size, a line per mapper with its 95% CI band
  latency   box plots of every row's latency samples
  churn     free ranges and fragmentation over a churn run, a line per fit policy (rows with
            slabSeries)
  history   median latency per cell across all the reports given (two or more), by commit
A chart whose data the reports do not hold is skipped, and the output says which and why.`,
  flags: {
    out: valueFlag(
      { value: 'DIR', help: 'where to write (default jitmem-reports/charts in the current directory)' },
      nonEmptyText,
    ),
  },
  operands: true,
  footer: `exit status: 0 when drawn; 2 for bad flags or an unreadable or invalid report.`,
};

export const chartsCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  if (operands.length === 0) throw invalidOperands('charts needs at least one report file (REPORT.json...)', operands);
  const outDir = values.out !== undefined ? path.resolve(values.out) : defaultOutput('charts');
  // Before reports are read and the renderer loaded: a place charts cannot go is an error now
  // (nothing is created until they are drawn).
  ensureOutputDirectory(outDir, 'charts', outDir, { create: false });
  const reports = operands.map((file) => readReport(file));
  const written = await writeCharts(reports, outDir);
  for (const chart of written.charts)
    io.stdout.write(`${chart.name}: ${path.join(outDir, chart.name)}.{vl.json,svg,png}\n`);
  for (const s of written.skipped) io.stdout.write(`${s.name}: skipped, ${s.reason}\n`);
  io.stdout.write(`\nHTML report: ${written.index}\n`);
  return 0;
});
