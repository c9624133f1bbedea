import { readdirSync } from 'node:fs';
import * as native from '../../native/index.js';

/**
 * CPU affinity of every thread of a process, not only of its main thread: sched_setaffinity
 * of a pid moves that one thread, and Node's helper threads (V8's garbage collector and
 * compiler workers, libuv's pool) stay free to run on any CPU.
 *
 * Why it matters to the bench: with the main thread pinned and the helpers free, a helper that
 * last ran on the other CPU keeps that CPU in the process's address-space mask, so each
 * mprotect or munmap of the in-process mappers sends it a TLB-shootdown interrupt (costly in a
 * VM). Measured under a CPU hog on the other CPU: cray's in-process iteration was bimodal
 * (about 0.02 or 0.06 ms, the mix moving from round to round) and its speedups over RPC copy
 * spread ±10-20% over 8 rounds; with every thread pinned, ±3-6%.
 */

/** The thread ids of a process (Linux: /proc/PID/task), empty when they cannot be read. */
export function threadIds(pid: number | 'self' = 'self'): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`)
      .map(Number)
      .filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    return [];
  }
}

/**
 * Pins every thread of `pid` (this process by default) to `cpus`; returns how to give each
 * thread its affinity back. A thread that ended meanwhile is skipped; threads started later
 * inherit the affinity of the thread that starts them.
 */
export function pinAllThreads(cpus: readonly number[], pid: number | 'self' = 'self'): () => void {
  const before: Array<[number, number[]]> = [];
  for (const tid of threadIds(pid)) {
    try {
      const old = native.getAffinity(tid);
      native.setAffinity(tid, cpus);
      before.push([tid, old]);
    } catch {
      // The thread ended between listing and pinning.
    }
  }
  return () => {
    for (const [tid, cpus] of before) {
      try {
        native.setAffinity(tid, cpus);
      } catch {
        // Ended since.
      }
    }
  };
}
