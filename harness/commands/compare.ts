import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { JitmemError } from '../../core/errors.js';
import { formatTable } from '../format-table.js';
import { readReport } from '../report.js';
import {
  calibrateThresholds,
  compareReports,
  DEFAULT_ALPHA,
  DEFAULT_THRESHOLD,
  parsePercent,
  parseThresholdRule,
  type Comparison,
  type GeometricMeanRow,
  type RatioComparison,
  type TimeComparison,
} from '../compare.js';

const HELP = `usage: jitmem compare BASE.json HEAD.json [options]

Says, row by row, whether HEAD differs from BASE for real. Rows are matched by workload,
pattern, mapper, executor and policy (and phase, with --phases); a row in one report only is
listed as added or removed.

Times: the change is median(HEAD)/median(BASE) - 1 with a 95% bootstrap confidence interval;
it is significant when a two-sided Mann-Whitney U test gives p < alpha. Speedup ratios (each
mapper over RPC copy and over in-process): reports carry them with a 95% interval but no
samples, so a ratio change is tested on the log scale with a Wald test whose standard errors
come from both reports' intervals; it is significant when p < alpha.
A change counts only when it is significant AND larger than the row's noise threshold;
otherwise the change column shows '~'. A slower time, or a lower speedup, that counts is a
regression. The geometric-mean rows summarise all changes and never fail the run.

options:
  --alpha P                   significance level (default ${DEFAULT_ALPHA})
  --threshold PCT             noise threshold, e.g. 5% or 2.5 (default ${DEFAULT_THRESHOLD * 100}%)
  --threshold-for PAT=PCT     threshold for the rows PAT matches; repeatable, the last match
                              wins. PAT is a row label workload/pattern/mapper/executor/policy/measure
                              where * matches any text within one segment and missing trailing
                              segments match anything; measure is latency, a phase name, or
                              speedup-vs-rpc / speedup-vs-inprocess; sweep rows have pattern
                              sweep@BYTES, which 'sweep' also matches, and cells run cold have
                              PATTERN+cold, which PATTERN also matches (a cold cell is only
                              ever compared with a cold one). Examples:
                                --threshold-for 'python/churn/*=10%'
                                --threshold-for '*/*/rpc=8%'
                                --threshold-for '*/*/*/*/*/speedup-vs-rpc=3%'
  --noise RUN.json            a further run of HEAD's commit; repeatable (four advised: with
                              fewer, the bound is wide). Each row's threshold is then raised
                              to the run-to-run noise measured over HEAD and these k runs:
                              t(1-alpha/2m, k-1) * s * sqrt(2) on the log scale, s the standard
                              deviation of the runs' log medians (log speedups), m the rows:
                              the change that two runs of one commit show in any of the m rows
                              with probability at most alpha (Bonferroni). This noise (CPU
                              placement, frequency, other load) is what within-run statistics
                              cannot see. Shown as 'noise'; 'threshold' is what a row was held to.
  --phases                    compare each phase's times as well as whole iterations
  --ratios-only               compare only the speedup ratios (for reports from different
                              machines: what CI does)
  --calibrate                 instead of comparing, take two or more reports of the SAME commit
                              (RUN.json RUN.json ...) and print, per row, the worst change in
                              the regression direction between any two of them, the noise bound
                              (as for --noise), and --threshold-for flags for the rows whose
                              noise exceeds --threshold. Gate thresholds should come from here.
  --format text|markdown|json output format (default text); with markdown, the output is also
                              appended to the file named by $GITHUB_STEP_SUMMARY when it is set
  -h, --help                  show this help

exit status: 0 no significant regression beyond its threshold; 1 at least one; 2 unusable
input (a missing or unreadable file, invalid JSON, not a schema-1 report, bad flags).
`;

type Format = 'text' | 'markdown' | 'json';

function pct(x: number): string {
  if (Number.isNaN(x)) return 'n/a';
  if (x === Infinity) return '+inf';
  const text = (x * 100).toFixed(1);
  // A change that rounds to zero is +0.0%, whichever side of zero the float fell on.
  return text === '-0.0' || text === '0.0' ? '+0.0%' : `${x > 0 ? '+' : ''}${text}%`;
}
const ms = (x: number) => (x < 0.1 ? `${(x * 1000).toFixed(2)} us` : `${x.toFixed(3)} ms`);
const times = (x: number) => `${x.toFixed(2)}x`;
const pValue = (p: number) => (p < 0.0001 ? '<0.0001' : p.toFixed(4));
const verdictText = (v: TimeComparison['verdict']) => (v === 'regression' ? 'REGRESSION' : v === 'improvement' ? 'improvement' : '');
const changeText = (r: { verdict: TimeComparison['verdict']; change: number }) => (r.verdict === 'same' ? '~' : pct(r.change));

/** The noise column, present only when noise runs were given. */
function withNoise(header: string[], cells: string[][], rows: ReadonlyArray<{ noise: number | null }>): { header: string[]; cells: string[][] } {
  if (!rows.some((r) => r.noise !== null)) return { header, cells };
  const at = header.indexOf('threshold');
  return {
    header: [...header.slice(0, at), 'noise', ...header.slice(at)],
    cells: cells.map((c, i) => [...c.slice(0, at), rows[i] ? pct(rows[i]!.noise ?? 0).slice(1) : '', ...c.slice(at)]),
  };
}

function timeTable(rows: readonly TimeComparison[], geo: GeometricMeanRow | null): { header: string[]; cells: string[][] } {
  const header = ['row', 'base p50', 'head p50', 'change', '95% CI', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [r.label, ms(r.base.median), ms(r.head.median), changeText(r), `[${pct(r.ci95[0])}, ${pct(r.ci95[1])}]`, pValue(r.p), pct(r.threshold).slice(1), verdictText(r.verdict)]);
  if (geo) cells.push(['geometric mean', '', '', pct(geo.change), '', '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

function ratioTable(rows: readonly RatioComparison[], geo: GeometricMeanRow | null): { header: string[]; cells: string[][] } {
  const header = ['speedup', 'base', 'base 95% CI', 'head', 'head 95% CI', 'change', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [
    r.label,
    times(r.base.speedup),
    `[${times(r.base.ci95[0])}, ${times(r.base.ci95[1])}]`,
    times(r.head.speedup),
    `[${times(r.head.ci95[0])}, ${times(r.head.ci95[1])}]`,
    changeText(r),
    pValue(r.p),
    pct(r.threshold).slice(1),
    verdictText(r.verdict),
  ]);
  if (geo) cells.push(['geometric mean', '', '', '', '', pct(geo.change), '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

function identityLine(name: string, file: string, c: Comparison['base']): string {
  const commit = c.commit ? `${c.commit.slice(0, 12)}${c.dirty ? '+dirty' : ''}` : 'no commit';
  return `${name}: ${file} (${commit}, ${c.createdAt}, node ${c.node}, ${c.cpuModel})`;
}

function noiseNote(c: Comparison): string {
  return c.noiseRuns ? `, raised per row to the run-to-run noise over ${c.noiseRuns} runs of head` : '';
}

function summaryLine(c: Comparison): string {
  if (c.regressions > 0) return `${c.regressions} significant regression${c.regressions === 1 ? '' : 's'} beyond the threshold.`;
  return `No significant regression beyond the threshold${c.improvements ? ` (${c.improvements} significant improvement${c.improvements === 1 ? '' : 's'})` : ''}.`;
}

function unmatchedLines(c: Comparison): string[] {
  return c.unmatched.map((u) => `${u.only === 'head' ? 'added' : 'removed'}: ${u.label}`);
}

export function formatText(c: Comparison, baseFile: string, headFile: string): string {
  const out: string[] = [];
  for (const w of c.warnings) out.push(`warning: ${w}`);
  out.push(identityLine('base', baseFile, c.base), identityLine('head', headFile, c.head));
  out.push(`alpha ${c.alpha}, threshold ${pct(c.threshold).slice(1)}${noiseNote(c)}`, '');
  if (c.times.length) {
    const t = timeTable(c.times, c.timesGeometricMean);
    out.push(formatTable(t.header, t.cells));
  }
  if (c.ratios.length) {
    const t = ratioTable(c.ratios, c.ratiosGeometricMean);
    out.push(formatTable(t.header, t.cells));
  }
  const unmatched = unmatchedLines(c);
  if (unmatched.length) out.push(...unmatched, '');
  out.push(summaryLine(c), '');
  return out.join('\n');
}

function markdownTable(header: readonly string[], cells: ReadonlyArray<readonly string[]>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const right = header.map((_, i) => i > 0);
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${right.map((r) => (r ? '---:' : ':---')).join('|')}|`,
    ...cells.map((row) => `| ${row.map((x, i) => esc(i === 0 && x.includes('/') ? `\`${x}\`` : x)).join(' | ')} |`),
  ].join('\n');
}

export function formatMarkdown(c: Comparison, baseFile: string, headFile: string): string {
  const out: string[] = ['## jitmem compare', ''];
  for (const w of c.warnings) out.push(`> **warning:** ${w}`, '');
  out.push(`- ${identityLine('base', `\`${baseFile}\``, c.base)}`, `- ${identityLine('head', `\`${headFile}\``, c.head)}`);
  out.push(`- alpha ${c.alpha}, threshold ${pct(c.threshold).slice(1)}${noiseNote(c)}; \`~\`: not significant or inside the threshold`, '');
  out.push(`**${c.regressions > 0 ? ':x: ' : ':white_check_mark: '}${summaryLine(c)}**`, '');
  if (c.times.length) {
    const t = timeTable(c.times, c.timesGeometricMean);
    out.push('### Times', '', markdownTable(t.header, t.cells), '');
  }
  if (c.ratios.length) {
    const t = ratioTable(c.ratios, c.ratiosGeometricMean);
    out.push('### Speedup ratios', '', markdownTable(t.header, t.cells), '');
  }
  const unmatched = unmatchedLines(c);
  if (unmatched.length) out.push('### Rows in one report only', '', ...unmatched.map((l) => `- ${l}`), '');
  return out.join('\n');
}

function calibrate(
  files: readonly string[],
  values: { threshold?: string; phases?: boolean; 'ratios-only'?: boolean; format?: string },
  alpha: number,
  io: Parameters<Command['run']>[1],
): number {
  if (files.length < 2) throw new JitmemError('ERR_INVALID_FLAG', `--calibrate takes two or more reports of the same commit; got ${files.length}`, { files });
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new JitmemError('ERR_INVALID_FLAG', `--calibrate prints text or json; got --format ${JSON.stringify(format)}`, { flag: '--format', value: format });
  const threshold = values.threshold !== undefined ? parsePercent('--threshold', values.threshold) : DEFAULT_THRESHOLD;
  const rows = calibrateThresholds(files.map((f) => readReport(f)), { alpha, phases: values.phases ?? false, ratiosOnly: values['ratios-only'] ?? false });
  const flags = rows.filter((r) => r.suggested > threshold).map((r) => `--threshold-for '${r.label}=${Math.round(r.suggested * 100)}%'`);
  if (format === 'json') {
    io.stdout.write(JSON.stringify({ runs: files, threshold, rows, flags }, null, 2) + '\n');
    return 0;
  }
  io.stdout.write(`run-to-run noise over ${files.length} reports (worst change in the regression direction between any two)\n\n`);
  io.stdout.write(formatTable(['row', 'runs', 'worst change', 'noise bound', 'suggested threshold'], rows.map((r) => [r.label, String(r.runs), pct(r.worstChange).slice(1), pct(r.noiseBound).slice(1), pct(r.suggested).slice(1)])));
  io.stdout.write(flags.length ? `\nflags for a gate with --threshold ${pct(threshold).slice(1)}:\n${flags.join(' \\\n')}\n` : `\nevery row's noise is within --threshold ${pct(threshold).slice(1)}\n`);
  return 0;
}

export const compareCommand: Command = {
  name: 'compare',
  summary: 'compare two bench reports: per-row change, confidence interval, rank test; exit 1 on a regression',
  async run(argv, io) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          alpha: { type: 'string' },
          threshold: { type: 'string' },
          'threshold-for': { type: 'string', multiple: true },
          phases: { type: 'boolean' },
          'ratios-only': { type: 'boolean' },
          calibrate: { type: 'boolean' },
          noise: { type: 'string', multiple: true },
          format: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
      });
    } catch (err) {
      throw new JitmemError('ERR_INVALID_FLAG', `${(err as Error).message}; see 'jitmem compare --help'`, {});
    }
    const { values, positionals } = parsed;
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    const format = (values.format ?? 'text') as Format;
    if (!['text', 'markdown', 'json'].includes(format)) {
      throw new JitmemError('ERR_INVALID_FLAG', `--format must be text, markdown or json; got ${JSON.stringify(values.format)}`, { flag: '--format', value: values.format });
    }
    let alpha = DEFAULT_ALPHA;
    if (values.alpha !== undefined) {
      alpha = Number(values.alpha);
      if (!/^\s*\d*\.?\d+\s*$/.test(values.alpha) || !(alpha > 0 && alpha < 1)) {
        throw new JitmemError('ERR_INVALID_FLAG', `--alpha must be a number between 0 and 1 (exclusive), such as 0.05; got ${JSON.stringify(values.alpha)}`, { flag: '--alpha', value: values.alpha });
      }
    }
    if (values.calibrate) return calibrate(positionals, values, alpha, io);
    if (positionals.length !== 2) {
      throw new JitmemError('ERR_INVALID_FLAG', `compare takes two report files, BASE.json and HEAD.json; got ${positionals.length}${positionals.length ? ` (${positionals.map((p) => JSON.stringify(p)).join(' ')})` : ''}`, {
        positionals,
      });
    }
    const threshold = values.threshold !== undefined ? parsePercent('--threshold', values.threshold) : DEFAULT_THRESHOLD;
    const thresholdRules = (values['threshold-for'] ?? []).map(parseThresholdRule);
    const [baseFile, headFile] = positionals as [string, string];
    const base = readReport(baseFile);
    const head = readReport(headFile);
    const noiseReports = (values.noise ?? []).map((f) => readReport(f));
    const comparison = compareReports(base, head, { alpha, threshold, thresholdRules, noiseReports, phases: values.phases ?? false, ratiosOnly: values['ratios-only'] ?? false });
    if (comparison.times.length === 0 && comparison.ratios.length === 0) {
      io.stderr.write(`warning: ${baseFile} and ${headFile} have no row in common\n`);
    }
    if (format === 'json') {
      io.stdout.write(JSON.stringify({ baseFile, headFile, ...comparison }, null, 2) + '\n');
    } else if (format === 'markdown') {
      const markdown = formatMarkdown(comparison, baseFile, headFile);
      io.stdout.write(markdown);
      const summary = process.env.GITHUB_STEP_SUMMARY;
      if (summary) {
        try {
          appendFileSync(summary, markdown + '\n');
        } catch (err) {
          io.stderr.write(`warning: cannot append to $GITHUB_STEP_SUMMARY (${summary}): ${(err as Error).message}\n`);
        }
      }
    } else {
      io.stdout.write(formatText(comparison, baseFile, headFile));
    }
    return comparison.regressions > 0 ? 1 : 0;
  },
};
