import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { JitmemError } from '../../core/errors.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { runPrograms, sha256Hex, type RunProgram } from '../../workloads/run-programs.js';
import type { WorkloadOptions } from '../../workloads/workload-sources.js';
import type {
  EndToEndSection,
  ExecutorName,
  LinkerName,
  LlvmMemmgr,
  MapperName,
  PhaseSpeedup,
  ResultRow,
  RunPhaseName,
  SamplingGroup,
} from '../report/report.js';
import { pairRoundMedians, roundMedians, summarizePaired } from './ratios.js';
import { endToEndHeadlines } from './end-to-end.js';
import {
  halfWidthPercent,
  isSettled,
  isSettledToStop,
  speedupSettledToStop,
  roundOrder,
  roundsNeeded,
  roundsToSettleAtBest,
  unsettledOf,
  withRounds,
} from './sampling.js';
import {
  findLlvm,
  JitmemExecutorScript,
  LLVM_MAJOR,
  probeLlvmJitlink,
  runLlvmJitlink,
  type LlvmMode,
  type LlvmTools,
} from './llvm-jitlink.js';
import { JITMEM_RUN_PHASES, type MinorFaults } from './run-target.js';
import { SpawnedProcess, runToEnd, type FinishedChild } from '../../native/spawned-process.js';
import { RESULT_FD, type RunWorkerRequest, type RunWorkerResult, type WarmIterationResult } from './run-worker.js';
import { toStats } from './stats.js';
import type { SkippedCell } from './matrix.js';
import { executorBinary } from '../../native/index.js';

/**
 * The `run` pattern's cells: every program linked, moved, run to exit and freed, by jitmem's
 * linker through each mapper and by llvm-jitlink in each of its modes (and llvm-jitlink driving
 * jitmem's executor), measured in interleaved rounds so that the machine's drift falls on all
 * alike. Each iteration is a process of its own for both tools; its exit status and its stdout
 * are checked against what the program must print, outside the timed phases.
 */

export interface RunCell {
  readonly program: RunProgram;
  readonly linker: LinkerName;
  readonly mapper: MapperName;
  /** Whose executor (none in-process). */
  readonly executor: ExecutorName;
  /** llvm-jitlink's memory manager out of process. */
  readonly memmgr?: LlvmMemmgr;
  /** jitmem's: a process per iteration, or one warm controller for the whole cell. */
  readonly controller?: 'warm' | 'process-per-run';
}

export function runCellName(c: RunCell): string {
  const where =
    c.mapper === 'inprocess' ? 'inprocess' : `${c.linker === 'llvm-jitlink' ? c.memmgr : c.mapper}@${c.executor}`;
  return `${c.program.name}/run/${where} [${c.linker}${c.controller === 'warm' ? ', warm controller' : ''}]`;
}

/** Why a whole kind of row is absent; printed once, not once per cell. */
export type RunSkip = SkippedCell;

export interface EndToEndOptions {
  readonly workloads: readonly string[];
  readonly workloadOptions: WorkloadOptions;
  readonly mappers: readonly MapperName[];
  /** Measured iterations per cell, spread over the rounds (at least one per round). */
  readonly iterations: number;
  readonly rounds: number;
  /** Executor spawns per executor for the start-up figure. */
  readonly startupSamples: number;
  /** LLVM's bin directory (default: JITMEM_LLVM_DIR or /usr/lib/llvm-22/bin). */
  readonly llvmDir?: string;
  /** Leave llvm-jitlink out even when it is installed. */
  readonly withoutLlvm?: boolean;
  /** Python runs its short script beside `-c pass`. */
  readonly withScript: boolean;
  /** Unrecorded iterations a warm controller runs before its measured ones (default WARM_CONTROLLER_WARMUP). */
  readonly warmup?: number;
  /**
   * With a precision target (percent): warm controllers run rounds until the shared-over-RPC speedup's 95% CI
   * half-width is within it, or `deadline` (performance.now() ms) comes.
   */
  readonly precision?: number;
  readonly deadline?: number;
  readonly onProgress?: (cell: string, done: number, total: number) => void;
  /** Called before each round of the processes per run and each generation of warm controllers, none running. */
  readonly beforeRound?: () => void;
}

export interface EndToEndResult {
  readonly rows: ResultRow[];
  readonly section: EndToEndSection;
  readonly skipped: RunSkip[];
  /** How the warm controllers were sampled (with a precision target). */
  readonly sampling: SamplingGroup[];
}

/**
 * With a precision target, the share of the run pattern's time the processes per run and
 * llvm-jitlink may take. The warm controllers, the end-to-end headline, get the rest: each of
 * their rounds starts a generation of controllers (runWarmProgram), about 2 s for CPython's three,
 * and the spread between generations (about 4% for python) takes some ten of them to resolve.
 */
const PER_RUN_SHARE = 0.3;

/**
 * V8 flags of a warm controller's process: its garbage collector works on its main thread.
 * With V8's helper threads marking and sweeping beside it, what a link left to collect was
 * collected while the program ran, on the CPU the program (in process) or its executor (out of
 * process) needed: python -c pass ran either about 6.5 or 13-20 ms, iteration by iteration, and
 * one controller could stay in the slow mode for a whole run, so that same-commit runs read
 * 0.87x and 1.06x. On the main thread the collection falls in the controller's own phases (link),
 * where it is spent (docs/measurement.md).
 */
export const WARM_CONTROLLER_V8_FLAGS: readonly string[] = ['--single-threaded-gc'];

/**
 * Unrecorded iterations each warm controller runs before its measured ones. CPython's link keeps
 * getting faster for ten iterations of a fresh controller (V8 still compiling the linker): its
 * mean by pairs of iterations, 18 controllers, was 52, 31, 22, 24 and 17 ms, then 12-14 ms from
 * the eleventh on, and the time to exit 84-35 ms, then 25-27. With 5 (as before) half of every
 * generation's measured passes fell in that descent, at times to exit 1.3-1.7x the warm ones'
 * and spread as the controllers' compilation happened to go; cray's link is warm from its third.
 */
export const WARM_CONTROLLER_WARMUP = 12;

/** How long one warm iteration (the first: with the transport's opening) may take before its worker is killed. */
const WARM_ITERATION_TIMEOUT_MS = 120_000;

/** Warm iterations a controller runs at most (a bound for its request; the bench stops it sooner). */
const MAX_WARM_ITERATIONS = 100_000;
/**
 * With a precision target: passes (an iteration of each warm controller) per round, and the least
 * rounds. A round is a generation of the program's controllers (see runWarmProgram), so a few
 * passes each: starting three CPython controllers and warming them up costs about as much as twenty
 * passes over them, and a round's median needs a few iterations past the one in two a collection slows.
 */
const WARM_PASSES_PER_ROUND = 10;
const MIN_WARM_ROUNDS = 5;

/** The 95% CI half-width of the warm controllers' shared-over-RPC speedup so far (paired per round). */
function warmHeadlineWidth(
  cells: readonly RunCell[],
  latencies: readonly number[][],
  roundEnds: ReadonlyMap<RunCell, number[]>,
): { label: string; percent: number; interval: PhaseSpeedup } | undefined {
  const at = (m: MapperName) => cells.findIndex((c) => c.mapper === m);
  const s = at('shared');
  const r = at('rpc');
  if (s < 0 || r < 0) return undefined;
  const shared = latencies[s]!;
  const rpc = latencies[r]!;
  const ends = roundEnds.get(cells[s]!) ?? [];
  const paired = pairRoundMedians(roundMedians(rpc, sizesOf(ends)), roundMedians(shared, sizesOf(ends)));
  if (!paired) return undefined;
  const est = summarizePaired(paired);
  return {
    label: `${cells[s]!.program.name}/run shared over RPC copy (warm controller)`,
    percent: halfWidthPercent(est),
    interval: est,
  };
}

function sizesOf(ends: readonly number[]): number[] {
  return ends.map((e, i) => e - (i > 0 ? ends[i - 1]! : 0));
}

const workerPath = fileURLToPath(new URL('./run-worker.js', import.meta.url));
const targetPath = fileURLToPath(new URL('./jitmem-run-target.js', import.meta.url));

/** True when this build has jitmem's JIT linker wired to the run pattern. */
export function jitmemLinkerAvailable(): boolean {
  return existsSync(targetPath);
}

const LLVM_MAPPER: Record<LlvmMode, MapperName> = {
  inprocess: 'inprocess',
  generic: 'rpc',
  'simple-remote': 'rpc',
  shared: 'shared',
};

/** The cells of one program: jitmem's mappers; llvm-jitlink's modes over its own executor and over jitmem's. */
export function planRunCells(
  program: RunProgram,
  mappers: readonly MapperName[],
  jitmem: boolean,
  llvm: boolean,
): RunCell[] {
  const cells: RunCell[] = [];
  if (jitmem) {
    for (const controller of ['warm', 'process-per-run'] as const) {
      for (const mapper of mappers)
        cells.push({
          program,
          linker: 'jitmem',
          mapper,
          executor: mapper === 'inprocess' ? 'none' : 'jitmem',
          controller,
        });
    }
  }
  if (llvm) {
    for (const mode of ['inprocess', 'generic', 'simple-remote', 'shared'] as const) {
      if (!mappers.includes(LLVM_MAPPER[mode])) continue;
      cells.push({
        program,
        linker: 'llvm-jitlink',
        mapper: LLVM_MAPPER[mode],
        executor: mode === 'inprocess' ? 'none' : 'llvm',
        ...(mode === 'inprocess' ? {} : { memmgr: mode }),
      });
    }
    // The fourth comparison: LLVM's linker with jitmem's executor (on one CPython program: the
    // script adds run time, not transport).
    for (const mode of program.name === 'python-script' ? [] : (['simple-remote', 'shared'] as const)) {
      if (mappers.includes(LLVM_MAPPER[mode]))
        cells.push({ program, linker: 'llvm-jitlink', mapper: LLVM_MAPPER[mode], executor: 'jitmem', memmgr: mode });
    }
  }
  return cells;
}

export interface Sample {
  latency: number;
  /** The whole process (process per run), or the iteration's wall time in the warm controller. */
  whole: number;
  phases: Partial<Record<RunPhaseName, number>>;
  startup?: number;
  calls: number;
  bytesSent: number;
  /** Warm controller: minor page faults during the iteration. */
  minorFaults?: MinorFaults;
  /** CPU milliseconds of the iteration, controller and executor (jitmem's rows). */
  cpu?: { controller: number; executor: number | null };
}

function mismatch(cell: RunCell, iteration: number, what: string, stderr: string): JitmemError {
  const name = runCellName(cell);
  return new JitmemError(
    'ERR_RUN_MISMATCH',
    `${name}, iteration ${iteration}: ${what}${stderr.trim() ? `; stderr ends: ${stderr.trim().slice(-800)}` : ''}`,
    { cell: name, iteration },
  );
}

/** One jitmem iteration: a worker process links, moves, runs and frees the program and reports its phases. */
async function jitmemIteration(cell: RunCell, iteration: number): Promise<Sample> {
  const request: RunWorkerRequest = {
    program: cell.program,
    mapper: cell.mapper,
    executor: cell.executor === 'llvm' ? 'llvm' : 'jitmem',
  };
  let run: Promise<FinishedChild>;
  try {
    // Not child_process: its fork() would put the bench's own size into `whole` (native/spawned-process.ts).
    run = runToEnd(process.execPath, [workerPath, JSON.stringify(request)], [1, 2, RESULT_FD], {
      timeoutMs: 120_000,
    });
  } catch (e) {
    throw new JitmemError('ERR_RUN_WORKER', `cannot start the run worker: ${(e as Error).message}`, {}, { cause: e });
  }
  const { exit, output, wholeMs: whole } = await run;
  const stderr = output.get(2)!.toString('utf8');
  const text = output.get(RESULT_FD)!.toString('utf8').trim();
  if (!text)
    throw mismatch(
      cell,
      iteration,
      `the program ended its process (${exit.signal ?? `status ${exit.exitStatus}`}) before main returned, so its phases were not timed`,
      stderr,
    );
  const result = JSON.parse(text) as RunWorkerResult;
  if (!result.ok)
    throw new JitmemError(result.code, `${runCellName(cell)}, iteration ${iteration}: ${result.message}`, {
      cell: runCellName(cell),
    });
  const expected = cell.program.expected;
  if (result.exitStatus !== expected.exitStatus)
    throw mismatch(cell, iteration, `main returned ${result.exitStatus}, expected ${expected.exitStatus}`, stderr);
  const sha = sha256Hex(output.get(1)!);
  if (sha !== expected.stdoutSha256)
    throw mismatch(
      cell,
      iteration,
      `stdout has sha256 ${sha}, expected ${expected.stdoutSha256} (${cell.program.description})`,
      stderr,
    );
  let latency = 0;
  for (const p of JITMEM_RUN_PHASES) latency += result.phases[p];
  return {
    latency,
    whole,
    phases: { ...result.phases },
    startup: result.startupMs,
    calls: result.calls,
    bytesSent: result.bytesSent,
    ...(result.cpu ? { cpu: result.cpu } : {}),
  };
}

/**
 * Splits a warm controller's stdout at its markers: one buffer per iteration, the bytes after the last marker apart.
 */
export function splitAtMarkers(out: Buffer, marker: Buffer): { parts: Buffer[]; rest: Buffer } {
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = out.indexOf(marker, from); at >= 0; at = out.indexOf(marker, from)) {
    parts.push(out.subarray(from, at));
    from = at + marker.length;
  }
  return { parts, rest: out.subarray(from) };
}

/**
 * A warm controller for one jitmem cell: one worker process opens the transport once (one
 * executor session out of process), runs `warmup` unrecorded iterations and then `iterations`
 * measured ones, link, move, run, free, back to back. Every iteration, warm-up included, is
 * verified (SteppedWarmCell): its exit status from its line on fd 3, its stdout as the bytes the
 * worker's fd 1 carried before that iteration's marker.
 */
export async function jitmemWarmCell(
  cell: RunCell,
  warmup: number,
  iterations: number,
  onIteration?: (done: number) => void,
): Promise<Sample[]> {
  const controller = new SteppedWarmCell(cell, warmup, warmup + iterations);
  try {
    for (let i = 0; i < warmup + iterations; i++) {
      await controller.next();
      if (i >= warmup) onIteration?.(i - warmup + 1);
    }
    return await controller.finish();
  } catch (err) {
    controller.kill();
    throw err;
  }
}

/**
 * A warm controller driven an iteration at a time (RunWorkerRequest.warm.stepped): the bench
 * starts the warm controllers of one program together and runs one iteration of each in turn,
 * so that their iterations interleave as the matrix's cells do. Every iteration, warm-up
 * included, is verified when the controller is closed: its exit status from its line on fd 3,
 * its stdout as the bytes the worker's fd 1 carried before that iteration's marker.
 */
export class SteppedWarmCell {
  private readonly child: ReturnType<typeof spawn>;
  private readonly marker: string;
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private readonly lines: Array<WarmIterationResult | (RunWorkerResult & { ok: false })> = [];
  private pending = '';
  private waiting: Array<() => void> = [];
  private closedStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly closed: Promise<void>;
  private ran = 0;

  constructor(
    readonly cell: RunCell,
    private readonly warmup: number,
    maxIterations: number,
  ) {
    this.marker = `\0jitmem-run-iteration-end:${randomBytes(16).toString('hex')}\0`;
    const request: RunWorkerRequest = {
      program: cell.program,
      mapper: cell.mapper,
      executor: cell.executor === 'llvm' ? 'llvm' : 'jitmem',
      warm: { warmup, iterations: maxIterations, marker: this.marker, stepped: true },
    };
    this.child = spawn(process.execPath, [...WARM_CONTROLLER_V8_FLAGS, workerPath, JSON.stringify(request)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (b: Buffer) => this.out.push(b));
    this.child.stderr!.on('data', (b: Buffer) => this.err.push(b));
    this.child.stdin!.on('error', () => {});
    const results = this.child.stdio[RESULT_FD] as NodeJS.ReadableStream;
    results.setEncoding('utf8');
    results.on('data', (text: string) => {
      this.pending += text;
      for (let nl = this.pending.indexOf('\n'); nl >= 0; nl = this.pending.indexOf('\n')) {
        const line = this.pending.slice(0, nl);
        this.pending = this.pending.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as WarmIterationResult);
        } catch {
          this.lines.push({
            ok: false,
            index: this.lines.length,
            code: 'ERR_RUN_WORKER',
            message: `the warm controller reported ${JSON.stringify(line.slice(0, 200))}, not a result`,
          });
        }
        this.wakeAll();
      }
    });
    this.closed = new Promise((resolve) => {
      this.child.once('error', () => {
        this.closedStatus ??= { code: null, signal: null };
        this.wakeAll();
        resolve();
      });
      this.child.once('close', (code, signal) => {
        this.closedStatus = { code, signal };
        this.wakeAll();
        resolve();
      });
    });
  }

  private wakeAll(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }

  private fail(what: string): JitmemError {
    const failed = this.lines.find((l) => !l.ok);
    if (failed && !failed.ok)
      return new JitmemError(
        failed.code,
        `${runCellName(this.cell)}, iteration ${'index' in failed ? failed.index - this.warmup : '(opening the transport)'}: ${failed.message}`,
        { cell: runCellName(this.cell) },
      );
    return mismatch(this.cell, this.ran - this.warmup, what, Buffer.concat(this.err).toString('utf8'));
  }

  /** Runs one iteration (a warm-up one while fewer than `warmup` ran) and returns its line. */
  async next(): Promise<WarmIterationResult & { ok: true }> {
    const index = this.ran++;
    this.child.stdin!.write('\n');
    // A watchdog per iteration (the first one opens the transport too): a worker that hangs is killed, never waited on
    // forever.
    const watchdog = setTimeout(() => this.child.kill('SIGKILL'), WARM_ITERATION_TIMEOUT_MS);
    try {
      while (this.lines.length <= index && !this.closedStatus)
        await new Promise<void>((resolve) => this.waiting.push(resolve));
    } finally {
      clearTimeout(watchdog);
    }
    const line = this.lines[index];
    if (!line || !line.ok)
      throw this.fail(
        `the warm controller ended (${this.closedStatus?.signal ?? `status ${this.closedStatus?.code}`}) after ${this.lines.length} iterations; the program may have ended its process`,
      );
    return line;
  }

  /** Ends the controller and verifies every iteration's exit status and output; the measured iterations' samples. */
  async finish(): Promise<Sample[]> {
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await this.closed;
    clearTimeout(timer);
    if (this.lines.some((l) => !l.ok) || this.lines.length !== this.ran)
      throw this.fail(
        `the warm controller ended (${this.closedStatus?.signal ?? `status ${this.closedStatus?.code}`}) after ${this.lines.length} of ${this.ran} iterations`,
      );
    const { parts, rest } = splitAtMarkers(Buffer.concat(this.out), Buffer.from(this.marker, 'latin1'));
    const stderr = Buffer.concat(this.err).toString('utf8');
    if (parts.length !== this.lines.length || rest.length > 0)
      throw mismatch(
        this.cell,
        0,
        `the warm controller's stdout holds ${parts.length} iteration markers for ${this.lines.length} iterations and ${rest.length} bytes after the last`,
        stderr,
      );
    const expected = this.cell.program.expected;
    const samples: Sample[] = [];
    for (const [i, line] of (this.lines as Array<WarmIterationResult & { ok: true }>).entries()) {
      const iteration = i - this.warmup;
      if (line.exitStatus !== expected.exitStatus)
        throw mismatch(
          this.cell,
          iteration,
          `main returned ${line.exitStatus}, expected ${expected.exitStatus}`,
          stderr,
        );
      const sha = sha256Hex(parts[i]!);
      if (sha !== expected.stdoutSha256)
        throw mismatch(
          this.cell,
          iteration,
          `stdout has sha256 ${sha}, expected ${expected.stdoutSha256} (${this.cell.program.description})`,
          stderr,
        );
      if (iteration < 0) continue;
      let latency = 0;
      for (const p of JITMEM_RUN_PHASES) latency += line.phases[p];
      const startup = iteration === 0 ? (this.lines[0] as WarmIterationResult & { ok: true }).startupMs : undefined;
      samples.push({
        latency,
        whole: line.wallMs,
        phases: { ...line.phases },
        ...(startup ? { startup } : {}),
        calls: line.calls,
        bytesSent: line.bytesSent,
        ...(line.cpu ? { cpu: line.cpu } : {}),
        ...(line.minorFaults ? { minorFaults: line.minorFaults } : {}),
      });
    }
    return samples;
  }

  /** Stops the controller without verifying (after another cell failed). */
  kill(): void {
    if (!this.closedStatus) this.child.kill('SIGKILL');
  }
}

/** One llvm-jitlink iteration: its whole process timed, its phases read from --show-times. */
async function llvmIteration(
  tools: LlvmTools,
  script: JitmemExecutorScript | undefined,
  cell: RunCell,
  iteration: number,
  onRerun?: () => void,
): Promise<Sample> {
  const mode: LlvmMode = cell.memmgr ?? 'inprocess';
  const once = () =>
    runLlvmJitlink(tools, cell.program, {
      mode,
      executor: cell.executor === 'jitmem' ? 'jitmem' : 'llvm',
      ...(script ? { jitmemExecutor: script } : {}),
    });
  let r = await once();
  const expected = cell.program.expected;
  if (r.exitStatus !== expected.exitStatus && r.raced) {
    onRerun?.();
    r = await once();
  }
  if (r.exitStatus !== expected.exitStatus)
    throw mismatch(
      cell,
      iteration,
      `llvm-jitlink exited with ${r.signal ?? `status ${r.exitStatus}`}, expected ${expected.exitStatus}`,
      r.stderrExcerpt,
    );
  if (r.stdoutSha256 !== expected.stdoutSha256)
    throw mismatch(
      cell,
      iteration,
      `stdout has sha256 ${r.stdoutSha256}, expected ${expected.stdoutSha256} (${cell.program.description})`,
      r.stderrExcerpt,
    );
  const other = Math.max(0, r.wholeMs - r.phases.read - r.phases.link - r.phases.run);
  return {
    latency: r.wholeMs,
    whole: r.wholeMs,
    phases: { read: r.phases.read, link: r.phases.link, run: r.phases.run, other },
    calls: 0,
    bytesSent: 0,
  };
}

/**
 * Executor start-up, spawn to Setup, for both executors alike: each is spawned in turn
 * (interleaved) with the same pair of descriptors, read until its Setup message and closed.
 * Both are native programs: jitmem's (`jitmem-executor`) and LLVM's.
 */
export async function measureStartup(
  samples: number,
  llvm: LlvmTools | undefined,
): Promise<{ startup: EndToEndSection['startup'] }> {
  const kinds: Array<{ executor: 'jitmem' | 'llvm'; command: string; args: string[] }> = [
    { executor: 'jitmem', command: executorBinary(), args: ['--fds', '3,4'] },
  ];
  if (llvm) kinds.push({ executor: 'llvm', command: llvm.executor, args: ['filedescs=3,4'] });
  const spawnToSetup = async (command: string, args: string[]): Promise<number> => {
    const t0 = performance.now();
    // Not child_process: its fork() would put the bench's own size into the start-up (native/spawned-process.ts).
    const child = new SpawnedProcess(command, args, [2, 3, 4]);
    const closed = child.closed.then(
      () => {},
      () => {},
    );
    let stderr = '';
    child
      .pipe(2)
      .setEncoding('utf8')
      .on('data', (s: string) => (stderr += s));
    try {
      const session = await ExecutorSession.over(child.pipe(4), child.pipe(3));
      const ms = performance.now() - t0;
      await session.close();
      await closed;
      return ms;
    } catch (err) {
      child.kill('SIGKILL');
      await closed;
      throw new JitmemError(
        'ERR_EXECUTOR_STARTUP',
        `${command} ${args.join(' ')} did not send Setup: ${(err as Error).message}${stderr ? `; stderr: ${stderr.trim().slice(-500)}` : ''}`,
        { command },
      );
    }
  };
  const times = kinds.map(() => [] as number[]);
  // One of each first, unrecorded: the page cache and the dynamic loader's caches warm up.
  for (const k of kinds) await spawnToSetup(k.command, k.args);
  for (let i = 0; i < samples; i++) {
    for (const [j, k] of kinds.entries()) times[j]!.push(await spawnToSetup(k.command, k.args));
  }
  return {
    startup: kinds.map((k, j) => ({ executor: k.executor, stats: toStats(times[j]!) })),
  };
}

function rowOf(cell: RunCell, samples: readonly Sample[]): ResultRow {
  const n = samples.length;
  const phaseNames = Object.keys(samples[0]!.phases) as RunPhaseName[];
  const phases: ResultRow['phases'] = {};
  for (const p of phaseNames) phases[p] = toStats(samples.map((s) => s.phases[p] ?? 0));
  const startups = samples.map((s) => s.startup).filter((x): x is number => x !== undefined && x > 0);
  return {
    workload: cell.program.name,
    pattern: 'run',
    mapper: cell.mapper,
    executor: cell.executor,
    policy: 'first-fit',
    linker: cell.linker,
    ...(cell.memmgr ? { memmgr: cell.memmgr } : {}),
    ...(cell.controller ? { controller: cell.controller } : {}),
    program: cell.program.description,
    latency: toStats(samples.map((s) => s.latency)),
    phases,
    ...(cell.controller === 'warm'
      ? { iteration: toStats(samples.map((s) => s.whole)) }
      : { wholeProcess: toStats(samples.map((s) => s.whole)) }),
    ...(startups.length ? { startup: toStats(startups) } : {}),
    verified: {
      iterations: n,
      exitStatus: cell.program.expected.exitStatus,
      stdoutSha256: cell.program.expected.stdoutSha256,
    },
    bytes: { content: 0, zeroFill: 0, moved: Math.round(samples.reduce((a, s) => a + s.bytesSent, 0) / n) },
    roundTrips: samples.reduce((a, s) => a + s.calls, 0) / n,
    ...meanMinorFaults(samples),
    ...(samples.every((s) => s.cpu)
      ? {
          cpu: {
            controller: toStats(samples.map((s) => Math.max(0, s.cpu!.controller))),
            executor: samples.every((s) => s.cpu!.executor !== null)
              ? toStats(samples.map((s) => Math.max(0, s.cpu!.executor!)))
              : null,
          },
        }
      : {}),
  };
}

/** Minor faults per iteration (mean), when every sample has them (warm controllers). */
function meanMinorFaults(samples: readonly Sample[]): { minorFaults?: MinorFaults } {
  if (samples.length === 0 || !samples.every((s) => s.minorFaults)) return {};
  const n = samples.length;
  const controller = samples.reduce((a, s) => a + s.minorFaults!.controller, 0) / n;
  const executor = samples.every((s) => s.minorFaults!.executor !== undefined)
    ? samples.reduce((a, s) => a + s.minorFaults!.executor!, 0) / n
    : undefined;
  return { minorFaults: { controller, ...(executor !== undefined ? { executor } : {}) } };
}

/** What the run pattern found it can run: its cells, the section's linker availability, and what it leaves out. */
interface EndToEndPlan {
  readonly cells: RunCell[];
  readonly section: EndToEndSection;
  readonly skipped: RunSkip[];
  readonly tools: LlvmTools | undefined;
}

/**
 * Finds the linkers (llvm-jitlink, jitmem's own) and plans a cell per program, linker and
 * transport that can run, saying why the others cannot.
 */
async function planEndToEnd(options: EndToEndOptions): Promise<EndToEndPlan> {
  const skipped: RunSkip[] = [];
  const lookup = options.withoutLlvm ? { reason: 'left out (--executor without llvm)' } : findLlvm(options.llvmDir);
  const tools = lookup.tools;
  const llvmDir = tools?.dir ?? options.llvmDir ?? process.env.JITMEM_LLVM_DIR ?? '/usr/lib/llvm-22/bin';
  if (!tools) skipped.push({ cell: '*/run/* [llvm-jitlink]', code: 'llvm-jitlink-missing', reason: lookup.reason! });
  const jitmem = jitmemLinkerAvailable();
  const jitmemReason = jitmem
    ? undefined
    : "jitmem's JIT linker (jitlink/) is not in this build, so the run pattern has only llvm-jitlink's rows";
  if (!jitmem) skipped.push({ cell: '*/run/* [jitmem]', code: 'jitmem-run-unavailable', reason: jitmemReason! });

  const cells: RunCell[] = [];
  for (const workload of options.workloads) {
    for (const program of runPrograms(workload, options.workloadOptions)) {
      if (!options.withScript && program.name === 'python-script') continue;
      const refusal = tools ? await probeLlvmJitlink(tools, program) : undefined;
      if (refusal !== undefined)
        skipped.push({
          cell: `${program.name}/run/* [llvm-jitlink]`,
          code: 'llvm-jitlink-refuses',
          reason: `llvm-jitlink ${LLVM_MAJOR} refuses it: ${refusal}`,
        });
      cells.push(...planRunCells(program, options.mappers, jitmem, tools !== undefined && refusal === undefined));
    }
  }
  const section: EndToEndSection = {
    llvm: tools
      ? { available: true, version: tools.version, dir: tools.dir }
      : { available: false, dir: llvmDir, reason: lookup.reason! },
    jitmem: jitmem ? { available: true } : { available: false, reason: jitmemReason! },
    startup: [],
    headlines: [],
  };
  return { cells, section, skipped, tools };
}

/** What the run pattern's measuring steps share: the linkers, and the samples and round ends they add to. */
interface EndToEndRun {
  readonly options: EndToEndOptions;
  readonly tools: LlvmTools | undefined;
  readonly script: JitmemExecutorScript | undefined;
  readonly samples: Map<RunCell, Sample[]>;
  readonly roundEnds: Map<RunCell, number[]>;
  readonly rounds: number;
  /** Iterations of a cell per round. */
  readonly perRound: number;
  /** Counts an llvm-jitlink run refused by its own race and run again (isLlvmJitlinkRace). */
  readonly onLlvmRerun: () => void;
}

/**
 * A warm-up iteration per program and linker, unrecorded: the objects into the page cache, the
 * dynamic loader's and the compiler's caches warm. Each iteration is a fresh process, so nothing
 * else carries over from one to the next.
 */
async function warmUpPerRunLinkers(cells: readonly RunCell[], run: EndToEndRun): Promise<void> {
  const warmed = new Set<string>();
  for (const cell of cells) {
    if (cell.controller === 'warm') continue;
    const key = `${cell.program.name}\0${cell.linker}`;
    if (warmed.has(key)) continue;
    warmed.add(key);
    if (cell.linker === 'jitmem') await jitmemIteration(cell, -1);
    else await llvmIteration(run.tools!, run.script, cell, -1, run.onLlvmRerun);
  }
}

/** The run pattern's rows of `cells` so far, each with its rounds. */
function rowsSoFar(cells: readonly RunCell[], run: EndToEndRun): ResultRow[] {
  return cells.map((c) => withRounds(rowOf(c, run.samples.get(c)!), run.roundEnds.get(c) ?? []));
}

/**
 * The widest of a program's per-process speedups (jitmem's processes per run, llvm-jitlink's),
 * and the first whose verdict is not settled at `precision`; undefined when it has none yet.
 */
function perRunHeadlineState(
  programName: string,
  cells: readonly RunCell[],
  run: EndToEndRun,
  precision: number,
):
  | { widest: { label: string; percent: number }; unsettled?: ReturnType<typeof unsettledOf>; settledToStop: boolean }
  | undefined {
  const headlines = endToEndHeadlines(rowsSoFar(cells, run), 1).filter((h) => h.controller !== 'warm');
  let widest: { label: string; percent: number } | undefined;
  let unsettled: ReturnType<typeof unsettledOf> | undefined;
  let settledToStop = true;
  for (const h of headlines) {
    const label = `${programName}/run shared over ${h.baseline === 'rpc' ? 'RPC copy' : h.baseline} (${h.linker === 'jitmem' ? 'process per run' : `llvm-jitlink, ${h.executor === 'jitmem' ? "jitmem's" : "LLVM's"} executor`})`;
    const percent = halfWidthPercent(h);
    if (!widest || percent > widest.percent) widest = { label, percent };
    if (!unsettled && !isSettled(h, precision)) unsettled = unsettledOf(label, h, precision);
    if (!speedupSettledToStop(h, precision)) settledToStop = false;
  }
  return widest ? { widest, ...(unsettled ? { unsettled } : {}), settledToStop } : undefined;
}

/** Whether a program's per-process speedups are within the precision and settled (what the report calls converged). */
function perRunConverged(state: NonNullable<ReturnType<typeof perRunHeadlineState>>, precision: number): boolean {
  return state.widest.percent <= precision && state.unsettled === undefined;
}

/**
 * Whether a program's per-process speedups still need rounds: converged, and settled firmly
 * enough to stop before the time is spent (sampling.ts isSettledToStop), or not.
 */
function needsRounds(state: NonNullable<ReturnType<typeof perRunHeadlineState>>, precision: number): boolean {
  return !(perRunConverged(state, precision) && state.settledToStop);
}

/**
 * Processes per run and llvm-jitlink: iterations in interleaved rounds, each a process of its
 * own. Without a precision target, a fixed number. With one, a program's cells go on past the
 * least rounds until each of its per-process speedups is within the precision and its verdict
 * settled (sampling.ts isSettled), while their share of what is left for the run pattern lasts
 * (three rounds at least, the fewest a paired interval takes); a program that is done leaves
 * the rounds to the others. The warm controllers, whose speedups are the end-to-end headline,
 * get the rest. Returns each program's sampling account with a precision target.
 */
async function runPerRunRounds(perRun: readonly RunCell[], run: EndToEndRun): Promise<SamplingGroup[]> {
  const { options, samples, roundEnds } = run;
  const precision = options.precision;
  const started = performance.now();
  const perRunDeadline =
    precision !== undefined && options.deadline !== undefined
      ? started + (options.deadline - started) * PER_RUN_SHARE
      : Infinity;
  const programs = [...new Set(perRun.map((c) => c.program.name))];
  const cellsOf = new Map(programs.map((p) => [p, perRun.filter((c) => c.program.name === p)]));
  const roundsOf = new Map<string, number>(programs.map((p) => [p, 0]));
  let active = programs;
  for (let round = 0; active.length > 0; round++) {
    if (precision === undefined ? round >= run.rounds : round >= 3 && performance.now() > perRunDeadline) break;
    if (precision !== undefined && round >= run.rounds) {
      active = active.filter((p) => {
        const state = perRunHeadlineState(p, cellsOf.get(p)!, run, precision);
        return state !== undefined && needsRounds(state, precision);
      });
      if (active.length === 0) break;
    }
    const cells = active.flatMap((p) => cellsOf.get(p)!);
    options.beforeRound?.();
    for (const k of roundOrder(cells.length, round)) {
      const cell = cells[k]!;
      const list = samples.get(cell)!;
      for (let i = 0; i < run.perRound && (precision !== undefined || list.length < options.iterations); i++) {
        list.push(
          cell.linker === 'jitmem'
            ? await jitmemIteration(cell, list.length)
            : await llvmIteration(run.tools!, run.script, cell, list.length, run.onLlvmRerun),
        );
        options.onProgress?.(
          runCellName(cell),
          list.length,
          Math.max(options.iterations, list.length + (precision === undefined ? 0 : 1)),
        );
      }
      const ends = roundEnds.get(cell) ?? [];
      ends.push(list.length);
      roundEnds.set(cell, ends);
    }
    for (const p of active) roundsOf.set(p, roundsOf.get(p)! + 1);
  }
  if (precision === undefined) return [];
  // With a precision target a cell's count of iterations was open until the rounds stopped: now each is done.
  for (const cell of perRun) {
    const n = samples.get(cell)!.length;
    options.onProgress?.(runCellName(cell), n, n);
  }
  const elapsedMs = performance.now() - started;
  return programs.map((p) => {
    const state = perRunHeadlineState(p, cellsOf.get(p)!, run, precision);
    return runAccount(p, 'processes per run', {
      rounds: roundsOf.get(p)!,
      elapsedMs,
      converged: state === undefined || perRunConverged(state, precision),
      precision,
      ...state,
    });
  });
}

/**
 * A program's sampling account in the run pattern (its warm controllers, or its processes per
 * run): the widest speedup with its half-width, the headline left unsettled, and the rounds and
 * seconds the widest would need at the spread it saw.
 */
function runAccount(
  programName: string,
  policy: 'warm controller' | 'processes per run',
  figures: {
    rounds: number;
    elapsedMs: number;
    converged: boolean;
    precision: number;
    widest?: { label: string; percent: number };
    unsettled?: ReturnType<typeof unsettledOf>;
  },
): SamplingGroup {
  const { rounds, elapsedMs, converged, precision, widest, unsettled } = figures;
  const needed = widest && widest.percent > precision ? roundsNeeded(rounds, widest.percent, precision) : undefined;
  return {
    workload: programName,
    pattern: 'run',
    policy,
    rounds,
    elapsedMs: Math.round(elapsedMs),
    converged,
    ...(widest ? { widest: { label: widest.label, percent: Math.round(widest.percent * 100) / 100 } } : {}),
    ...(unsettled && !converged ? { unsettled } : {}),
    ...(needed !== undefined && Number.isFinite(needed)
      ? { roundsNeeded: needed, secondsNeeded: Math.round(((elapsedMs / Math.max(1, rounds)) * needed) / 1000) }
      : {}),
  };
}

/**
 * Starts a generation of a program's warm controllers one after another (each its first warm-up
 * iteration), so that no executor start overlaps another's, into `controllers` (the caller kills
 * them on a failure); then the rest of their warm-up, all at once: nothing of it is recorded, its
 * only job is each process's own (V8 compiling its linker), and on two CPUs side by side it takes
 * about 15% less of a generation than in turns. Generations start the cells in alternate orders,
 * so that being started first or last falls on each alike.
 */
async function startWarmControllers(
  group: readonly RunCell[],
  warmup: number,
  generation: number,
  controllers: SteppedWarmCell[],
): Promise<void> {
  for (const k of roundOrder(group.length, generation)) {
    const c = new SteppedWarmCell(group[k]!, warmup, MAX_WARM_ITERATIONS);
    controllers.push(c);
    await c.next();
  }
  await Promise.all(
    controllers.map(async (c) => {
      for (let i = 1; i < warmup; i++) await c.next();
    }),
  );
}

/** One pass over a generation's warm controllers in round order, an iteration each; counts them in `done`. */
async function warmPass(
  controllers: readonly SteppedWarmCell[],
  order: number,
  done: Map<RunCell, number>,
  options: EndToEndOptions,
): Promise<void> {
  for (const k of roundOrder(controllers.length, order)) {
    const c = controllers[k]!;
    await c.next();
    const n = (done.get(c.cell) ?? 0) + 1;
    done.set(c.cell, n);
    // With a precision target the count of iterations is open: the total shown stays one
    // ahead until the program is done (a log gets one line per cell, at its end).
    options.onProgress?.(runCellName(c.cell), n, options.precision === undefined ? options.iterations : n + 1);
  }
}

/**
 * One round of a program's warm controllers: a generation of them started, warmed up, measured
 * for `passes` passes side by side, then ended and every iteration verified; their measured
 * samples go to `run.samples`, and the round's end to `run.roundEnds`.
 */
async function warmGeneration(
  group: readonly RunCell[],
  run: EndToEndRun,
  generation: number,
  passes: number,
  done: Map<RunCell, number>,
): Promise<void> {
  const controllers: SteppedWarmCell[] = [];
  try {
    await startWarmControllers(group, run.options.warmup ?? WARM_CONTROLLER_WARMUP, generation, controllers);
    for (let pass = 0; pass < passes; pass++) await warmPass(controllers, generation + pass, done, run.options);
    for (const c of controllers) run.samples.get(c.cell)!.push(...(await c.finish()));
  } catch (err) {
    for (const c of controllers) c.kill();
    throw err;
  }
  for (const cell of group) {
    const ends = run.roundEnds.get(cell) ?? [];
    ends.push(run.samples.get(cell)!.length);
    run.roundEnds.set(cell, ends);
  }
}

/**
 * Warm controllers of one program, in rounds until they have their iterations, or with a
 * precision target until the shared-over-RPC speedup is known to it and its verdict settled, or
 * the program's share `budget` of the time left is spent. Each round is a generation of
 * controllers of its own: what a process happens to get for its whole life (where its heap and
 * code land, its executor's pages) moved a whole run's warm figures by 3-5% (python's `read`
 * phase 3.6 ms in one shared-memory controller, 7.2 ms in the next run's), which rounds inside
 * one process cannot show; over generations the interval holds it. Returns the program's
 * sampling account with a precision target.
 */
async function runWarmProgram(
  programName: string,
  group: readonly RunCell[],
  run: EndToEndRun,
  budgetOf: (groupStart: number) => number,
): Promise<SamplingGroup | undefined> {
  const { options } = run;
  const groupStart = performance.now();
  const budget = budgetOf(groupStart);
  const precision = options.precision;
  const passes = precision !== undefined ? WARM_PASSES_PER_ROUND : run.perRound;
  const done = new Map<RunCell, number>();
  let round = 0;
  let converged = precision === undefined;
  let widest: ReturnType<typeof warmHeadlineWidth>;
  for (let longest = 0; ;) {
    options.beforeRound?.();
    const roundStart = performance.now();
    await warmGeneration(group, run, round, passes, done);
    round++;
    longest = Math.max(longest, performance.now() - roundStart);
    if (precision === undefined) {
      if (round >= run.rounds) break;
      continue;
    }
    // Would one more round end past the budget? Then the least rounds only, or three (the fewest a paired interval
    // takes) once the budget is spent.
    const over = performance.now() + longest - groupStart > budget;
    if (round < Math.min(options.rounds, MIN_WARM_ROUNDS) && !(round >= 3 && over)) continue;
    widest = warmHeadlineWidth(
      group,
      group.map((c) => run.samples.get(c)!.map((s) => s.latency)),
      run.roundEnds,
    );
    // Narrow enough, and its interval clear of the edges of the verdict's band (sampling.ts verdictOf).
    converged = widest === undefined || (widest.percent <= precision && isSettled(widest.interval, precision));
    // Stopping before the budget is spent asks more of the verdict than reading it (sampling.ts isSettledToStop).
    if ((converged && (widest === undefined || isSettledToStop(widest.interval, precision, round))) || over) break;
    // Narrow enough but not settled, and the rounds settling would take, even were the speedup the value of its
    // interval farthest from the band's edges, do not fit in the budget: the time goes to the programs after this one.
    if (widest && widest.percent <= precision) {
      const settleIn = roundsToSettleAtBest(widest.interval, precision, round);
      if (performance.now() + (settleIn - round) * longest - groupStart > budget) break;
    }
  }
  if (precision === undefined) return undefined;
  for (const cell of group) options.onProgress?.(runCellName(cell), done.get(cell) ?? 0, done.get(cell) ?? 0);
  const unsettled =
    widest && !isSettled(widest.interval, precision)
      ? unsettledOf(widest.label, widest.interval, precision)
      : undefined;
  return runAccount(programName, 'warm controller', {
    rounds: round,
    elapsedMs: performance.now() - groupStart,
    converged,
    precision,
    ...(widest ? { widest: { label: widest.label, percent: widest.percent } } : {}),
    ...(unsettled ? { unsettled } : {}),
  });
}

export async function runEndToEnd(options: EndToEndOptions): Promise<EndToEndResult> {
  const { cells, section, skipped, tools } = await planEndToEnd(options);
  if (options.startupSamples > 0) {
    const s = await measureStartup(options.startupSamples, tools);
    section.startup = s.startup;
  }
  if (cells.length === 0) return { rows: [], section, skipped, sampling: [] };

  const script =
    tools && cells.some((c) => c.linker === 'llvm-jitlink' && c.executor === 'jitmem')
      ? new JitmemExecutorScript()
      : undefined;
  const rounds = Math.max(1, Math.min(options.rounds, options.iterations));
  const run: EndToEndRun = {
    options,
    tools,
    script,
    samples: new Map<RunCell, Sample[]>(cells.map((c) => [c, []])),
    roundEnds: new Map<RunCell, number[]>(),
    rounds,
    perRound: Math.ceil(options.iterations / rounds),
    onLlvmRerun: () => void (section.llvm.rerun = (section.llvm.rerun ?? 0) + 1),
  };
  const sampling: SamplingGroup[] = [];
  try {
    await warmUpPerRunLinkers(cells, run);
    sampling.push(
      ...(await runPerRunRounds(
        cells.filter((c) => c.controller !== 'warm'),
        run,
      )),
    );
    const warmPrograms = [...new Set(cells.filter((c) => c.controller === 'warm').map((c) => c.program.name))];
    for (const [pi, programName] of warmPrograms.entries()) {
      const group = cells.filter((c) => c.controller === 'warm' && c.program.name === programName);
      const budgetOf = (groupStart: number) =>
        options.precision !== undefined
          ? Math.max(0, ((options.deadline ?? Infinity) - groupStart) / (warmPrograms.length - pi))
          : Infinity;
      const account = await runWarmProgram(programName, group, run, budgetOf);
      if (account) sampling.push(account);
    }
  } finally {
    script?.dispose();
  }
  const rows = cells.map((c) => withRounds(rowOf(c, run.samples.get(c)!), run.roundEnds.get(c) ?? []));
  return { rows, section, skipped, sampling };
}
