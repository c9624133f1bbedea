import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { JitmemError } from '../../core/errors.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { runPrograms, sha256Hex, type RunProgram } from '../../workloads/run-programs.js';
import type { WorkloadOptions } from '../../workloads/workload-sources.js';
import type { EndToEndSection, ExecutorName, LinkerName, LlvmMemmgr, MapperName, ResultRow, RunPhaseName } from '../report/report.js';
import { findLlvm, JitmemExecutorScript, LLVM_MAJOR, probeLlvmJitlink, runLlvmJitlink, type LlvmMode, type LlvmTools } from './llvm-jitlink.js';
import { JITMEM_RUN_PHASES, type MinorFaults } from './run-target.js';
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
  const where = c.mapper === 'inprocess' ? 'inprocess' : `${c.linker === 'llvm-jitlink' ? c.memmgr : c.mapper}@${c.executor}`;
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
  /** Unrecorded iterations a warm controller runs before its measured ones (default 5: CPython's link is still getting faster after 3). */
  readonly warmup?: number;
  readonly onProgress?: (cell: string, done: number, total: number) => void;
}

export interface EndToEndResult {
  readonly rows: ResultRow[];
  readonly section: EndToEndSection;
  readonly skipped: RunSkip[];
}

const workerPath = fileURLToPath(new URL('./run-worker.js', import.meta.url));
const targetPath = fileURLToPath(new URL('./jitmem-run-target.js', import.meta.url));

/** True when this build has jitmem's JIT linker wired to the run pattern. */
export function jitmemLinkerAvailable(): boolean {
  return existsSync(targetPath);
}

const LLVM_MAPPER: Record<LlvmMode, MapperName> = { inprocess: 'inprocess', generic: 'rpc', 'simple-remote': 'rpc', shared: 'shared' };


/** The cells of one program: jitmem's mappers; llvm-jitlink's modes over its own executor and over jitmem's. */
export function planRunCells(program: RunProgram, mappers: readonly MapperName[], jitmem: boolean, llvm: boolean): RunCell[] {
  const cells: RunCell[] = [];
  if (jitmem) {
    for (const controller of ['warm', 'process-per-run'] as const) {
      for (const mapper of mappers) cells.push({ program, linker: 'jitmem', mapper, executor: mapper === 'inprocess' ? 'none' : 'jitmem', controller });
    }
  }
  if (llvm) {
    for (const mode of ['inprocess', 'generic', 'simple-remote', 'shared'] as const) {
      if (!mappers.includes(LLVM_MAPPER[mode])) continue;
      cells.push({ program, linker: 'llvm-jitlink', mapper: LLVM_MAPPER[mode], executor: mode === 'inprocess' ? 'none' : 'llvm', ...(mode === 'inprocess' ? {} : { memmgr: mode }) });
    }
    // The fourth comparison: LLVM's linker with jitmem's executor (on one CPython program: the
    // script adds run time, not transport).
    for (const mode of program.name === 'python-script' ? [] : (['simple-remote', 'shared'] as const)) {
      if (mappers.includes(LLVM_MAPPER[mode])) cells.push({ program, linker: 'llvm-jitlink', mapper: LLVM_MAPPER[mode], executor: 'jitmem', memmgr: mode });
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
}

function mismatch(cell: RunCell, iteration: number, what: string, stderr: string): JitmemError {
  const name = runCellName(cell);
  return new JitmemError('ERR_RUN_MISMATCH', `${name}, iteration ${iteration}: ${what}${stderr.trim() ? `; stderr ends: ${stderr.trim().slice(-800)}` : ''}`, { cell: name, iteration });
}

/** One jitmem iteration: a worker process links, moves, runs and frees the program and reports its phases. */
function jitmemIteration(cell: RunCell, iteration: number): Promise<Sample> {
  const request: RunWorkerRequest = { program: cell.program, mapper: cell.mapper, executor: cell.executor === 'llvm' ? 'llvm' : 'jitmem' };
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const res: Buffer[] = [];
    const t0 = performance.now();
    const child = spawn(process.execPath, [workerPath, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    (child.stdio[RESULT_FD] as NodeJS.ReadableStream).on('data', (b: Buffer) => res.push(b));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new JitmemError('ERR_RUN_WORKER', `cannot start the run worker: ${e.message}`, {}, { cause: e }));
    });
    child.once('close', (code, signal) => {
      const whole = performance.now() - t0;
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      const text = Buffer.concat(res).toString('utf8').trim();
      if (!text) {
        reject(mismatch(cell, iteration, `the program ended its process (${signal ?? `status ${code}`}) before main returned, so its phases were not timed`, stderr));
        return;
      }
      const result = JSON.parse(text) as RunWorkerResult;
      if (!result.ok) {
        reject(new JitmemError(result.code, `${runCellName(cell)}, iteration ${iteration}: ${result.message}`, { cell: runCellName(cell) }));
        return;
      }
      const expected = cell.program.expected;
      if (result.exitStatus !== expected.exitStatus) {
        reject(mismatch(cell, iteration, `main returned ${result.exitStatus}, expected ${expected.exitStatus}`, stderr));
        return;
      }
      const sha = sha256Hex(Buffer.concat(out));
      if (sha !== expected.stdoutSha256) {
        reject(mismatch(cell, iteration, `stdout has sha256 ${sha}, expected ${expected.stdoutSha256} (${cell.program.description})`, stderr));
        return;
      }
      let latency = 0;
      for (const p of JITMEM_RUN_PHASES) latency += result.phases[p];
      resolve({ latency, whole, phases: { ...result.phases }, startup: result.startupMs, calls: result.calls, bytesSent: result.bytesSent });
    });
  });
}

/** Splits a warm controller's stdout at its markers: one buffer per iteration, the bytes after the last marker apart. */
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
 * verified: its exit status from its line on fd 3, its stdout as the bytes the worker's fd 1
 * carried before that iteration's marker.
 */
export function jitmemWarmCell(cell: RunCell, warmup: number, iterations: number, onIteration?: (done: number) => void): Promise<Sample[]> {
  const marker = `\0jitmem-run-iteration-end:${randomBytes(16).toString('hex')}\0`;
  const request: RunWorkerRequest = { program: cell.program, mapper: cell.mapper, executor: cell.executor === 'llvm' ? 'llvm' : 'jitmem', warm: { warmup, iterations, marker } };
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const lines: Array<WarmIterationResult | (RunWorkerResult & { ok: false })> = [];
    let pending = '';
    const child = spawn(process.execPath, [workerPath, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000 + 20_000 * (warmup + iterations));
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    (child.stdio[RESULT_FD] as NodeJS.ReadableStream).setEncoding('utf8');
    (child.stdio[RESULT_FD] as NodeJS.ReadableStream).on('data', (text: string) => {
      pending += text;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let line: WarmIterationResult;
        try {
          line = JSON.parse(text) as WarmIterationResult;
        } catch {
          line = { ok: false, index: lines.length, code: 'ERR_RUN_WORKER', message: `the warm controller reported ${JSON.stringify(text.slice(0, 200))}, not a result` };
        }
        lines.push(line);
        if (line.ok && line.index >= warmup) onIteration?.(line.index - warmup + 1);
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new JitmemError('ERR_RUN_WORKER', `cannot start the run worker: ${e.message}`, {}, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      const failed = lines.find((l) => !l.ok);
      if (failed && !failed.ok) {
        reject(new JitmemError(failed.code, `${runCellName(cell)}, iteration ${'index' in failed ? failed.index - warmup : '(opening the transport)'}: ${failed.message}`, { cell: runCellName(cell) }));
        return;
      }
      if (lines.length !== warmup + iterations) {
        reject(mismatch(cell, lines.length - warmup, `the warm controller ended (${signal ?? `status ${code}`}) after ${lines.length} of ${warmup + iterations} iterations; the program may have ended its process`, stderr));
        return;
      }
      const { parts, rest } = splitAtMarkers(Buffer.concat(out), Buffer.from(marker, 'latin1'));
      if (parts.length !== lines.length || rest.length > 0) {
        reject(mismatch(cell, 0, `the warm controller's stdout holds ${parts.length} iteration markers for ${lines.length} iterations and ${rest.length} bytes after the last`, stderr));
        return;
      }
      const expected = cell.program.expected;
      const samples: Sample[] = [];
      for (const [i, line] of (lines as Array<WarmIterationResult & { ok: true }>).entries()) {
        const iteration = i - warmup;
        if (line.exitStatus !== expected.exitStatus) {
          reject(mismatch(cell, iteration, `main returned ${line.exitStatus}, expected ${expected.exitStatus}`, stderr));
          return;
        }
        const sha = sha256Hex(parts[i]!);
        if (sha !== expected.stdoutSha256) {
          reject(mismatch(cell, iteration, `stdout has sha256 ${sha}, expected ${expected.stdoutSha256} (${cell.program.description})`, stderr));
          return;
        }
        if (iteration < 0) continue;
        let latency = 0;
        for (const p of JITMEM_RUN_PHASES) latency += line.phases[p];
        // The one executor start of the session goes with the first measured iteration.
        const startup = iteration === 0 ? (lines[0] as WarmIterationResult & { ok: true }).startupMs : undefined;
        samples.push({ latency, whole: line.wallMs, phases: { ...line.phases }, ...(startup ? { startup } : {}), calls: line.calls, bytesSent: line.bytesSent, ...(line.minorFaults ? { minorFaults: line.minorFaults } : {}) });
      }
      resolve(samples);
    });
  });
}

/** One llvm-jitlink iteration: its whole process timed, its phases read from --show-times. */
async function llvmIteration(tools: LlvmTools, script: JitmemExecutorScript | undefined, cell: RunCell, iteration: number): Promise<Sample> {
  const mode: LlvmMode = cell.memmgr ?? 'inprocess';
  const r = await runLlvmJitlink(tools, cell.program, { mode, executor: cell.executor === 'jitmem' ? 'jitmem' : 'llvm', ...(script ? { jitmemExecutor: script } : {}) });
  const expected = cell.program.expected;
  if (r.exitStatus !== expected.exitStatus) throw mismatch(cell, iteration, `llvm-jitlink exited with ${r.signal ?? `status ${r.exitStatus}`}, expected ${expected.exitStatus}`, r.stderrTail);
  if (r.stdoutSha256 !== expected.stdoutSha256) throw mismatch(cell, iteration, `stdout has sha256 ${r.stdoutSha256}, expected ${expected.stdoutSha256} (${cell.program.description})`, r.stderrTail);
  const other = Math.max(0, r.wholeMs - r.phases.read - r.phases.link - r.phases.run);
  return { latency: r.wholeMs, whole: r.wholeMs, phases: { read: r.phases.read, link: r.phases.link, run: r.phases.run, other }, calls: 0, bytesSent: 0 };
}

/**
 * Executor start-up, spawn to Setup, for both executors alike: each is spawned in turn
 * (interleaved) with the same pair of descriptors, read until its Setup message and closed.
 * Both are native programs: jitmem's (`jitmem-executor`) and LLVM's.
 */
export async function measureStartup(samples: number, llvm: LlvmTools | undefined): Promise<{ startup: EndToEndSection['startup'] }> {
  const kinds: Array<{ executor: 'jitmem' | 'llvm'; command: string; args: string[] }> = [{ executor: 'jitmem', command: executorBinary(), args: ['--fds', '3,4'] }];
  if (llvm) kinds.push({ executor: 'llvm', command: llvm.executor, args: ['filedescs=3,4'] });
  const spawnToSetup = async (command: string, args: string[]): Promise<number> => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    try {
      const session = await ExecutorSession.over(child.stdio[4] as NodeJS.ReadableStream as never, child.stdio[3] as NodeJS.WritableStream as never);
      const ms = performance.now() - t0;
      await session.close();
      await closed;
      return ms;
    } catch (err) {
      child.kill('SIGKILL');
      await closed;
      throw new JitmemError('ERR_EXECUTOR_STARTUP', `${command} ${args.join(' ')} did not send Setup: ${(err as Error).message}${stderr ? `; stderr: ${stderr.trim().slice(-500)}` : ''}`, { command });
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
    ...(cell.controller === 'warm' ? { iteration: toStats(samples.map((s) => s.whole)) } : { wholeProcess: toStats(samples.map((s) => s.whole)) }),
    ...(startups.length ? { startup: toStats(startups) } : {}),
    verified: { iterations: n, exitStatus: cell.program.expected.exitStatus, stdoutSha256: cell.program.expected.stdoutSha256 },
    bytes: { content: 0, zeroFill: 0, moved: Math.round(samples.reduce((a, s) => a + s.bytesSent, 0) / n) },
    roundTrips: samples.reduce((a, s) => a + s.calls, 0) / n,
    ...meanMinorFaults(samples),
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

export async function runEndToEnd(options: EndToEndOptions): Promise<EndToEndResult> {
  const skipped: RunSkip[] = [];
  const lookup = options.withoutLlvm ? { reason: 'left out (--executor without llvm)' } : findLlvm(options.llvmDir);
  const tools = lookup.tools;
  const llvmDir = tools?.dir ?? options.llvmDir ?? process.env.JITMEM_LLVM_DIR ?? '/usr/lib/llvm-22/bin';
  if (!tools) skipped.push({ cell: '*/run/* [llvm-jitlink]', code: 'llvm-jitlink-missing', reason: lookup.reason! });
  const jitmem = jitmemLinkerAvailable();
  const jitmemReason = jitmem ? undefined : "jitmem's JIT linker (jitlink/) is not in this build, so the run pattern has only llvm-jitlink's rows";
  if (!jitmem) skipped.push({ cell: '*/run/* [jitmem]', code: 'jitmem-run-unavailable', reason: jitmemReason! });

  const cells: RunCell[] = [];
  for (const workload of options.workloads) {
    for (const program of runPrograms(workload, options.workloadOptions)) {
      if (!options.withScript && program.name === 'python-script') continue;
      const refusal = tools ? await probeLlvmJitlink(tools, program) : undefined;
      if (refusal !== undefined) skipped.push({ cell: `${program.name}/run/* [llvm-jitlink]`, code: 'llvm-jitlink-refuses', reason: `llvm-jitlink ${LLVM_MAJOR} refuses it: ${refusal}` });
      cells.push(...planRunCells(program, options.mappers, jitmem, tools !== undefined && refusal === undefined));
    }
  }
  const section: EndToEndSection = {
    llvm: tools ? { available: true, version: tools.version, dir: tools.dir } : { available: false, dir: llvmDir, reason: lookup.reason! },
    jitmem: jitmem ? { available: true } : { available: false, reason: jitmemReason! },
    startup: [],
    headlines: [],
  };
  if (options.startupSamples > 0) {
    const s = await measureStartup(options.startupSamples, tools);
    section.startup = s.startup;
  }
  if (cells.length === 0) return { rows: [], section, skipped };

  const script = tools && cells.some((c) => c.linker === 'llvm-jitlink' && c.executor === 'jitmem') ? new JitmemExecutorScript() : undefined;
  const samples = new Map<RunCell, Sample[]>(cells.map((c) => [c, []]));
  const rounds = Math.max(1, Math.min(options.rounds, options.iterations));
  const perRound = Math.ceil(options.iterations / rounds);
  try {
    // A warm-up iteration per program and linker, unrecorded: the objects into the page cache,
    // the dynamic loader's and the compiler's caches warm. Each iteration is a fresh process, so
    // nothing else carries over from one to the next.
    const warmed = new Set<string>();
    for (const cell of cells) {
      if (cell.controller === 'warm') continue;
      const key = `${cell.program.name}\0${cell.linker}`;
      if (warmed.has(key)) continue;
      warmed.add(key);
      if (cell.linker === 'jitmem') await jitmemIteration(cell, -1);
      else await llvmIteration(tools!, script, cell, -1);
    }
    for (let round = 0; round < rounds; round++) {
      for (const cell of cells) {
        const list = samples.get(cell)!;
        // A warm controller runs its whole cell at once, in the first round: warm-up, then every measured iteration.
        if (cell.controller === 'warm') {
          if (round === 0) list.push(...(await jitmemWarmCell(cell, options.warmup ?? 5, options.iterations, (done) => options.onProgress?.(runCellName(cell), done, options.iterations))));
          continue;
        }
        for (let i = 0; i < perRound && list.length < options.iterations; i++) {
          list.push(cell.linker === 'jitmem' ? await jitmemIteration(cell, list.length) : await llvmIteration(tools!, script, cell, list.length));
          options.onProgress?.(runCellName(cell), list.length, options.iterations);
        }
      }
    }
  } finally {
    script?.dispose();
  }
  const rows = cells.map((c) => rowOf(c, samples.get(c)!));
  return { rows, section, skipped };
}
