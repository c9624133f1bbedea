import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultOutput, flagCommand, type CommandIO } from './command.js';
import { checkOutputFile } from '../../core/files.js';
import { FIT_POLICIES } from '../../mappers/slab/free-range-index.js';
import type { Report } from '../report/report.js';
import { ALL_MAPPERS, ALL_PATTERNS, presetSelection, type MatrixSelection, type Preset } from '../bench/matrix.js';
import { DEFAULT_ROUNDS, runBench } from '../bench/run-bench.js';
import { WARM_CONTROLLER_WARMUP } from '../bench/run-cells.js';
import { overBudget, renderSummary } from '../bench/summary.js';
import { BenchProgressView } from '../bench/progress.js';
import { formatReportJson } from '../report/report.js';
import { outputWidth } from '../report/format-table.js';
import {
  booleanFlag,
  conflictingOptions,
  invalidValue,
  listOf,
  nonEmptyText,
  oneOf,
  positiveInteger,
  valueFlag,
  variadicFlag,
  type FlagValues,
  type ValueParser,
} from './flags.js';

const EXECUTORS = ['jitmem', 'llvm'] as const;
const PINS = ['same', 'split', 'none'] as const;
/** Workload names are checked when the workloads load (the objects workload needs --objects). */
const workloadList: ValueParser<string[]> = (value, flag) => {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw invalidValue(flag, 'a comma-separated list of workloads', value);
  return items;
};

/** --precision: a percentage above 0 and below 100, or off. */
const precisionValue: ValueParser<number | 'off'> = (value, flag) => {
  if (value === 'off') return 'off';
  const n = /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!(n > 0 && n < 100)) throw invalidValue(flag, 'a percentage above 0 and below 100 (such as 3), or off', value);
  return n;
};

const positiveSeconds: ValueParser<number> = (value, flag) => {
  const n = /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!(n > 0)) throw invalidValue(flag, 'a positive number of seconds', value);
  return n;
};

/** The precision each preset asks of every speedup (95% CI half-width, percent) and its time budget (s). */
const PRESET_PRECISION: Record<Preset, number> = { default: 3, quick: 5, full: 2 };
const PRESET_MAX_TIME_S: Record<Preset, number> = { default: 105, quick: 45, full: 900 };

const FLAGS = {
  quick: booleanFlag('cray and python, pattern load, all four mappers, first-fit, few iterations', {
    section: 'presets (default: the curated matrix, a few minutes):',
  }),
  full: booleanFlag('every workload, pattern, mapper, policy and executor; the whole sweep'),
  workload: valueFlag(
    {
      value: 'LIST',
      help: 'cray, python, objects (with --objects)',
      section: 'selection (comma-separated lists; each overrides the preset):',
    },
    workloadList,
  ),
  pattern: valueFlag({ value: 'LIST', help: ALL_PATTERNS.join(', ') }, listOf(ALL_PATTERNS)),
  mapper: valueFlag({ value: 'LIST', help: ALL_MAPPERS.join(', ') }, listOf(ALL_MAPPERS)),
  policy: valueFlag({ value: 'LIST', help: FIT_POLICIES.join(', ') }, listOf(FIT_POLICIES)),
  executor: valueFlag(
    {
      value: 'LIST',
      help: `jitmem, llvm (LLVM 22's llvm-jitlink-executor behind our remote mappers;
under --pattern run, llvm also means llvm-jitlink measured beside jitmem)`,
    },
    listOf(EXECUTORS),
  ),
  'llvm-dir': valueFlag(
    {
      value: 'DIR',
      help: `LLVM 22's bin directory, with llvm-jitlink and llvm-jitlink-executor
(or JITMEM_LLVM_DIR; default /usr/lib/llvm-22/bin)`,
    },
    nonEmptyText,
  ),
  objects: variadicFlag({
    value: 'FILE',
    help: "object files and archives for the 'objects' workload (ends at the next flag)",
  }),
  'python-dir': valueFlag(
    { value: 'DIR', help: 'where python.o and libpython3.X-pic.a are (or JITMEM_PYTHON_CONFIG_DIR)' },
    nonEmptyText,
  ),
  time: valueFlag(
    {
      value: 'MS',
      help: `sampling time per cell in milliseconds (quick 1200, default 700,
full 2000)`,
      section: `pattern run (end to end): each iteration links a program, moves it through the mapper, runs it
to exit and frees it, in a process of its own; cray renders its scene, python runs -c pass (and,
outside --quick, a short script); exit status and stdout are checked every iteration. jitmem's
linker is measured twice: a process per run (cold JS, a fresh executor each time) and warm
controllers (a round starts a controller per cell, each over one executor session: ${WARM_CONTROLLER_WARMUP} warm-up
iterations, then the measured ones; the next round starts new ones, so that the interval holds
what differs from one process to the next); its budgets use the warm controllers. llvm-jitlink
runs the same objects and arguments in-process and with --use-memmgr generic, simple-remote and
shared, through LLVM's executor and through jitmem's, in the same interleaved rounds.

measurement:`,
    },
    positiveInteger,
  ),
  iterations: valueFlag(
    { value: 'N', help: 'minimum iterations per cell (quick 24, default 12, full 30)' },
    positiveInteger,
  ),
  seed: valueFlag({ value: 'N', help: 'seed of the churn, patch and sweep patterns (default 1)' }, positiveInteger, 1),
  'patch-batch': valueFlag(
    {
      value: 'N',
      help: `patches per patchCode call in the patch pattern (default 1: each
patch a rewrite of its own)`,
    },
    positiveInteger,
  ),
  cold: booleanFlag(`a fresh slab every iteration (default: one warm slab kept across
iterations, like a long-running JIT)`),
  granularity: valueFlag(
    {
      value: 'BYTES',
      help: `slab reservation granularity (default 1073741824, as llvm-jitlink;
churn cells use 4194304 unless this flag is given, so that the fit
policies' fragmentation shows in reservations)`,
    },
    positiveInteger,
  ),
  rounds: valueFlag(
    {
      value: 'N',
      help: `interleave the cells of each workload/pattern/policy in at least N
rounds, so drift in the machine's speed falls on every mapper alike:
within a round the cells take turns iteration by iteration (A B C D,
D C B A, ...), and rounds alternate their order; speedups are taken
per round (paired) and compare judges them over rounds (default ${DEFAULT_ROUNDS})`,
    },
    positiveInteger,
  ),
  precision: valueFlag(
    {
      value: 'PCT|off',
      help: `keep adding rounds to each workload/pattern/policy until every
speedup (--quick, --full: the headlines, shared memory over RPC copy,
and those with an in-process or dual-mapped side; default: the
headlines) has a 95% CI half-width of at most PCT% of the speedup
and each headline's verdict is settled (its interval clear of the
edges of ±PCT% around 1; to stop before its time is spent, its 99%
interval too) (default 3; --quick 5; off when --time, --iterations or
--rounds is given without it); the summary names each speedup that
did not get there with the width it reached, and how long its group
would need`,
    },
    precisionValue,
  ),
  'max-time': valueFlag(
    {
      value: 'S',
      help: `the precision mode's budget in seconds for the sampling (default 105;
--quick 45; --full 900): each group gets its share of what is left.
A group takes at least three rounds even past its share, and
loading, charts and the summary come on top: on a 2-vCPU machine
npm ci && npm run bench stays within 3 minutes`,
    },
    positiveSeconds,
  ),
  pin: valueFlag(
    {
      value: 'same|split|none',
      help: `controller and executor on the same CPU (the idlest one), on two
CPUs, or unpinned (default same: unpinned, the executor moves
between CPUs from round to round and the rounds disagree two to four
times more; where they ran is recorded either way)`,
    },
    oneOf(PINS),
    'same',
  ),
  probe: booleanFlag(`time a no-op round trip beside the finalize of a one-page
graph through shared memory, in blocks taken between the groups and after
them (default: on for the default and full presets without selection
flags, off otherwise)`),
  'no-probe': booleanFlag('do not time the round trip and the one-page finalize'),
  out: valueFlag(
    {
      value: 'FILE',
      help: `the report file (default jitmem-reports/bench-<time>.json in the
current directory)`,
      section: 'output:',
    },
    nonEmptyText,
  ),
  charts: valueFlag(
    { value: 'DIR', help: 'where the charts go (default: beside the report, <report>-charts/)' },
    nonEmptyText,
  ),
  'no-charts': booleanFlag('write no charts'),
  'check-budgets': booleanFlag(`exit 1 when a budget line says OVER BUDGET (without it, an exceeded
budget is highlighted but the exit status stays 0)`),
  'export-markdown': valueFlag(
    {
      value: 'FILE',
      help: `also write the table of cells as a GitHub-flavoured Markdown table, with
its legend, the headline speedups and the budgets (its directory must exist)`,
    },
    nonEmptyText,
  ),
  'export-csv': valueFlag(
    { value: 'FILE', help: 'also write the table of cells as CSV (RFC 4180; its directory must exist)' },
    nonEmptyText,
  ),
};

const SPEC = {
  name: 'bench',
  usage: 'jitmem bench [options]',
  about: `Runs the matrix workload x pattern x mapper x fit policy, timing every phase of every
iteration (reserve, prepare, write, initialize, deinitialize, release), checking that the
executor's memory holds exactly the bytes written (at every free of each cell's first two
warm-up iterations, then at the end of the warm-up iteration each later round starts with; measured
iterations are not slowed by checks), and writes one JSON report (schema 1, see
reports/README.md).`,
  optionsHeading: '',
  flags: FLAGS,
  operands: false,
  footer: `progress goes to stderr: first a line with the number of cells and the time expected; then, on a
terminal, one line redrawn at most ten times a second (a bar, the cells done, the cell being
measured, elapsed time and an estimate of the time left, from the preset's sampling time
corrected by the rounds measured so far); otherwise one line per finished cell (its p50, n, time so far and time left), and a line
saying where the run is after 10 s without one.

the summary's tables fit the terminal (or COLUMNS; 100 columns when stdout is not a terminal):
the least important columns are left out, and the legend names them.

exit status:
  0   the report is written (budgets exceeded or not, unless --check-budgets)
  1   --check-budgets and a budget is exceeded (the report is still written)
  2   bad flags, unusable input, or a cell that failed (a byte the executor holds differs
      from what was written, a transport or executor error): the message names it, and no
      report is written
  70  an internal error (a bug: the stack trace is printed)`,
};

const here = path.dirname(fileURLToPath(import.meta.url));
const repoDir = path.resolve(here, '../../..');

type BenchFlags = FlagValues<typeof FLAGS>;

/** The matrix the flags select: a preset, and the selection flags over it. */
function selectionOf(values: BenchFlags): {
  preset: Preset;
  custom: boolean;
  selection: MatrixSelection;
  executors: readonly string[] | undefined;
} {
  if (values.quick && values.full)
    throw conflictingOptions('--quick and --full exclude each other', ['--quick', '--full']);
  const preset: Preset = values.quick ? 'quick' : values.full ? 'full' : 'default';
  const workloads = values.workload ?? (values.objects ? ['objects'] : undefined);
  const overrides: Partial<MatrixSelection> = {
    ...(workloads ? { workloads } : {}),
    ...(values.pattern ? { patterns: values.pattern } : {}),
    ...(values.mapper ? { mappers: values.mapper } : {}),
    ...(values.executor ? { executors: values.executor } : {}),
    ...(values.policy ? { policies: values.policy, extraPoliciesOnlyUnderChurn: false } : {}),
    ...(values.time ? { time: values.time } : {}),
    ...(values.iterations ? { iterations: values.iterations } : {}),
    ...(values['patch-batch'] ? { patchBatch: values['patch-batch'] } : {}),
  };
  const custom = Object.keys(overrides).length > 0;
  return { preset, custom, selection: { ...presetSelection(preset), ...overrides }, executors: overrides.executors };
}

/** Charts beside the report, unless --no-charts; a failure to draw them is said, not fatal. */
async function writeReportCharts(
  values: BenchFlags,
  report: Report,
  outFile: string,
  io: CommandIO,
): Promise<string | undefined> {
  if (values['no-charts']) return undefined;
  const dir = path.resolve(values.charts ?? outFile.replace(/\.json$/, '') + '-charts');
  try {
    const { writeCharts } = await import('../charts/write-charts.js');
    return path.relative(process.cwd(), (await writeCharts([report], dir)).index);
  } catch (err) {
    // The report is the result; charts are a view of it. Say why they are missing.
    io.stderr.write(`jitmem bench: the report is written, but the charts failed: ${(err as Error).message}\n`);
    return undefined;
  }
}

export const benchCommand = flagCommand(SPEC, async ({ values }, io, argv) => {
  if (values.probe && values['no-probe'])
    throw conflictingOptions('--probe and --no-probe exclude each other', ['--probe', '--no-probe']);
  const { preset, custom, selection, executors } = selectionOf(values);
  const { objects, pin, seed } = values;
  const rounds = values.rounds ?? DEFAULT_ROUNDS;
  // Fixed sampling asked for (--time, --iterations, --rounds): no precision target unless --precision says so.
  const fixedSampling = values.time !== undefined || values.iterations !== undefined || values.rounds !== undefined;
  const precision =
    values.precision === 'off'
      ? undefined
      : (values.precision ?? (fixedSampling ? undefined : PRESET_PRECISION[preset]));
  const maxTimeMs = (values['max-time'] ?? PRESET_MAX_TIME_S[preset]) * 1000;
  const granularity = values.granularity ?? 1024 ** 3;
  const outFile =
    values.out !== undefined
      ? path.resolve(values.out)
      : defaultOutput(`bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  // Before the bench runs for minutes: a report that cannot be written is an error now.
  // --out names a file in a directory that exists; only the default folder is made.
  checkOutputFile(outFile, 'the report', { createDirectories: values.out === undefined });
  const exports = [
    ...(values['export-markdown'] !== undefined
      ? [{ file: path.resolve(values['export-markdown']), what: 'the Markdown table', format: 'markdown' as const }]
      : []),
    ...(values['export-csv'] !== undefined
      ? [{ file: path.resolve(values['export-csv']), what: 'the CSV table', format: 'csv' as const }]
      : []),
  ];
  for (const e of exports) checkOutputFile(e.file, e.what);

  const view = new BenchProgressView({
    stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  });
  const llvmDir = values['llvm-dir'] ?? (process.env.JITMEM_LLVM_DIR || undefined);
  const { report, skipped } = await runBench({
    selection,
    preset: custom ? 'custom' : preset,
    seed,
    cold: values.cold === true,
    pin,
    granularity,
    ...(values.granularity ? {} : { churnGranularity: 4 << 20 }),
    rounds,
    ...(precision !== undefined ? { precision, maxTimeMs } : {}),
    workloadOptions: {
      ...(values['python-dir'] ? { pythonDir: values['python-dir'] } : {}),
      ...(objects ? { objects } : {}),
    },
    repoDir,
    runLlvm: executors ? executors.includes('llvm') : true,
    ...(llvmDir
      ? { llvmDir: path.resolve(llvmDir), llvmExecutor: path.join(path.resolve(llvmDir), 'llvm-jitlink-executor') }
      : {}),
    command: ['jitmem', 'bench', ...argv],
    onProgress: view.onProgress,
    probeRoundTrip: values['no-probe'] ? false : values.probe === true || (!custom && preset !== 'quick'),
  }).finally(() => view.finish());
  writeFileSync(outFile, formatReportJson(report));
  if (exports.length) {
    const { exportCsv, exportMarkdown } = await import('../bench/export-table.js');
    for (const e of exports)
      writeFileSync(e.file, e.format === 'markdown' ? exportMarkdown(report) : exportCsv(report));
  }
  const charts = await writeReportCharts(values, report, outFile, io);
  const checkBudgets = values['check-budgets'] === true;
  const colour = (io.stdout as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR;
  const width = outputWidth(io.stdout as { isTTY?: boolean; columns?: number });
  io.stdout.write(
    renderSummary(report, path.relative(process.cwd(), outFile) || outFile, {
      skipped,
      checkBudgets,
      colour,
      width,
      ...(charts ? { charts } : {}),
    }),
  );
  for (const e of exports) io.stdout.write(`${e.format}: ${path.relative(process.cwd(), e.file) || e.file}\n`);
  return checkBudgets && overBudget(report) ? 1 : 0;
});
