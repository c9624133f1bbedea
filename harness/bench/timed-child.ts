import net from 'node:net';
import { spawnChild, waitChild, type ChildExit } from '../../native/index.js';

/**
 * A process the bench times from its spawn to its end: llvm-jitlink's runs, jitmem's processes
 * per run, executor start-ups. Started by posix_spawn (native spawnChild), not child_process:
 * libuv's fork() copied the bench's own page tables into every spawn, so the bench's size was in
 * every figure it took of another process (3-7 ms of an executor's start-up of 5-9 ms; native/src/
 * spawn.cc has the figures), varying as its heap grew and shrank, and it pulled every speedup
 * between two such processes towards 1. A shell starts a user's program without that cost; so
 * does this.
 *
 * Its pipes are sockets on this process's event loop, keyed by the child's fd. `closed` settles
 * once the child has ended, been reaped, and every pipe has reached its end, as child_process's
 * 'close' does; pipes nobody reads are drained once the child has ended, as Node drains them.
 */
export class TimedChild {
  readonly pid: number;
  readonly pipes: ReadonlyMap<number, net.Socket>;
  readonly closed: Promise<ChildExit>;
  private ended = false;

  constructor(file: string, args: readonly string[], pipes: readonly number[]) {
    const child = spawnChild(file, [file, ...args], pipes);
    this.pid = child.pid;
    const sockets = new Map<number, net.Socket>();
    for (const [i, fd] of child.fds.entries()) {
      const socket = new net.Socket({ fd, readable: true, writable: true });
      // A write to a child that has ended fails (EPIPE); its reader sees that as the end of the run.
      socket.on('error', () => {});
      sockets.set(pipes[i]!, socket);
    }
    this.pipes = sockets;
    const exit = waitChild(this.pid).then((e) => {
      this.ended = true;
      for (const s of sockets.values()) s.resume();
      return e;
    });
    const ends = [...sockets.values()].map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    this.closed = Promise.all([exit, ...ends]).then(([e]) => e);
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
