import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of both processes, read at iteration boundaries: the controller's from the process's
 * own clock (every thread: the JS thread, V8's helpers, libuv's pool), the executor's from the
 * kernel's scheduler statistics of each of its threads (/proc/PID/task/TID/schedstat, first
 * field: nanoseconds on a CPU). That works for any executor process (jitmem's in Node, a
 * native one, LLVM's) without asking it anything, so reading it costs the executor nothing.
 * CPU time leaves out the time a process waited for a CPU another process had, which wall time
 * counts; a spell in which the CPU itself runs slower (a VM whose host is busy) moves both alike
 * (the report's machine speed, machine-speed.ts, tells the two apart).
 */
export interface CpuReading {
  /** Milliseconds of CPU the controller has used. */
  readonly controller: number;
  /** Milliseconds of CPU the executor has used, or null in-process or when it cannot be read. */
  readonly executor: number | null;
}

export class CpuClock {
  private tasks: string[] | undefined;

  constructor(private readonly executorPid?: number) {}

  read(): CpuReading {
    const u = process.cpuUsage();
    return { controller: (u.user + u.system) / 1000, executor: this.executorMs() };
  }

  /** Finds the executor's threads again (at the start of a round: a thread may have come or gone). */
  refresh(): void {
    this.tasks = undefined;
  }

  private executorMs(): number | null {
    if (this.executorPid === undefined) return null;
    try {
      this.tasks ??= readdirSync(`/proc/${this.executorPid}/task`).map(
        (tid) => `/proc/${this.executorPid}/task/${tid}/schedstat`,
      );
      let ns = 0;
      for (const file of this.tasks) {
        try {
          ns += Number(readFileSync(file, 'latin1').split(' ', 1)[0]);
        } catch {
          // A thread that ended since the list was taken; its time is gone from the sum either way.
          this.tasks = undefined;
        }
      }
      return ns / 1e6;
    } catch {
      return null;
    }
  }
}

/** The CPU each process used between two readings, in milliseconds. */
export function cpuBetween(after: CpuReading, before: CpuReading): CpuReading {
  return {
    controller: after.controller - before.controller,
    executor: after.executor !== null && before.executor !== null ? after.executor - before.executor : null,
  };
}
