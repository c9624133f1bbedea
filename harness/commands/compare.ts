import { appendStepSummary, flagCommand, type CommandIO } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { formatTable } from '../report/format-table.js';
import { readReport, type Report } from '../report/report.js';
import { checkComparable } from '../compare/usable.js';
import { lastRuns, readHistory } from '../report/history.js';
import { calibrateThresholds, MIN_CALIBRATION_RUNS } from '../compare/calibrate.js';
import {
  DEFAULT_ALPHA,
  DEFAULT_COUNTER_TOLERANCE,
  DEFAULT_THRESHOLD,
  type CompareOptions,
  type RowKey,
} from '../compare/comparison.js';
import { formatMarkdown, formatText, pct, plain, terminalPaint } from '../compare/format.js';
import { outputWidth } from '../report/format-table.js';
import { compareReports } from '../compare/judge.js';
import {
  IN_PROCESS_THRESHOLD_FLOOR,
  parsePercent,
  parseThresholdRule,
  patternMatches,
  readThresholdFile,
} from '../compare/thresholds.js';
import {
  booleanFlag,
  invalidOperands,
  invalidValue,
  oneOf,
  positiveInteger,
  repeatedFlag,
  text,
  valueFlag,
  type FlagValues,
} from './flags.js';

const FORMATS = ['text', 'markdown', 'json'] as const;

/** A family-wise level strictly between 0 and 1, written as a plain decimal (0.05, .01). */
function alphaLevel(value: string, flag: string): number {
  const alpha = Number(value);
  if (!/^\s*\d*\.?\d+\s*$/.test(value) || !(alpha > 0 && alpha < 1))
    throw invalidValue(flag, 'a number between 0 and 1 (exclusive), such as 0.05', value);
  return alpha;
}

const percent = (value: string, flag: string) => parsePercent(flag, value);
const thresholdRule = (value: string) => parseThresholdRule(value);
const rowPattern = (value: string) => parseThresholdRule(`${value}=0`).pattern;

const FLAGS = {
  alpha: valueFlag(
    { value: 'P', help: `family-wise significance level (default ${DEFAULT_ALPHA})` },
    alphaLevel,
    DEFAULT_ALPHA,
  ),
  threshold: valueFlag(
    {
      value: 'PCT',
      help: `threshold, e.g. 5% or 2.5 (default ${DEFAULT_THRESHOLD * 100}%); rows with an
in-process side (its time, speedups over or of it) hold at least
${IN_PROCESS_THRESHOLD_FLOOR * 100}% unless a --threshold-for or --thresholds rule says
otherwise: the in-process cell runs in the bench's own process, and
its time moves up to 12% between processes of one commit`,
    },
    percent,
    DEFAULT_THRESHOLD,
  ),
  'threshold-for': repeatedFlag(
    {
      value: 'PAT=PCT',
      help: `threshold for the rows PAT matches; repeatable, the last match
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
  --threshold-for '*/*/*/*/*/speedup-vs-rpc=3%'`,
    },
    thresholdRule,
  ),
  thresholds: valueFlag(
    {
      value: 'FILE',
      help: `per-row thresholds calibrated from runs of the base's commit:
the JSON of compare --calibrate RUN... --head-runs N --format json
(CI's is reports/gate-thresholds.json); each row's is printed in its
threshold column; --threshold-for rules still win`,
    },
    text,
  ),
  rows: repeatedFlag(
    { value: 'PAT', help: 'compare only the rows PAT matches (same patterns); repeatable' },
    rowPattern,
  ),
  noise: repeatedFlag(
    {
      value: 'RUN.json',
      help: `a further run of HEAD's commit; repeatable (at least 3: with
fewer, a warning, and most bounds exceed 100%)`,
    },
    text,
  ),
  'base-run': repeatedFlag({ value: 'RUN.json', help: "a further run of BASE's commit; repeatable" }, text),
  history: valueFlag(
    {
      value: 'DIR',
      help: `the base is the last --last N runs stored in DIR (jitmem history
--add), from commits other than HEAD's: the CI gate against the
median of the last N runs, as github-action-benchmark does`,
    },
    text,
  ),
  last: valueFlag({ value: 'N', help: 'runs taken from --history (default 5)' }, positiveInteger),
  'counter-tolerance': valueFlag(
    {
      value: 'PCT',
      help: `relative increase of a cost counter that fails (default
${DEFAULT_COUNTER_TOLERANCE * 100}%; it must also exceed half a count per iteration). Counters
(round trips, wire bytes, bytes copied, mmap/mprotect/munmap, shm
objects, I-cache flushes, page faults, context switches; controller
and executor) are compared exactly, with or without --ratios-only:
every change is listed; page faults and context switches are not gated`,
    },
    percent,
    DEFAULT_COUNTER_TOLERANCE,
  ),
  phases: booleanFlag(`compare each phase's times as well as whole iterations, and each
mapper phase's paired speedup (PHASE.speedup-vs-rpc ...)`),
  'ratios-only': booleanFlag(`compare only the speedup ratios (for reports from different
machines: what CI does)`),
  cpu: booleanFlag(`also compare each cell's CPU time per iteration, controller and
executor (rows .../cpu-controller, .../cpu-executor, for reports whose
rows have cpu), judged as times are; with --ratios-only, beside the
ratios. A slower spell of the machine moves CPU time much less than
wall time`),
  'allow-inconclusive': booleanFlag(`exit 0 instead of 3 when some rows could not be judged (and no
row regressed)`),
  calibrate: booleanFlag(`instead of comparing, take three or more reports of the SAME commit
and print, per row, the worst change in the regression direction
between any two of them, the noise bound t(1-alpha/2m, k-1) * s *
sqrt(2), and --threshold-for flags for the rows whose noise exceeds
--threshold. A bound above 100% is refused. With --head-runs N, also
each row's gate threshold (for --thresholds): the reach a gate of these
runs against N head runs stays within for an unchanged commit,
(t(0.95, k+N-2) + z(0.99)) * s_u * sqrt(1/N + 1/k), s_u the 90% upper
bound of the runs' spread; never below --threshold`),
  'head-runs': valueFlag(
    { value: 'N', help: 'with --calibrate: the head runs the gate will compare (CI: 4)' },
    positiveInteger,
  ),
  format: valueFlag(
    {
      value: 'text|markdown|json',
      help: `output format (default text; colour on a terminal unless
NO_COLOR is set); with markdown, the output is also appended to
the file named by $GITHUB_STEP_SUMMARY when it is set`,
    },
    oneOf(FORMATS),
    'text',
  ),
};

const SPEC = {
  name: 'compare',
  usage: `jitmem compare BASE.json HEAD.json [options]
       jitmem compare --history DIR HEAD.json [options]
       jitmem compare --calibrate RUN.json RUN.json RUN.json ... [options]`,
  about: `Says, row by row, whether HEAD differs from BASE for real. Rows are matched by workload,
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
A row is judged when its change is a significant one beyond its threshold, or when the 95%
interval of its change stays within its threshold in the regression direction (the asked
threshold: a threshold the row's noise raised does not count). Any other gated row is too
noisy to judge: the first line says "INCONCLUSIVE: N rows too noisy to judge (...)", naming
each row's reach and how many more rounds or runs would settle it, and the exit status is 3.
"No significant regression" is printed only when every gated row was judged. A run's value
for a speedup row is the mean of its log per-round speedups: the report's own speedup.
Different presets, sampling, workload sets, CPU models or Node versions are named in a
warning at the top.`,
  flags: FLAGS,
  operands: true,
  footer: `exit status: 0 every gated row judged, no significant regression beyond its threshold;
1 at least one regression; 3 no regression found but some rows could not be judged
(INCONCLUSIVE; 0 with --allow-inconclusive); 2 unusable input (a missing or unreadable file,
invalid JSON, not a schema-1 report, a report with no results or whose ratios do not match
its results, bad flags).`,
};

type CompareFlags = FlagValues<typeof FLAGS>;

function calibrate(files: readonly string[], values: CompareFlags, io: CommandIO): number {
  if (files.length < MIN_CALIBRATION_RUNS) {
    const why = 'from fewer runs the noise bound rests on too few degrees of freedom to mean anything';
    throw invalidOperands(`--calibrate takes ${MIN_CALIBRATION_RUNS} or more reports of the same commit`, files, why);
  }
  if (values.format === 'markdown') throw invalidValue('--format', 'text or json with --calibrate', values.format);
  const { threshold } = values;
  const reports = files.map((f) => readReport(f));
  const rows = calibrateThresholds(reports, {
    alpha: values.alpha,
    phases: values.phases,
    ratiosOnly: values['ratios-only'],
    threshold,
    ...(values['head-runs'] ? { headRuns: values['head-runs'] } : {}),
  });
  const flags = rows
    .filter((r) => r.suggested !== null && r.suggested > threshold)
    .map((r) => `--threshold-for '${r.label}=${Math.round((r.suggested ?? 0) * 100)}%'`);
  const refused = rows.filter((r) => r.refused);
  const gate = values['head-runs'] !== undefined;
  if (values.format === 'json') {
    const commits = [...new Set(reports.map((r) => r.env.commit ?? 'unknown'))];
    io.stdout.write(JSON.stringify({ runs: files, commits, threshold, rows, flags }, null, 2) + '\n');
    return 0;
  }
  io.stdout.write(
    `run-to-run noise over ${files.length} reports (worst change in the regression direction between any two)\n\n`,
  );
  io.stdout.write(
    formatTable(
      ['row', 'runs', 'worst change', 'noise bound', 'suggested threshold', ...(gate ? ['gate threshold'] : [])],
      rows.map((r) => [
        r.label,
        String(r.runs),
        pct(r.worstChange).slice(1),
        pct(r.noiseBound).slice(1),
        r.suggested === null ? 'refused' : pct(r.suggested).slice(1),
        ...(gate ? [r.gate ? `${pct(r.gate.threshold).slice(1)} (${r.gate.headRuns} head runs)` : '-'] : []),
      ]),
    ),
  );
  if (refused[0])
    io.stdout.write(`\n${refused.length} row${refused.length === 1 ? '' : 's'} refused: ${refused[0].refused}\n`);
  const limit = pct(threshold).slice(1);
  io.stdout.write(
    flags.length
      ? `\nflags for a gate with --threshold ${limit}:\n${flags.join(' \\\n')}\n`
      : `\nevery judged row's noise is within --threshold ${limit}\n`,
  );
  return 0;
}

interface BaseSide {
  readonly baseFile: string;
  readonly base: Report;
  readonly baseRuns: Report[];
}

/** A report read for comparing: valid (schema 1) and usable (results, ratios that match them). */
function readComparable(file: string): Report {
  const report = readReport(file);
  checkComparable(report, file);
  return report;
}

/** The base of the comparison: BASE.json, or the last --last runs of other commits in --history. */
function readBase(values: CompareFlags, operands: readonly string[], head: Report, givenBase?: Report): BaseSide {
  const extraRuns = values['base-run'].map((f) => readComparable(f));
  if (values.history === undefined) {
    if (values.last !== undefined)
      throw new JitmemError('ERR_CONFLICTING_OPTIONS', '--last goes with --history', {
        options: ['--last', '--history'],
      });
    const baseFile = operands[0] ?? '';
    return { baseFile, base: givenBase ?? readComparable(baseFile), baseRuns: extraRuns };
  }
  const dir = values.history;
  const runs = lastRuns(readHistory(dir), values.last ?? 5, head.env.commit);
  const newest = runs[runs.length - 1];
  if (!newest) {
    const commit = head.env.commit ?? 'no commit';
    const hint = `store one with 'jitmem history ${dir} --add REPORT.json'`;
    throw new JitmemError(
      'ERR_HISTORY_EMPTY',
      `history ${dir} holds no run of a commit other than HEAD's (${commit}); ${hint}`,
      { dir },
    );
  }
  return {
    baseFile: `${dir} (last ${runs.length} run${runs.length === 1 ? '' : 's'})`,
    base: newest.report,
    baseRuns: [...runs.slice(0, -1).map((r) => r.report), ...extraRuns],
  };
}

function writeComparison(
  io: CommandIO,
  format: (typeof FORMATS)[number],
  comparison: ReturnType<typeof compareReports>,
  baseFile: string,
  headFile: string,
): void {
  if (format === 'json') {
    io.stdout.write(JSON.stringify({ baseFile, headFile, ...comparison }, null, 2) + '\n');
  } else if (format === 'markdown') {
    const markdown = formatMarkdown(comparison, baseFile, headFile);
    io.stdout.write(markdown);
    appendStepSummary(markdown, io);
  } else {
    const tty = (io.stdout as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR;
    io.stdout.write(
      formatText(
        comparison,
        baseFile,
        headFile,
        tty ? terminalPaint() : plain,
        outputWidth(io.stdout as { isTTY?: boolean; columns?: number }),
      ),
    );
  }
}

export const compareCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  if (values.calibrate) return calibrate(operands, values, io);
  const wanted = values.history !== undefined ? 1 : 2;
  if (operands.length !== wanted) {
    throw invalidOperands(
      wanted === 1
        ? 'with --history, compare takes one report file, HEAD.json'
        : 'compare takes two report files, BASE.json and HEAD.json',
      operands,
    );
  }
  const headFile = operands[wanted - 1] ?? '';
  // BASE is read first, so that a missing or wrong BASE is the error named (it comes first on the line).
  const givenBase = values.history === undefined ? readComparable(operands[0] ?? '') : undefined;
  const head = readComparable(headFile);
  const { baseFile, base, baseRuns } = readBase(values, operands, head, givenBase);
  const rowPatterns = values.rows;
  const options: CompareOptions = {
    counterTolerance: values['counter-tolerance'],
    alpha: values.alpha,
    threshold: values.threshold,
    thresholdRules: [...(values.thresholds ? readThresholdFile(values.thresholds) : []), ...values['threshold-for']],
    noiseReports: values.noise.map((f) => readComparable(f)),
    baseRuns,
    phases: values.phases,
    ratiosOnly: values['ratios-only'],
    cpu: values.cpu,
    ...(rowPatterns.length
      ? { rowFilter: (label: string) => rowPatterns.some((p) => patternMatches(p, keyOfLabel(label))) }
      : {}),
  };
  const comparison = compareReports(base, head, options);
  if (comparison.times.length === 0 && comparison.ratios.length === 0) {
    io.stderr.write(
      `warning: ${baseFile} and ${headFile} have no row in common${rowPatterns.length ? ' that --rows selects' : ''}\n`,
    );
  }
  writeComparison(io, values.format, comparison, baseFile, headFile);
  if (comparison.regressions > 0) return 1;
  return comparison.undecided > 0 && !values['allow-inconclusive'] ? 3 : 0;
});

/** A row label back into its key, for --rows patterns. */
function keyOfLabel(label: string): RowKey {
  const [workload = '', pattern = '', mapper = '', executor = '', policy = '', measure = 'latency'] = label.split('/');
  return { workload, pattern, mapper, executor, policy, measure: measure as RowKey['measure'] };
}
