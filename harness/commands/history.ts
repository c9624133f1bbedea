import path from 'node:path';
import { appendStepSummary, flagCommand } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { booleanFlag, invalidOperands, oneOf, repeatedFlag, text, valueFlag } from './flags.js';
import { formatTable } from '../report/format-table.js';
import { isHeadline, lastChange, readHistory, sparkline, storeReport, trends, type Trend } from '../report/history.js';

const SPEC = {
  name: 'history',
  usage: 'jitmem history DIR [options]',
  about: `A history of bench reports is a directory of report files, stored per commit. This prints the
trend of each headline speedup (shared memory over RPC copy, per workload, pattern, policy and
executor) across the commits stored, with 95% intervals, and draws it (commits on the x axis):
DIR/trend/trend.{vl.json,svg,png}. Several runs of one commit make one point: the geometric
mean of their speedups with a Student-t interval over the runs.

To gate a new run against the median of the last N stored runs:
  jitmem compare --history DIR --last N HEAD.json --noise ... (see jitmem compare --help)`,
  flags: {
    add: repeatedFlag(
      { value: 'REPORT.json', help: 'store a report in DIR first (repeatable; DIR is made if missing)' },
      text,
    ),
    all: booleanFlag('every speedup ratio, not only the headline ones'),
    out: valueFlag({ value: 'DIR', help: 'where the trend chart goes (default DIR/trend)' }, text),
    'no-chart': booleanFlag('draw no chart'),
    format: valueFlag(
      {
        value: 'text|markdown|json',
        help: `output format (default text); with markdown, the output is also
appended to the file named by $GITHUB_STEP_SUMMARY when it is set`,
      },
      oneOf(['text', 'markdown', 'json'] as const),
      'text',
    ),
  },
  operands: true,
};

const x2 = (v: number) => `${v.toFixed(2)}x`;

function rows(list: readonly Trend[]): string[][] {
  return list.map((t) => {
    const last = t.points[t.points.length - 1]!;
    const change = lastChange(t.points);
    return [
      t.label,
      String(t.points.length),
      sparkline(t.points.map((p) => p.speedup)),
      `${last.commit}: ${x2(last.speedup)} [${x2(last.ci95[0])}, ${x2(last.ci95[1])}]`,
      change === null ? '' : `${change >= 0 ? '+' : ''}${(change * 100).toFixed(1)}%`,
    ];
  });
}

const HEADER = ['speedup', 'commits', 'trend', 'last (95% CI)', 'last vs median before'];

function pointsTable(t: Trend): string[][] {
  return t.points.map((p) => [p.commit, String(p.runs), x2(p.speedup), `[${x2(p.ci95[0])}, ${x2(p.ci95[1])}]`]);
}

export function historyMarkdown(dir: string, list: readonly Trend[], chart: string | undefined): string {
  const md = (header: string[], cells: string[][]) =>
    [
      `| ${header.join(' | ')} |`,
      `|${header.map((_, i) => (i ? '---:' : ':---')).join('|')}|`,
      ...cells.map((c) => `| ${c.map((x) => x.replace(/\|/g, '\\|')).join(' | ')} |`),
    ].join('\n');
  const out = [
    `## jitmem history: \`${dir}\``,
    '',
    md(
      HEADER,
      rows(list).map((r) => [`\`${r[0]}\``, ...r.slice(1)]),
    ),
    '',
  ];
  for (const t of list)
    out.push(
      `<details><summary><code>${t.label}</code></summary>`,
      '',
      md(['commit', 'runs', 'speedup', '95% CI'], pointsTable(t)),
      '',
      '</details>',
      '',
    );
  if (chart) out.push(`Trend chart: \`${chart}\``, '');
  return out.join('\n');
}

export const historyCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  const [dir] = operands;
  if (dir === undefined || operands.length !== 1) throw invalidOperands('history takes one directory', operands);
  const { format } = values;
  const stored = values.add.map((f) => storeReport(dir, f));
  const entries = readHistory(dir);
  if (entries.length === 0)
    throw new JitmemError('ERR_HISTORY_EMPTY', `history ${dir} holds no report; store some with --add REPORT.json`, {
      dir,
    });
  const list = trends(entries, values.all ? () => true : isHeadline);
  let chart: string | undefined;
  if (!values['no-chart'] && list.length) {
    const { writeTrendChart } = await import('../charts/history-trend.js');
    const files = await writeTrendChart(list, path.resolve(values.out ?? path.join(dir, 'trend')));
    chart = path.relative(process.cwd(), files[1]!) || files[1]!;
  }
  if (format === 'json') {
    io.stdout.write(
      JSON.stringify({ dir, stored, reports: entries.length, trends: list, ...(chart ? { chart } : {}) }, null, 2) +
        '\n',
    );
    return 0;
  }
  if (format === 'markdown') {
    const markdown = historyMarkdown(dir, list, chart);
    io.stdout.write(markdown);
    appendStepSummary(markdown, io);
    return 0;
  }
  for (const s of stored) io.stdout.write(`stored ${s}\n`);
  io.stdout.write(`${entries.length} report${entries.length === 1 ? '' : 's'} in ${dir}\n\n`);
  io.stdout.write(formatTable(HEADER, rows(list)));
  for (const t of list)
    io.stdout.write(`\n${t.label}\n${formatTable(['commit', 'runs', 'speedup', '95% CI'], pointsTable(t))}`);
  if (chart) io.stdout.write(`\ntrend chart: ${chart}\n`);
  return 0;
});
