import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultOutput, type Command } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { checkOutputFile } from '../../core/files.js';
import { checkFitPolicy, type FitPolicy } from '../../mappers/slab/free-range-index.js';
import type { MapperName, PatternName, Placement } from '../report/report.js';
import { ALL_MAPPERS, ALL_PATTERNS, presetSelection, type MatrixSelection, type Preset } from '../bench/matrix.js';
import { DEFAULT_ROUNDS, runBench } from '../bench/run-bench.js';
import { overBudget, renderSummary } from '../bench/summary.js';
import { BenchProgressView } from '../bench/progress.js';
import { formatReportJson } from '../report/report.js';

const HELP = `usage: jitmem bench [options]

Runs the matrix workload x pattern x mapper x fit policy, timing every phase of every
iteration (reserve, prepare, write, initialize, deinitialize, release), checking after each
iteration that the executor's memory holds exactly the bytes written, and writes one JSON
report (schema 1, see reports/README.md).

presets (default: the curated matrix, a few minutes):
  --quick               cray and python, pattern load, all three mappers, first-fit, few iterations
  --full                every workload, pattern, mapper, policy and executor; the whole sweep

selection (comma-separated lists; each overrides the preset):
  --workload LIST       cray, python, objects (with --objects)
  --pattern LIST        ${ALL_PATTERNS.join(', ')}
  --mapper LIST         ${ALL_MAPPERS.join(', ')}
  --policy LIST         first-fit, best-fit
  --executor LIST       jitmem, llvm (LLVM 22's llvm-jitlink-executor behind our remote mappers;
                        under --pattern run, llvm also means llvm-jitlink measured beside jitmem)
  --llvm-dir DIR        LLVM 22's bin directory, with llvm-jitlink and llvm-jitlink-executor
                        (or JITMEM_LLVM_DIR; default /usr/lib/llvm-22/bin)
  --objects FILE...     object files and archives for the 'objects' workload (ends at the next flag)
  --python-dir DIR      where python.o and libpython3.X-pic.a are (or JITMEM_PYTHON_CONFIG_DIR)

pattern run (end to end): each iteration links a program, moves it through the mapper, runs it
to exit and frees it, in a process of its own; cray renders its scene, python runs -c pass (and,
outside --quick, a short script); exit status and stdout are checked every iteration. jitmem's
linker is measured twice: a process per run (cold JS, a fresh executor each time) and a warm
controller (one process per cell: 5 warm-up iterations, then the measured ones over one executor
session); its budgets use the warm controller. llvm-jitlink
runs the same objects and arguments in-process and with --use-memmgr generic, simple-remote and
shared, through LLVM's executor and through jitmem's, in the same interleaved rounds.

measurement:
  --time MS             sampling time per cell in milliseconds (quick 1200, default 700,
                        full 2000)
  --iterations N        minimum iterations per cell (quick 24, default 12, full 30)
  --seed N              seed of the churn, patch and sweep patterns (default 1)
  --patch-batch N       patches per patchCode call in the patch pattern (default 1: each
                        patch a rewrite of its own)
  --cold                a fresh slab every iteration (default: one warm slab kept across
                        iterations, like a long-running JIT)
  --granularity BYTES   slab reservation granularity (default 1073741824, as llvm-jitlink;
                        churn cells use 4194304 unless this flag is given, so that the fit
                        policies' fragmentation shows in reservations)
  --rounds N            interleave the cells of each workload/pattern/policy in at least N
                        rounds (order alternating A B C D, D C B A), so drift in the machine's
                        speed falls on every mapper alike; speedups are taken per round
                        (paired) and compare judges them over rounds (default ${DEFAULT_ROUNDS})
  --precision PCT|off   keep adding rounds to each workload/pattern/policy until every
                        speedup's 95% CI half-width is at most PCT% of the speedup (default 3;
                        --quick 5; off when --time, --iterations or --rounds is given without
                        it); the summary names each group that did not get there, the width
                        it reached and how long it would need
  --max-time S          the precision mode's budget in seconds for the whole run (default
                        150; --quick 50; --full 900): each group gets its share of what is left
  --pin same|split|none controller and executor on the same CPU, on two CPUs, or unpinned
                        (default none; where they ran is recorded either way)
  --probe, --no-probe   after the cells, time a no-op round trip beside the finalize of a
                        one-page graph through shared memory (default: on for the default and
                        full presets without selection flags, off otherwise)

output:
  --out FILE            the report file (default jitmem-reports/bench-<time>.json in the
                        current directory)
  --charts DIR          where the charts go (default: beside the report, <report>-charts/)
  --no-charts           write no charts
  --check-budgets       exit 1 when a budget line says OVER BUDGET (without it, an exceeded
                        budget is highlighted but the exit status stays 0)
  -h, --help            show this help

progress goes to stderr: on a terminal, one line redrawn at most ten times a second (a bar of
the cells done, the cell being measured, elapsed time and an estimate of the time left);
otherwise one line per finished cell.

exit status:
  0   the report is written (budgets exceeded or not, unless --check-budgets)
  1   --check-budgets and a budget is exceeded (the report is still written)
  2   bad flags, unusable input, or a cell that failed (a byte the executor holds differs
      from what was written, a transport or executor error): the message names it, and no
      report is written
  70  an internal error (a bug: the stack trace is printed)
`;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoDir = path.resolve(here, '../../..');

function list<T extends string>(flag: string, text: string | undefined, allowed: readonly T[]): T[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      throw new JitmemError('ERR_INVALID_FLAG', `${flag} ${JSON.stringify(item)} is not one of ${allowed.join(', ')}`, { flag, value: item });
    }
  }
  if (items.length === 0) throw new JitmemError('ERR_INVALID_FLAG', `${flag} needs at least one value`, { flag });
  return items as T[];
}

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new JitmemError('ERR_INVALID_FLAG', `${flag} must be a positive integer; got ${JSON.stringify(text)}`, { flag, value: text });
  return n;
}

/** The precision each preset asks of every speedup (95% CI half-width, percent) and its time budget (s). */
const PRESET_PRECISION: Record<Preset, number> = { default: 3, quick: 5, full: 2 };
const PRESET_MAX_TIME_S: Record<Preset, number> = { default: 150, quick: 50, full: 900 };

function positiveNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new JitmemError('ERR_INVALID_FLAG', `${flag} must be a positive number; got ${JSON.stringify(text)}`, { flag, value: text });
  return n;
}

/** --precision PCT (a percentage above 0 and below 100) or off. */
function precisionFlag(text: string | undefined, fallback: number | undefined): number | undefined {
  if (text === undefined) return fallback;
  if (text === 'off') return undefined;
  const n = positiveNumber('--precision', text)!;
  if (n >= 100) throw new JitmemError('ERR_INVALID_FLAG', `--precision must be a percentage below 100 (or off); got ${JSON.stringify(text)}`, { flag: '--precision', value: text });
  return n;
}

/** Flags whose value is a number: "--time -1" is the value -1 given to --time, not a flag "-1". */
const NUMERIC_FLAGS = new Set(['--time', '--iterations', '--seed', '--granularity', '--rounds', '--precision', '--max-time']);

function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (NUMERIC_FLAGS.has(arg) && next !== undefined && /^-[0-9.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** --objects takes every following argument up to the next flag. */
function splitObjects(argv: string[]): { rest: string[]; objects: string[] | undefined } {
  const i = argv.indexOf('--objects');
  if (i < 0) return { rest: argv, objects: undefined };
  let j = i + 1;
  while (j < argv.length && !argv[j]!.startsWith('--')) j++;
  return { rest: [...argv.slice(0, i), ...argv.slice(j)], objects: argv.slice(i + 1, j) };
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'run the mapper x workload x pattern x policy benchmark and write a report',
  async run(argv, io) {
    const { rest, objects } = splitObjects(argv);
    let values;
    try {
      ({ values } = parseArgs({
        args: joinNegativeValues(rest),
        options: {
          quick: { type: 'boolean' },
          full: { type: 'boolean' },
          workload: { type: 'string' },
          pattern: { type: 'string' },
          mapper: { type: 'string' },
          policy: { type: 'string' },
          executor: { type: 'string' },
          'llvm-dir': { type: 'string' },
          'python-dir': { type: 'string' },
          time: { type: 'string' },
          iterations: { type: 'string' },
          seed: { type: 'string' },
          'patch-batch': { type: 'string' },
          cold: { type: 'boolean' },
          granularity: { type: 'string' },
          rounds: { type: 'string' },
          precision: { type: 'string' },
          'max-time': { type: 'string' },
          charts: { type: 'string' },
          'no-charts': { type: 'boolean' },
          'check-budgets': { type: 'boolean' },
          pin: { type: 'string' },
          probe: { type: 'boolean' },
          'no-probe': { type: 'boolean' },
          out: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (err) {
      throw new JitmemError('ERR_INVALID_FLAG', `${(err as Error).message}; see 'jitmem bench --help'`, {});
    }
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    if (values.probe && values['no-probe']) throw new JitmemError('ERR_INVALID_FLAG', '--probe and --no-probe exclude each other', {});
    if (values.quick && values.full) throw new JitmemError('ERR_INVALID_FLAG', '--quick and --full exclude each other', {});
    if (objects && objects.length === 0) throw new JitmemError('ERR_INVALID_FLAG', '--objects needs at least one file', {});
    const preset: Preset = values.quick ? 'quick' : values.full ? 'full' : 'default';
    const base = presetSelection(preset);
    const workloads = values.workload?.split(',').map((s) => s.trim()).filter(Boolean) ?? (objects ? ['objects'] : undefined);
    const pin = (values.pin ?? 'none') as Placement['pin'];
    if (!['same', 'split', 'none'].includes(pin)) throw new JitmemError('ERR_INVALID_FLAG', `--pin must be same, split or none; got ${JSON.stringify(values.pin)}`, { flag: '--pin' });
    const overrides: Partial<MatrixSelection> = {
      ...(workloads ? { workloads } : {}),
      ...(values.pattern ? { patterns: list<PatternName>('--pattern', values.pattern, ALL_PATTERNS) } : {}),
      ...(values.mapper ? { mappers: list<MapperName>('--mapper', values.mapper, ALL_MAPPERS) } : {}),
      ...(values.executor ? { executors: list<'jitmem' | 'llvm'>('--executor', values.executor, ['jitmem', 'llvm']) } : {}),
      ...(values.policy ? { policies: values.policy.split(',').map((p) => checkFitPolicy(p.trim()) as FitPolicy), extraPoliciesOnlyUnderChurn: false } : {}),
      ...(values.time ? { time: positiveInt('--time', values.time)! } : {}),
      ...(values.iterations ? { iterations: positiveInt('--iterations', values.iterations)! } : {}),
      ...(values['patch-batch'] ? { patchBatch: positiveInt('--patch-batch', values['patch-batch'])! } : {}),
    };
    const custom = Object.keys(overrides).length > 0;
    const selection: MatrixSelection = { ...base, ...overrides };
    const granularity = positiveInt('--granularity', values.granularity) ?? 1024 ** 3;
    const rounds = positiveInt('--rounds', values.rounds) ?? DEFAULT_ROUNDS;
    const seed = values.seed === undefined ? 1 : positiveInt('--seed', values.seed)!;
    const fixedSampling = values.time !== undefined || values.iterations !== undefined || values.rounds !== undefined;
    const precision = precisionFlag(values.precision, fixedSampling ? undefined : PRESET_PRECISION[preset]);
    const maxTimeMs = (positiveNumber('--max-time', values['max-time']) ?? PRESET_MAX_TIME_S[preset]) * 1000;
    const outFile = values.out !== undefined ? path.resolve(values.out) : defaultOutput(`bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    // Before the bench runs for minutes: a report that cannot be written is an error now.
    checkOutputFile(outFile, 'the report');

    const view = new BenchProgressView({ stream: io.stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number } });
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
      workloadOptions: { ...(values['python-dir'] ? { pythonDir: values['python-dir'] } : {}), ...(objects ? { objects } : {}) },
      repoDir,
      runLlvm: overrides.executors ? overrides.executors.includes('llvm') : true,
      ...(llvmDir ? { llvmDir: path.resolve(llvmDir), llvmExecutor: path.join(path.resolve(llvmDir), 'llvm-jitlink-executor') } : {}),
      command: ['jitmem', 'bench', ...argv],
      onProgress: view.onProgress,
      probeRoundTrip: values['no-probe'] ? false : values.probe === true || (!custom && preset !== 'quick'),
    }).finally(() => view.finish());
    writeFileSync(outFile, formatReportJson(report));
    let charts: string | undefined;
    if (!values['no-charts']) {
      const dir = path.resolve(values.charts ?? outFile.replace(/\.json$/, '') + '-charts');
      try {
        const { writeCharts } = await import('../charts/write-charts.js');
        charts = path.relative(process.cwd(), (await writeCharts([report], dir)).index);
      } catch (err) {
        // The report is the result; charts are a view of it. Say why they are missing.
        io.stderr.write(`jitmem bench: the report is written, but the charts failed: ${(err as Error).message}\n`);
      }
    }
    const checkBudgets = values['check-budgets'] === true;
    const colour = (io.stdout as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR;
    io.stdout.write(renderSummary(report, path.relative(process.cwd(), outFile) || outFile, { skipped, checkBudgets, colour, ...(charts ? { charts } : {}) }));
    return checkBudgets && overBudget(report) ? 1 : 0;
  },
};
