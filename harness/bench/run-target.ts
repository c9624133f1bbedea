import type { MapperName } from '../report/report.js';
import type { RunProgram } from '../../workloads/run-programs.js';

/**
 * What the `run` pattern needs of jitmem's JIT linker, kept this small so that the pattern does
 * not depend on how the linker is put together: open a transport into an executor, then link,
 * move, run and free one program, timing each phase through the clock it is given.
 */

/** The phases of one jitmem iteration, in the order they happen. */
export type JitmemRunPhase = 'read' | 'link' | 'reserve' | 'write' | 'initialize' | 'run' | 'deinitialize' | 'release';
export const JITMEM_RUN_PHASES: readonly JitmemRunPhase[] = [
  'read',
  'link',
  'reserve',
  'write',
  'initialize',
  'run',
  'deinitialize',
  'release',
];

export interface RunClock {
  /** Adds the time `fn` takes to `phase`. */
  time<T>(phase: JitmemRunPhase, fn: () => Promise<T> | T): Promise<T>;
  /** Adds `ms` measured elsewhere (by the linker itself, say) to `phase`. */
  add(phase: JitmemRunPhase, ms: number): void;
}

export interface RunTarget {
  /** Links `program`, moves it in, runs main to its return, frees it; returns main's status. */
  runToExit(program: RunProgram, clock: RunClock): Promise<number>;
  /** Controller→executor calls and bytes sent so far (zeros in-process). */
  counters(): { calls: number; bytesSent: number };
  /** Minor page faults so far, of this process and of the executor (when it counts them). */
  minorFaults?(): Promise<MinorFaults>;
  /** The executor's process id, out of process (its CPU time is read from outside). */
  readonly executorPid?: number;
  close(): Promise<void>;
}

/** Opens a transport: for shared and rpc, spawns the executor (its start-up is timed apart from the phases). */
export type OpenRunTarget = (mapper: MapperName, executor: 'jitmem' | 'llvm') => Promise<RunTarget>;

/** Minor page faults of the controller and, when its executor counts them, of the executor. */
export interface MinorFaults {
  readonly controller: number;
  readonly executor?: number;
}
