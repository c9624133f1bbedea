import path from 'node:path';
import { appendStepSummary, flagCommand } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { booleanFlag, invalidOperands, oneOf, repeatedFlag, text, valueFlag } from './flags.js';
import { formatTable } from '../report/format-table.js';
import {
  isHeadline,
  readHistory,
  sparkline,
  storeReport,
  trends,
  type JudgeLast,
  type Trend,
} from '../report/history.js';
import { compareReports } from '../compare/judge.js';
import { checkOutputFile } from '../../core/files.js';
import { writeFileSync } from 'node:fs';

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
    markdown: valueFlag(
      {
        value: 'FILE',
        help: `also write the Markdown to FILE, its chart linked relative to FILE (so FILE
and the chart directory can be uploaded or committed together; its directory must exist)`,
      },
      text,
    ),
  },
  operands: true,
  footer: `the change column: the last commit against the one before, judged as compare judges it (the
same test, threshold and correction; several runs of a commit are judged over runs); ~ marks a
change that is not significant. The trend column is drawn on a log scale spanning the 95%
intervals: two points whose intervals overlap never read as bottom and top.`,
};

const x2 = (v: number) => `${v.toFixed(2)}x`;

/** A change as compare prints it: signed percent, `~` in front when it is not significant. */
export function judgedChange(last: Trend['last']): string {
  if (!last) return '';
  return `${last.significant ? '' : '~'}${last.change >= 0 ? '+' : ''}${(last.change * 100).toFixed(1)}%`;
}

/** compare's own judgement of one ratio row, the last commit's runs against the previous commit's. */
const judgeByCompare: JudgeLast = (label, before, last) => {
  const comparison = compareReports(before[before.length - 1]!, last[last.length - 1]!, {
    ratiosOnly: true,
    rowFilter: (l) => l === label,
    baseRuns: before.slice(0, -1),
    noiseReports: last.slice(0, -1),
  });
  const row = comparison.ratios.find((r) => r.label === label);
  return row
    ? { change: row.change, significant: row.significant && row.verdict !== 'same', verdict: row.verdict }
    : undefined;
};

function rows(list: readonly Trend[]): string[][] {
  return list.map((t) => {
    const last = t.points[t.points.length - 1]!;
    return [
      t.label,
      String(t.points.length),
      sparkline(t.points),
      `${last.commit}: ${x2(last.speedup)} [${x2(last.ci95[0])}, ${x2(last.ci95[1])}]`,
      judgedChange(t.last),
    ];
  });
}

const HEADER = ['speedup', 'commits', 'trend', 'last (95% CI)', 'vs commit before'];
const LEGEND =
  'vs commit before: the last commit against the one before, judged as compare judges it; ~ not significant.';

function pointsTable(t: Trend): string[][] {
  return t.points.map((p) => [p.commit, String(p.runs), x2(p.speedup), `[${x2(p.ci95[0])}, ${x2(p.ci95[1])}]`]);
}

/**
 * The history as Markdown. `chart` is the trend chart's path as the reader of the Markdown
 * resolves it: relative to the Markdown file's own folder when it is written to a file.
 */
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
  out.push(LEGEND, '');
  if (chart)
    out.push(`![Headline speedups across commits](${chart.split(path.sep).map(encodeURIComponent).join('/')})`, '');
  return out.join('\n');
}

export const historyCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  const [dir] = operands;
  if (dir === undefined || operands.length !== 1) throw invalidOperands('history takes one directory', operands);
  const { format } = values;
  const markdownFile = values.markdown === undefined ? undefined : path.resolve(values.markdown);
  if (markdownFile) checkOutputFile(markdownFile, 'the Markdown');
  const stored = values.add.map((f) => storeReport(dir, f));
  const entries = readHistory(dir);
  if (entries.length === 0)
    throw new JitmemError('ERR_HISTORY_EMPTY', `history ${dir} holds no report; store some with --add REPORT.json`, {
      dir,
    });
  const list = trends(entries, values.all ? () => true : isHeadline, judgeByCompare);
  let chart: string | undefined;
  let chartFile: string | undefined;
  if (!values['no-chart'] && list.length) {
    const { writeTrendChart } = await import('../charts/history-trend.js');
    const files = await writeTrendChart(list, path.resolve(values.out ?? path.join(dir, 'trend')));
    chartFile = files[1]!;
    chart = path.relative(process.cwd(), chartFile) || chartFile;
  }
  if (markdownFile)
    writeFileSync(
      markdownFile,
      historyMarkdown(dir, list, chartFile && path.relative(path.dirname(markdownFile), chartFile)),
    );
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
  io.stdout.write(formatTable(HEADER, rows(list)) + LEGEND + '\n');
  for (const t of list)
    io.stdout.write(`\n${t.label}\n${formatTable(['commit', 'runs', 'speedup', '95% CI'], pointsTable(t))}`);
  if (chart) io.stdout.write(`\ntrend chart: ${chart}\n`);
  if (markdownFile) io.stdout.write(`markdown: ${path.relative(process.cwd(), markdownFile) || markdownFile}\n`);
  return 0;
});
