import { checkComparable } from '../compare/usable.js';
import { appendFileSync } from 'node:fs';
import { parseCommandArgs, type Command } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { formatTable } from '../report/format-table.js';
import { readReport, type Report } from '../report/report.js';
import { lastRuns, readHistory } from '../report/history.js';
import { calibrateThresholds, MIN_CALIBRATION_RUNS } from '../compare/calibrate.js';
import { DEFAULT_ALPHA, DEFAULT_COUNTER_TOLERANCE, DEFAULT_THRESHOLD, type RowKey } from '../compare/comparison.js';
import { formatMarkdown, formatText, pct, plain, terminalPaint } from '../compare/format.js';
import { compareReports } from '../compare/judge.js';
import { parsePercent, parseThresholdRule, patternMatches } from '../compare/thresholds.js';

const HELP = `usage: jitmem compare BASE.json HEAD.json [options]
       jitmem compare --history DIR HEAD.json [options]
       jitmem compare --calibrate RUN.json RUN.json RUN.json ... [options]

Says, row by row, whether HEAD differs from BASE for real. Rows are matched by workload,
pattern, mapper, executor and policy (and phase, with --phases); a row in one report only is
listed as added or removed. Rows are times (median latency) and speedup ratios (each mapper
over RPC copy and over in-process, for the whole iteration and, with --phases, beside it for
each mapper phase: initialize.speedup-vs-rpc etc.; --ratios-only keeps them all). A change to
one phase shows at its full size in that phase's speedup, where the whole iteration's dilutes it.

The evidence is the measurement round, not the sample: a bench runs the mappers of a group in
interleaved rounds (bench --rounds), and each round gives one value per row: the log of its
median time, or the log of its paired speedup (both mappers measured in that round, so the
machine's drift between rounds cancels).
- One report against one: Welch's t-test on the two sets of per-round values. A row is also
  held to a noise threshold from the reports' own per-round spread: the change two single
  rounds show at level alpha, t(1-alpha/2) * sqrt(s_base^2 + s_head^2) on the log scale.
  A time row's threshold also includes the move every mapper of its workload, pattern and
  measure made together (their median change, with 3 or more mappers; a warning names a move
  beyond --threshold): a slower spell of the machine moves them all alike, and one run
  against one cannot tell that from a change common to every mapper. Speedups need no such
  allowance: they are paired within each round.
- With further runs (--noise: runs of HEAD's commit; --base-run or --history: runs of the
  base): each run gives one value per row; the base is the median of its runs, the head the
  mean of its runs, and a t-test with the spread between runs decides. 'noise' is then the
  smallest change that test can flag at alpha/rows; above 100% the row is refused, with a
  warning saying why.
Significance is Holm-Bonferroni across all rows at --alpha, on one-sided p-values (half the
two-sided p shown, in the direction the change went): alpha is the chance that an unchanged
commit shows any regression at all. A change counts only when it is significant AND beyond the row's
threshold; otherwise the change column shows '~'. A slower time, or a lower speedup, that
counts is a regression. The geometric-mean rows summarise all changes and never fail the run.
Different presets, sampling, workload sets, CPU models or Node versions are named in a
warning at the top.

options:
  --alpha P                   family-wise significance level (default ${DEFAULT_ALPHA})
  --threshold PCT             threshold, e.g. 5% or 2.5 (default ${DEFAULT_THRESHOLD * 100}%)
  --threshold-for PAT=PCT     threshold for the rows PAT matches; repeatable, the last match
                              wins. PAT is a row label workload/pattern/mapper/executor/policy/measure
                              where * matches any text within one segment and missing trailing
                              segments match anything; measure is latency, a phase name,
                              speedup-vs-rpc / speedup-vs-inprocess, or PHASE.speedup-vs-rpc /
                              PHASE.speedup-vs-inprocess (one phase's); sweep rows have pattern
                              sweep@BYTES, which 'sweep' also matches, and cells run cold have
                              PATTERN+cold, which PATTERN also matches (a cold cell is only
                              ever compared with a cold one). Examples:
                                --threshold-for 'python/churn/*=10%'
                                --threshold-for '*/*/rpc=8%'
                                --threshold-for '*/*/*/*/*/speedup-vs-rpc=3%'
  --rows PAT                  compare only the rows PAT matches (same patterns); repeatable
  --noise RUN.json            a further run of HEAD's commit; repeatable (at least 3: with
                              fewer, a warning, and most bounds exceed 100%)
  --base-run RUN.json         a further run of BASE's commit; repeatable
  --history DIR               the base is the last --last N runs stored in DIR (jitmem history
                              --add), from commits other than HEAD's: the CI gate against the
                              median of the last N runs, as github-action-benchmark does
  --last N                    runs taken from --history (default 5)
  --counter-tolerance PCT     relative increase of a cost counter that fails (default
                              ${DEFAULT_COUNTER_TOLERANCE * 100}%; it must also exceed half a count per iteration). Counters
                              (round trips, wire bytes, bytes copied, mmap/mprotect/munmap, shm
                              objects, I-cache flushes, page faults, context switches; controller
                              and executor) are compared exactly, with or without --ratios-only:
                              every change is listed; page faults and context switches are not gated
  --phases                    compare each phase's times as well as whole iterations, and each
                              mapper phase's paired speedup (PHASE.speedup-vs-rpc ...)
  --ratios-only               compare only the speedup ratios (for reports from different
                              machines: what CI does)
  --calibrate                 instead of comparing, take three or more reports of the SAME commit
                              and print, per row, the worst change in the regression direction
                              between any two of them, the noise bound t(1-alpha/2m, k-1) * s *
                              sqrt(2), and --threshold-for flags for the rows whose noise exceeds
                              --threshold. A bound above 100% is refused.
  --format text|markdown|json output format (default text; colour on a terminal unless
                              NO_COLOR is set); with markdown, the output is also appended to
                              the file named by $GITHUB_STEP_SUMMARY when it is set
  -h, --help                  show this help

A row is judged when its change is a significant one beyond its threshold, or when the 95%
interval of its change stays within its threshold in the regression direction (the asked
threshold: a threshold the row's noise raised does not count). Any other gated row is too
noisy to judge: the first line says "INCONCLUSIVE: N rows too noisy to judge (...)" with
each row's reach and how many more rounds or runs would settle it, and the exit status is 3.
"No significant regression" is printed only when every gated row was judged.

  --cpu                       also compare each cell's CPU time per iteration, controller and
                              executor (rows .../cpu-controller, .../cpu-executor; reports whose
                              rows have cpu), judged as times are; with --ratios-only, beside the
                              ratios. A slower spell of the machine moves CPU time much less than
                              wall time
  --allow-inconclusive        exit 0 instead of 3 when rows could not be judged (and no row
                              regressed)

exit status: 0 every gated row judged, no significant regression beyond its threshold; 1 at
least one regression; 3 no regression found but some rows could not be judged (INCONCLUSIVE;
0 with --allow-inconclusive); 2 unusable input (a missing or unreadable file, invalid JSON,
not a schema-1 report, a report with no results or whose ratios do not match its results,
bad flags).
`;


type Format = 'text' | 'markdown' | 'json';

function calibrate(
  files: readonly string[],
  values: { threshold?: string; phases?: boolean; 'ratios-only'?: boolean; format?: string },
  alpha: number,
  io: Parameters<Command['run']>[1],
): number {
  if (files.length < MIN_CALIBRATION_RUNS) {
    throw new JitmemError(
      'ERR_INVALID_FLAG',
      `--calibrate takes ${MIN_CALIBRATION_RUNS} or more reports of the same commit; got ${files.length} (from fewer runs the noise bound rests on too few degrees of freedom to mean anything)`,
      { files },
    );
  }
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new JitmemError('ERR_INVALID_FLAG', `--calibrate prints text or json; got --format ${JSON.stringify(format)}`, { flag: '--format', value: format });
  const threshold = values.threshold !== undefined ? parsePercent('--threshold', values.threshold) : DEFAULT_THRESHOLD;
  const rows = calibrateThresholds(files.map((f) => readReport(f)), { alpha, phases: values.phases ?? false, ratiosOnly: values['ratios-only'] ?? false });
  const flags = rows.filter((r) => r.suggested !== null && r.suggested > threshold).map((r) => `--threshold-for '${r.label}=${Math.round(r.suggested! * 100)}%'`);
  const refused = rows.filter((r) => r.refused);
  if (format === 'json') {
    io.stdout.write(JSON.stringify({ runs: files, threshold, rows, flags }, null, 2) + '\n');
    return 0;
  }
  io.stdout.write(`run-to-run noise over ${files.length} reports (worst change in the regression direction between any two)\n\n`);
  io.stdout.write(
    formatTable(
      ['row', 'runs', 'worst change', 'noise bound', 'suggested threshold'],
      rows.map((r) => [r.label, String(r.runs), pct(r.worstChange).slice(1), pct(r.noiseBound).slice(1), r.suggested === null ? 'refused' : pct(r.suggested).slice(1)]),
    ),
  );
  if (refused.length) {
    io.stdout.write(`\n${refused.length} row${refused.length === 1 ? '' : 's'} refused: ${refused[0]!.refused}\n`);
  }
  io.stdout.write(flags.length ? `\nflags for a gate with --threshold ${pct(threshold).slice(1)}:\n${flags.join(' \\\n')}\n` : `\nevery judged row's noise is within --threshold ${pct(threshold).slice(1)}\n`);
  return 0;
}

export const compareCommand: Command = {
  name: 'compare',
  summary: 'compare bench reports: per-row change over measurement rounds or runs; exit 1 on a regression',
  async run(argv, io) {
    const parsed = parseCommandArgs('compare', {
      args: argv,
      allowPositionals: true,
      options: {
        alpha: { type: 'string' },
        threshold: { type: 'string' },
        'threshold-for': { type: 'string', multiple: true },
        rows: { type: 'string', multiple: true },
        phases: { type: 'boolean' },
        'ratios-only': { type: 'boolean' },
        calibrate: { type: 'boolean' },
        noise: { type: 'string', multiple: true },
        'base-run': { type: 'string', multiple: true },
        history: { type: 'string' },
        last: { type: 'string' },
        'counter-tolerance': { type: 'string' },
        format: { type: 'string' },
        'allow-inconclusive': { type: 'boolean' },
        cpu: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
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
    const wanted = values.history !== undefined ? 1 : 2;
    if (positionals.length !== wanted) {
      const what = wanted === 1 ? 'with --history, compare takes one report file, HEAD.json' : 'compare takes two report files, BASE.json and HEAD.json';
      throw new JitmemError('ERR_INVALID_FLAG', `${what}; got ${positionals.length}${positionals.length ? ` (${positionals.map((p) => JSON.stringify(p)).join(' ')})` : ''}`, {
        positionals,
      });
    }
    const threshold = values.threshold !== undefined ? parsePercent('--threshold', values.threshold) : DEFAULT_THRESHOLD;
    const thresholdRules = (values['threshold-for'] ?? []).map(parseThresholdRule);
    const rowPatterns = (values.rows ?? []).map((text) => parseThresholdRule(`${text}=0`).pattern);
    const headFile = positionals[wanted - 1]!;
    const head = readComparable(headFile);
    let baseFile: string;
    let base: Report;
    let baseRuns: Report[] = (values['base-run'] ?? []).map((f) => readComparable(f));
    if (values.history !== undefined) {
      const last = values.last === undefined ? 5 : Number(values.last);
      if (!Number.isSafeInteger(last) || last < 1) throw new JitmemError('ERR_INVALID_FLAG', `--last must be a positive integer; got ${JSON.stringify(values.last)}`, { flag: '--last', value: values.last });
      const runs = lastRuns(readHistory(values.history), last, head.env.commit);
      if (runs.length === 0) {
        throw new JitmemError('ERR_HISTORY_EMPTY', `history ${values.history} holds no run of a commit other than HEAD's (${head.env.commit ?? 'no commit'}); store one with 'jitmem history ${values.history} --add REPORT.json'`, {
          dir: values.history,
        });
      }
      baseFile = `${values.history} (last ${runs.length} run${runs.length === 1 ? '' : 's'})`;
      base = runs[runs.length - 1]!.report;
      baseRuns = [...runs.slice(0, -1).map((r) => r.report), ...baseRuns];
    } else {
      if (values.last !== undefined) throw new JitmemError('ERR_INVALID_FLAG', '--last goes with --history', { flag: '--last' });
      baseFile = positionals[0]!;
      base = readComparable(baseFile);
    }
    const noiseReports = (values.noise ?? []).map((f) => readComparable(f));
    const counterTolerance = values['counter-tolerance'] !== undefined ? parsePercent('--counter-tolerance', values['counter-tolerance']) : DEFAULT_COUNTER_TOLERANCE;
    const comparison = compareReports(base, head, {
      counterTolerance,
      alpha,
      threshold,
      thresholdRules,
      noiseReports,
      baseRuns,
      phases: values.phases ?? false,
      ratiosOnly: values['ratios-only'] ?? false,
      cpu: values.cpu ?? false,
      ...(rowPatterns.length ? { rowFilter: (label: string) => rowPatterns.some((p) => patternMatches(p, keyOfLabel(label))) } : {}),
    });
    if (comparison.times.length === 0 && comparison.ratios.length === 0) {
      io.stderr.write(`warning: ${baseFile} and ${headFile} have no row in common${rowPatterns.length ? ' that --rows selects' : ''}\n`);
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
      const tty = (io.stdout as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR;
      io.stdout.write(formatText(comparison, baseFile, headFile, tty ? terminalPaint() : plain));
    }
    if (comparison.regressions > 0) return 1;
    return comparison.undecided > 0 && !values['allow-inconclusive'] ? 3 : 0;
  },
};

/** A report read for comparing: valid (schema 1) and usable (results, ratios that match them). */
function readComparable(file: string): Report {
  const report = readReport(file);
  checkComparable(report, file);
  return report;
}

/** A row label back into its key, for --rows patterns. */
function keyOfLabel(label: string): RowKey {
  const [workload = '', pattern = '', mapper = '', executor = '', policy = '', measure = 'latency'] = label.split('/');
  return { workload, pattern, mapper, executor, policy, measure: measure as RowKey['measure'] };
}
