import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitmemError } from '../../core/errors.js';
import { executorBinary } from '../../native/index.js';
import { sha256Hex, type RunProgram } from '../../workloads/run-programs.js';
import { describeProcessTree } from './process-state.js';
import { runToEnd, type FinishedChild } from '../../native/spawned-process.js';

/**
 * llvm-jitlink, the tool jitmem stands beside, run on the same objects and arguments as the
 * `run` pattern: one process per iteration, in-process or out of process through an executor
 * (LLVM's llvm-jitlink-executor or jitmem's), with each of its memory managers. Its whole-process
 * time is measured here and its own phases are read from `--show-times`.
 */

/** Where LLVM's binaries are looked for: this environment variable, or the bench's --llvm-dir. */
export const LLVM_DIR_ENV = 'JITMEM_LLVM_DIR';
export const DEFAULT_LLVM_DIR = '/usr/lib/llvm-22/bin';
export const LLVM_MAJOR = 22;

/** llvm-jitlink's ways of placing the program: in its own process, or through an executor with `--use-memmgr`. */
export type LlvmMode = 'inprocess' | 'generic' | 'simple-remote' | 'shared';
export const LLVM_MODES: readonly LlvmMode[] = ['inprocess', 'generic', 'simple-remote', 'shared'];

export interface LlvmTools {
  readonly dir: string;
  readonly jitlink: string;
  readonly executor: string;
  readonly version: string;
}

export type LlvmLookup =
  { readonly tools: LlvmTools; readonly reason?: undefined } | { readonly tools?: undefined; readonly reason: string };

/** Finds llvm-jitlink and llvm-jitlink-executor of LLVM 22 in `dir`, or says why they cannot be used. */
export function findLlvm(dir: string = process.env[LLVM_DIR_ENV] || DEFAULT_LLVM_DIR): LlvmLookup {
  const jitlink = path.join(dir, 'llvm-jitlink');
  const executor = path.join(dir, 'llvm-jitlink-executor');
  const missing = [jitlink, executor].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    return {
      reason: `LLVM ${LLVM_MAJOR}'s ${missing.map((f) => path.basename(f)).join(' and ')} not found in ${dir} (install Debian's llvm-${LLVM_MAJOR} package, or point --llvm-dir / ${LLVM_DIR_ENV} at its bin directory)`,
    };
  }
  const probe = spawnSync(jitlink, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const version = /LLVM version (\d+)\.(\d+)\.(\d+)/.exec(probe.stdout ?? '');
  if (!version)
    return {
      reason: `${jitlink} --version did not say which LLVM it is (${(probe.error?.message ?? probe.stderr ?? '').trim() || 'no output'})`,
    };
  if (Number(version[1]) !== LLVM_MAJOR) {
    return {
      reason: `${jitlink} is LLVM ${version[1]}; the comparison is made with LLVM ${LLVM_MAJOR}, whose wire protocol jitmem speaks`,
    };
  }
  return { tools: { dir, jitlink, executor, version: `${version[1]}.${version[2]}.${version[3]}` } };
}

/** llvm-jitlink's own phases, in milliseconds of wall time, from `--show-times`. */
export interface LlvmPhases {
  /** "time to load/add object files" */
  readonly read: number;
  /** "time to link object files": out of process this includes moving the program into the executor. */
  readonly link: number;
  /** "time to execute jitlink'd code" */
  readonly run: number;
}

const TIMER_NAMES: Record<keyof LlvmPhases, string> = {
  read: 'time to load/add object files',
  link: 'time to link object files',
  run: "time to execute jitlink'd code",
};

/**
 * Reads llvm-jitlink's `--show-times` table: each row is a series of `seconds (percent)` columns
 * (user, system, user+system, wall; the user column is left out when it is all zero) and the
 * timer's name. The wall time is the last column. The table is printed twice (once when the
 * timers stop, once at exit); the first one is read.
 */
export function parseShowTimes(stderr: string): LlvmPhases {
  const found: Partial<Record<keyof LlvmPhases, number>> = {};
  for (const line of stderr.split('\n')) {
    const m = /^\s*((?:\d+\.\d+\s+\(\s*[\d.]+%\)\s+)+)(\S.*?)\s*$/.exec(line);
    if (!m) continue;
    const name = m[2]!;
    const key = (Object.keys(TIMER_NAMES) as Array<keyof LlvmPhases>).find((k) => TIMER_NAMES[k] === name);
    if (!key || found[key] !== undefined) continue;
    const seconds = [...m[1]!.matchAll(/(\d+\.\d+)\s+\(/g)].map((x) => Number(x[1]));
    // Printed to 0.1 ms: rounded so that 0.0331 s reads 33.1 ms, not 33.099999999999994.
    found[key] = Math.round(seconds[seconds.length - 1]! * 1e6) / 1e3;
  }
  const absent = (Object.keys(TIMER_NAMES) as Array<keyof LlvmPhases>).filter(
    (k) => found[k] === undefined && k !== 'run',
  );
  if (absent.length > 0) {
    throw new JitmemError(
      'ERR_LLVM_TIMES',
      `llvm-jitlink --show-times printed no ${absent.map((k) => JSON.stringify(TIMER_NAMES[k])).join(' or ')} row`,
      { stderr: stderr.slice(-2000) },
    );
  }
  // A program that ends with exit() never returns to llvm-jitlink, which then has no run timer.
  return { read: found.read!, link: found.link!, run: found.run ?? 0 };
}

/**
 * jitmem's executor as llvm-jitlink's `--oop-executor`: llvm-jitlink runs the file it is given
 * with `filedescs=IN,OUT`, which jitmem's executor accepts; a two-line shell script starts the
 * native executor, as a session would.
 */
export class JitmemExecutorScript {
  readonly path: string;
  private readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'jitmem-oop-'));
    this.path = path.join(this.dir, 'jitmem-executor');
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    writeFileSync(this.path, `#!/bin/sh\nexec ${quote(executorBinary())} "$@"\n`);
    chmodSync(this.path, 0o755);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface LlvmRunOptions {
  readonly mode: LlvmMode;
  /** Out of process: whose executor llvm-jitlink drives. */
  readonly executor: 'llvm' | 'jitmem';
  /** Needed when `executor` is jitmem. */
  readonly jitmemExecutor?: JitmemExecutorScript;
  readonly timeoutMs?: number;
}

export interface LlvmRunResult {
  readonly exitStatus: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdoutSha256: string;
  /** Spawn of llvm-jitlink to the end of its process, in ms. */
  readonly wholeMs: number;
  readonly phases: LlvmPhases;
  /** stderr without the timer tables, for messages: its first lines (the cause) and its last. */
  readonly stderrExcerpt: string;
  /** Whether stderr, all of it, shows llvm-jitlink's own race (isLlvmJitlinkRace). */
  readonly raced: boolean;
}

/** Lines of a message kept from the start of stderr (where the cause is) and from its end. */
const STDERR_HEAD_LINES = 3;
const STDERR_LAST_LINES = 17;

/**
 * llvm-jitlink's stderr for a message: without --show-times' tables, its first lines (a failure's
 * first line says why; what follows can be dozens of lines of its consequences, "Resource tracker
 * ... became defunct") and its last, with the count of those left out between them.
 */
export function stderrForMessages(stderr: string): string {
  const lines = stderr
    .split('\n')
    .filter(
      (l) =>
        !/^\s*(=|-{3}|timers for|Total Execution|\d+\.\d+ \(|--)/.test(l) && !/time to /.test(l) && l.trim() !== '',
    );
  if (lines.length <= STDERR_HEAD_LINES + STDERR_LAST_LINES) return lines.join('\n');
  return [
    ...lines.slice(0, STDERR_HEAD_LINES),
    `[${lines.length - STDERR_HEAD_LINES - STDERR_LAST_LINES} more lines]`,
    ...lines.slice(-STDERR_LAST_LINES),
  ].join('\n');
}

/** The command line of one llvm-jitlink run of `program`. */
export function llvmJitlinkArgs(tools: LlvmTools, program: RunProgram, options: LlvmRunOptions): string[] {
  const args = ['--show-times'];
  if (options.mode !== 'inprocess') {
    const executor = options.executor === 'jitmem' ? options.jitmemExecutor?.path : tools.executor;
    if (!executor)
      throw new JitmemError(
        'ERR_INVALID_ARGUMENT',
        "llvm-jitlink driving jitmem's executor needs its script (JitmemExecutorScript)",
        {},
      );
    args.push(`--oop-executor=${executor}`, `--use-memmgr=${options.mode}`);
  }
  for (const lib of program.preload) args.push(`--preload=${lib}`);
  args.push(...program.files, '--args', ...program.argv);
  return args;
}

/** Runs llvm-jitlink once on `program` and times it. Its exit status is the program's. */
export async function runLlvmJitlink(
  tools: LlvmTools,
  program: RunProgram,
  options: LlvmRunOptions,
): Promise<LlvmRunResult> {
  const args = llvmJitlinkArgs(tools, program, options);
  const timeoutMs = options.timeoutMs ?? 120_000;
  // A run that does not finish is described (each thread's wait channel and system call, its
  // executor's too) before it is killed, so that the error says who waits on what.
  let stuck = '';
  let run: Promise<FinishedChild>;
  try {
    // Not child_process: its fork() would put the bench's own size into wholeMs (native/spawned-process.ts).
    run = runToEnd(tools.jitlink, args, [1, 2], { timeoutMs, beforeKill: (pid) => (stuck = describeProcessTree(pid)) });
  } catch (e) {
    throw new JitmemError(
      'ERR_LLVM_SPAWN',
      `cannot run ${tools.jitlink}: ${(e as Error).message}`,
      { command: tools.jitlink },
      { cause: e },
    );
  }
  const { exit, output, wholeMs, timedOut } = await run;
  const { exitStatus: code, signal } = exit;
  const stderr = output.get(2)!.toString('utf8');
  const stderrExcerpt = stderrForMessages(stderr);
  if (timedOut) {
    const state = stuck ? `; its threads then (tid state wait-channel [syscall fd]):\n${stuck}` : '';
    throw new JitmemError(
      'ERR_LLVM_TIMEOUT',
      `llvm-jitlink ${args.join(' ')} did not finish in ${timeoutMs} ms${state}`,
      { args, stuck },
    );
  }
  let phases: LlvmPhases;
  try {
    phases = parseShowTimes(stderr);
  } catch (e) {
    throw new JitmemError(
      'ERR_LLVM_RUN',
      `llvm-jitlink ${args.join(' ')} ended with ${signal ?? `status ${code}`} and printed no timers: ${stderrExcerpt || '(nothing on stderr)'}`,
      { args, code, signal },
      { cause: e },
    );
  }
  return {
    exitStatus: code,
    signal,
    stdoutSha256: sha256Hex(output.get(1)!),
    wholeMs,
    phases,
    stderrExcerpt,
    raced: isLlvmJitlinkRace(stderr),
  };
}

/**
 * llvm-jitlink 22 now and then refuses CPython with "In <Absolute Symbols>, duplicate definition
 * of symbol '...'" (confstr, __explicit_bzero_chk): a race among its own threads, seen about once
 * in a few hundred runs when it may use both CPUs, never twice in a row. Such a run is run again
 * once, and counted (EndToEndSection.llvm.rerun); any other failure, or the same one twice,
 * fails the bench as before.
 */
export function isLlvmJitlinkRace(stderr: string): boolean {
  return /In <Absolute Symbols>, duplicate definition of symbol/.test(stderr);
}

/**
 * Whether llvm-jitlink links `program` at all (-noexec, in process): undefined when it does,
 * else its own error lines. Run once per program before its cells, so that a refusal is a row
 * of the report with llvm-jitlink's reason, not a failed bench.
 */
export async function probeLlvmJitlink(
  tools: LlvmTools,
  program: RunProgram,
  timeoutMs = 120_000,
): Promise<string | undefined> {
  const refusal = await probeOnce(tools, program, timeoutMs);
  return refusal !== undefined && isLlvmJitlinkRace(refusal) ? probeOnce(tools, program, timeoutMs) : refusal;
}

async function probeOnce(tools: LlvmTools, program: RunProgram, timeoutMs = 120_000): Promise<string | undefined> {
  const args = ['-noexec', ...program.preload.map((lib) => `--preload=${lib}`), ...program.files];
  let run: Promise<FinishedChild>;
  try {
    run = runToEnd(tools.jitlink, args, [2], { timeoutMs });
  } catch (e) {
    return `cannot run ${tools.jitlink}: ${(e as Error).message}`;
  }
  const { exit, output } = await run;
  if (exit.exitStatus === 0) return undefined;
  const lines = output
    .get(2)!
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('llvm-jitlink error:') && !l.includes('failed to materialize'))
    .map((l) => l.replace(/^llvm-jitlink error: /, '').slice(0, 200));
  const unique = [...new Set(lines)];
  return unique.length > 0 ? unique.slice(0, 3).join('; ') : `ended with ${exit.signal ?? `status ${exit.exitStatus}`}`;
}
