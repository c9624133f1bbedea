import { spawn, type StdioOptions } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import * as native from '../native/index.js';

/**
 * `jitmem executor`: starts the native executor (`jitmem-executor`, built from executor/src/)
 * with the same arguments and the same transport, and ends with its status. The executor is a
 * program of its own, as LLVM's is: this command only hands it the descriptors it was given
 * (--fds) and the signals it receives, so that `jitmem executor` behaves exactly as
 * `jitmem-executor` does. `jitmem-executor --help` says what the flags mean.
 */

export interface ExecutorIO {
  readonly stdout: Writable | NodeJS.WritableStream;
  readonly stderr: Writable | NodeJS.WritableStream;
}

/** The descriptors an --fds transport names (default 3,4), or none for --listen/--connect/--help. */
export function transportFds(argv: readonly string[]): number[] {
  let fds: number[] = [3, 4];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    if (
      a === '--help' ||
      a === '-h' ||
      a.startsWith('--listen') ||
      a.startsWith('listen=') ||
      a.startsWith('--connect')
    )
      return [];
    if (a.startsWith('filedescs=')) a = `--fds=${a.slice('filedescs='.length)}`;
    const v = a === '--fds' ? argv[i + 1] : a.startsWith('--fds=') ? a.slice('--fds='.length) : undefined;
    const m = v === undefined ? null : /^(\d+),(\d+)$/.exec(v);
    if (m) fds = [Number(m[1]), Number(m[2])];
  }
  return fds;
}

function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

export async function runExecutor(argv: readonly string[], io: ExecutorIO): Promise<number> {
  const own = io.stdout === process.stdout && io.stderr === process.stderr;
  const stdio: Array<'inherit' | 'pipe' | 'ignore' | number> = own
    ? ['inherit', 'inherit', 'inherit']
    : ['inherit', 'pipe', 'pipe'];
  // The transport's descriptors go to the executor at the same numbers; one that is not open
  // here is left out, and the executor says so (ERR_BAD_FD).
  const fds = transportFds(argv).filter((fd) => fd > 2 && fd < 1024 && isOpen(fd));
  for (const fd of fds) {
    while (stdio.length < fd) stdio.push('ignore');
    stdio[fd] = fd;
  }
  // The executor dies with this process (PR_SET_PDEATHSIG), as it would with a controller.
  const child = spawn(native.executorBinary(), [...argv], {
    stdio: stdio as StdioOptions,
    env: { ...process.env, JITMEM_EXECUTOR_LAUNCHED: '1' },
  });
  // This process keeps its copies of the transport (it cannot tell them from Node's own
  // descriptors to close them) and exits as soon as the executor has.
  if (!own) {
    child.stdout!.on('data', (b: Buffer) => io.stdout.write(b));
    child.stderr!.on('data', (b: Buffer) => io.stderr.write(b));
  }
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}
