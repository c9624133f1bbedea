import net from 'node:net';
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
