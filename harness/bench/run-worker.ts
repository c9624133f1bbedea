import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { JitmemError } from '../../core/errors.js';
import type { MapperName } from '../report/report.js';
import type { RunProgram } from '../../workloads/run-programs.js';
import {
  JITMEM_RUN_PHASES,
  type JitmemRunPhase,
  type MinorFaults,
  type OpenRunTarget,
  type RunClock,
} from './run-target.js';
import { CpuClock, cpuBetween } from './cpu-clock.js';

/**
 * One iteration of a jitmem `run` cell, in a process of its own, as llvm-jitlink's iterations
 * are: the program may change process-wide state (signal handlers, stdio, atexit), print to
 * the process's stdout (in-process it is this process's own), or end the process with exit().
 * The bench spawns this file with the request as argv[2] and a pipe on fd 3, and reads the
 * program's stdout from fd 1; the phase times, the executor's start-up and the exit status
 * come back as one JSON line on fd 3.
 */

export interface RunWorkerRequest {
  readonly program: RunProgram;
  readonly mapper: MapperName;
  readonly executor: 'jitmem' | 'llvm';
  /**
   * A warm controller: this process runs `warmup` + `iterations` iterations over one transport
   * (one executor session), as a long-running JIT would, and reports each as a line on fd 3.
   * After each iteration it writes `marker` to fd 1, where the program's output went (its own
   * stdio in-process; the executor's, which shares this process's fd 1, out of process): the
   * runner flushes the program's stdio before it returns, so the bytes before the marker are
   * exactly that iteration's output.
   */
  readonly warm?: {
    readonly warmup: number;
    readonly iterations: number;
    readonly marker: string;
    /**
     * Run each iteration (warm-up included) only when a byte arrives on fd 0, and stop when fd 0
     * ends (then `iterations` is a bound): the bench interleaves the warm controllers of one
     * program iteration by iteration, so that the machine's drift falls on all alike.
     */
    readonly stepped?: boolean;
  };
}

/** One iteration of a warm controller, as a line on fd 3. */
export type WarmIterationResult =
  | {
      readonly ok: true;
      readonly index: number;
      readonly phases: Record<JitmemRunPhase, number>;
      /** Wall time of the whole iteration in the controller. */
      readonly wallMs: number;
      readonly exitStatus: number;
      readonly calls: number;
      readonly bytesSent: number;
      /** CPU milliseconds of the iteration: this process's, and the executor's (null in-process). */
      readonly cpu?: { readonly controller: number; readonly executor: number | null };
      /** The executor's spawn to Setup, on the first iteration only (0 in-process). */
      readonly startupMs?: number;
      /** Minor page faults during the iteration, the controller's and the executor's. */
      readonly minorFaults?: MinorFaults;
    }
  | { readonly ok: false; readonly index: number; readonly code: string; readonly message: string };

export type RunWorkerResult =
  | {
      readonly ok: true;
      readonly phases: Record<JitmemRunPhase, number>;
      /** Executor spawn to Setup (0 in-process). */
      readonly startupMs: number;
      readonly exitStatus: number;
      readonly calls: number;
      readonly bytesSent: number;
      /** CPU milliseconds of the run: this process's, and the executor's (null in-process). */
      readonly cpu?: { readonly controller: number; readonly executor: number | null };
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

export const RESULT_FD = 3;

class Clock implements RunClock {
  readonly totals = Object.fromEntries(JITMEM_RUN_PHASES.map((p) => [p, 0])) as Record<JitmemRunPhase, number>;

  async time<T>(phase: JitmemRunPhase, fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.totals[phase] += performance.now() - t0;
    }
  }

  add(phase: JitmemRunPhase, ms: number): void {
    this.totals[phase] += ms;
  }
}

export async function runWorkerIteration(request: RunWorkerRequest, open: OpenRunTarget): Promise<RunWorkerResult> {
  const t0 = performance.now();
  const target = await open(request.mapper, request.executor);
  const startupMs = request.mapper === 'inprocess' ? 0 : performance.now() - t0;
  try {
    const before = target.counters();
    const clock = new Clock();
    const cpu = new CpuClock(target.executorPid);
    const cpuBefore = cpu.read();
    const exitStatus = await target.runToExit(request.program, clock);
    const used = cpuBetween(cpu.read(), cpuBefore);
    const after = target.counters();
    return {
      ok: true,
      phases: clock.totals,
      startupMs,
      exitStatus,
      calls: after.calls - before.calls,
      bytesSent: after.bytesSent - before.bytesSent,
      cpu: used,
    };
  } finally {
    await target.close();
  }
}

/** Writes all of `data` to a descriptor that may be non-blocking (a pipe the reader drains). */
function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

function errorFields(err: unknown): { code: string; message: string } {
  const e = err as { code?: string; message?: string };
  return {
    code: err instanceof JitmemError || typeof e?.code === 'string' ? e.code! : 'ERR_RUN_WORKER',
    message: e?.message ?? String(err),
  };
}

function faultDelta(after: MinorFaults, before: MinorFaults): MinorFaults {
  const executor =
    after.executor !== undefined && before.executor !== undefined ? after.executor - before.executor : undefined;
  return { controller: after.controller - before.controller, ...(executor !== undefined ? { executor } : {}) };
}

/** A function that resolves true for each byte that arrives on fd 0 and false once fd 0 has ended. */
function stdinSteps(): () => Promise<boolean> {
  let credits = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  process.stdin.on('data', (b: Buffer) => {
    credits += b.length;
    wake?.();
  });
  process.stdin.on('end', () => {
    ended = true;
    wake?.();
  });
  return async () => {
    while (credits === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
    if (credits === 0) return false;
    credits--;
    return true;
  };
}

/** The warm controller: one transport, warm-up and measured iterations back to back, each reported as it ends. */
export async function runWarmController(request: RunWorkerRequest, open: OpenRunTarget): Promise<boolean> {
  const warm = request.warm!;
  const marker = Buffer.from(warm.marker, 'latin1');
  const total = warm.warmup + warm.iterations;
  const t0 = performance.now();
  const target = await open(request.mapper, request.executor);
  const startupMs = request.mapper === 'inprocess' ? 0 : performance.now() - t0;
  try {
    const steps = warm.stepped ? stdinSteps() : undefined;
    const cpu = new CpuClock(target.executorPid);
    for (let index = 0; index < total; index++) {
      if (steps && !(await steps())) break;
      let line: WarmIterationResult;
      try {
        // Read outside the iteration's window: the executor's counters cost a call of their own.
        const faultsBefore = await target.minorFaults?.();
        const before = target.counters();
        const clock = new Clock();
        const cpuBefore = cpu.read();
        const start = performance.now();
        const exitStatus = await target.runToExit(request.program, clock);
        const wallMs = performance.now() - start;
        const used = cpuBetween(cpu.read(), cpuBefore);
        const after = target.counters();
        const faultsAfter = await target.minorFaults?.();
        const minorFaults = faultsBefore && faultsAfter ? faultDelta(faultsAfter, faultsBefore) : undefined;
        line = {
          ok: true,
          index,
          phases: clock.totals,
          wallMs,
          exitStatus,
          calls: after.calls - before.calls,
          bytesSent: after.bytesSent - before.bytesSent,
          cpu: used,
          ...(index === 0 ? { startupMs } : {}),
          ...(minorFaults ? { minorFaults } : {}),
        };
      } catch (err) {
        line = { ok: false, index, ...errorFields(err) };
      }
      writeAll(1, marker);
      writeAll(RESULT_FD, Buffer.from(JSON.stringify(line) + '\n'));
      if (!line.ok) return false;
    }
    return true;
  } finally {
    await target.close();
  }
}

async function main(): Promise<number> {
  let result: RunWorkerResult;
  try {
    const request = JSON.parse(process.argv[2] ?? '') as RunWorkerRequest;
    // By name at run time: the bench checks that this build has the linker before it starts workers.
    const targetModule = './jitmem-run-target.js';
    const { openRunTarget } = (await import(targetModule)) as { openRunTarget: OpenRunTarget };
    if (request.warm) return (await runWarmController(request, openRunTarget)) ? 0 : 1;
    result = await runWorkerIteration(request, openRunTarget);
  } catch (err) {
    result = { ok: false, ...errorFields(err) };
  }
  writeSync(RESULT_FD, JSON.stringify(result) + '\n');
  return result.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (status) => process.exit(status),
    () => process.exit(70),
  );
}
