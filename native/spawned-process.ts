import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { spawnChild, waitChild, type ChildExit } from './index.js';

/**
 * A child process started by posix_spawn (native spawnChild), not child_process: libuv's fork()
 * copies the parent's page tables before the exec and leaves its memory copy-on-write, so a spawn
 * costs more the more the parent holds (native/src/spawn.cc has the figures). The bench times its
 * processes from such a spawn, and the session starts its executor so.
 *
 * Its pipes are sockets on this process's event loop, keyed by the child's fd. `closed` settles
 * once the child has ended, been reaped, and every pipe has reached its end, as child_process's
 * 'close' does; pipes nobody reads are drained once the child has ended, as Node drains them.
 */
export class SpawnedProcess {
  readonly pid: number;
  private readonly pipes: ReadonlyMap<number, net.Socket>;
  /** Settles once the child has ended and been reaped; its pipes may still hold output. */
  readonly exited: Promise<ChildExit>;
  /** Settles once the child has ended, been reaped, and every pipe has reached its end. */
  readonly closed: Promise<ChildExit>;
  private ended = false;

  /**
   * `pipes`: the child's fds that get a pipe; `inherit`: which of its fds 0-2 are this process's
   * own (the rest of 0-2 are /dev/null).
   */
  constructor(file: string, args: readonly string[], pipes: readonly number[], inherit: readonly number[] = []) {
    const child = spawnChild(file, [file, ...args], pipes, inherit);
    this.pid = child.pid;
    const sockets = new Map<number, net.Socket>();
    for (const [i, fd] of child.fds.entries()) {
      const socket = new net.Socket({ fd, readable: true, writable: true });
      // A write to a child that has ended fails (EPIPE); its reader sees that as the end of the run.
      socket.on('error', () => {});
      sockets.set(pipes[i]!, socket);
    }
    this.pipes = sockets;
    this.exited = waitChild(this.pid).then((e) => {
      this.ended = true;
      for (const s of sockets.values()) s.resume();
      return e;
    });
    const ends = [...sockets.values()].map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    this.closed = Promise.all([this.exited, ...ends]).then(([e]) => e);
  }

  /** This process's end of the child's fd `fd` (one of the pipes it was started with). */
  pipe(fd: number): net.Socket {
    const s = this.pipes.get(fd);
    if (!s) throw new RangeError(`the child has no pipe on fd ${fd}`);
    return s;
  }

  /** Sends `signal` unless the child was already reaped (its pid may then be another process's). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.ended) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // It ended between the check and the signal: nothing left to stop.
    }
  }
}

/** What a child run to its end left: how it ended, all it wrote on each pipe, and the time it took. */
export interface FinishedChild {
  readonly exit: ChildExit;
  /** Everything the child wrote, by the fd of its pipe. */
  readonly output: ReadonlyMap<number, Buffer>;
  /** From just before the spawn until the child was reaped and its pipes had all closed. */
  readonly wholeMs: number;
  /** Whether it was killed for outliving `timeoutMs`. */
  readonly timedOut: boolean;
}

export interface RunToEndOptions {
  /** After this long the child is killed (SIGKILL). */
  readonly timeoutMs: number;
  /** Called with the child's pid just before it is killed for its time (to describe what it waits on). */
  readonly beforeKill?: (pid: number) => void;
}

/**
 * Runs `file` to its end, gathering everything it writes on `pipes`, and times it from the spawn:
 * what the bench does with each process it times (llvm-jitlink's runs, jitmem's processes per
 * run). Throws at once (ERR_SPAWN) when the child cannot be started, so that the caller can say
 * which process that was; the promise settles once it has ended and every pipe is read.
 */
export function runToEnd(
  file: string,
  args: readonly string[],
  pipes: readonly number[],
  options: RunToEndOptions,
): Promise<FinishedChild> {
  const t0 = performance.now();
  const child = new SpawnedProcess(file, args, pipes);
  const chunks = new Map<number, Buffer[]>(pipes.map((fd) => [fd, []]));
  for (const [fd, list] of chunks) child.pipe(fd).on('data', (b: Buffer) => list.push(b));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    options.beforeKill?.(child.pid);
    child.kill('SIGKILL');
  }, options.timeoutMs);
  return child.closed.then(
    (exit) => {
      const wholeMs = performance.now() - t0;
      clearTimeout(timer);
      const output = new Map([...chunks].map(([fd, list]) => [fd, Buffer.concat(list)]));
      return { exit, output, wholeMs, timedOut };
    },
    (e: unknown) => {
      clearTimeout(timer);
      throw e;
    },
  );
}
