import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { FrameParser, type Frame } from '../../protocol/frame.js';
import { executorBinary } from '../../native/index.js';
import type { ExecutorSession } from '../../session/executor-session.js';

/** Helpers for tests that drive executor processes by hand, byte by byte. */

export const CLI = fileURLToPath(new URL('../../harness/cli.js', import.meta.url));
/** The native executor program (`jitmem-executor`): what `jitmem executor` starts. */
export const EXECUTOR = executorBinary();
export const LLVM_BIN = '/usr/lib/llvm-22/bin';
export const LLVM_EXECUTOR = `${LLVM_BIN}/llvm-jitlink-executor`;
export const LLVM_JITLINK = `${LLVM_BIN}/llvm-jitlink`;

export function llvmInstalled(): boolean {
  return existsSync(LLVM_EXECUTOR) && existsSync(LLVM_JITLINK);
}

/** Shared-memory objects in /dev/shm whose name starts with `prefix`. */
export function shmObjects(prefix = 'jitmem_'): string[] {
  return readdirSync('/dev/shm').filter((n) => n.startsWith(prefix));
}

/** Polls until `done`, or until a generous watchdog runs out (no timing assertion: the caller's fails on a hang). */
export async function eventually(done: () => boolean, watchdogMs = 20_000): Promise<boolean> {
  for (let waited = 0; waited < watchdogMs; waited += 20) {
    if (done()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return done();
}

/**
 * A collected session's stdout once it holds at least `length` characters (eventually). The
 * executor's stdout is a pipe of its own, read apart from its socket, so a call's answer can
 * arrive before what the program printed during it.
 */
export async function stdoutAtLeast(session: ExecutorSession, length: number): Promise<string> {
  await eventually(() => session.stdout.length >= length);
  return session.stdout;
}

/** True while a process with this pid exists (a zombie counts until reaped). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface RawExecutor {
  readonly child: ChildProcess;
  readonly toExecutor: Writable;
  readonly fromExecutor: Readable;
  /** Frames received so far, in order. */
  readonly frames: Frame[];
  /** Resolves with the next frame (or null at EOF). */
  nextFrame(): Promise<Frame | null>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Spawns `jitmem-executor --fds 3,4` with the pipes left raw. */
export function spawnRawExecutor(extraArgs: readonly string[] = []): RawExecutor {
  const child = spawn(EXECUTOR, ['--fds', '3,4', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  child.stdout!.resume();
  // 'close', not 'exit': it comes after the child's stderr has been read to the end.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const parser = new FrameParser(1 << 30);
  const frames: Frame[] = [];
  const waiters: Array<(f: Frame | null) => void> = [];
  let read = 0;
  let ended = false;
  const fromExecutor = child.stdio[4] as Readable;
  fromExecutor.on('data', (chunk: Buffer) => {
    for (const f of parser.push(chunk)) {
      frames.push(f);
    }
    while (waiters.length > 0 && read < frames.length) waiters.shift()!(frames[read++]!);
  });
  const onEnd = (): void => {
    ended = true;
    while (waiters.length > 0) waiters.shift()!(null);
  };
  fromExecutor.on('end', onEnd);
  fromExecutor.on('close', onEnd);
  fromExecutor.on('error', onEnd);
  const toExecutor = child.stdio[3] as Writable;
  toExecutor.on('error', () => {});
  return {
    child,
    toExecutor,
    fromExecutor,
    frames,
    nextFrame: () =>
      new Promise((resolve) => {
        if (read < frames.length) resolve(frames[read++]!);
        else if (ended) resolve(null);
        else waiters.push(resolve);
      }),
    exit,
    stderr: () => err,
  };
}

/** The protection the kernel gives the page at `addr` of process `pid` ('r-x', 'rw-', ...), from /proc/PID/maps. */
export function pageProtection(pid: number, addr: number): string {
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{3})/.exec(line);
    if (m && parseInt(m[1]!, 16) <= addr && addr < parseInt(m[2]!, 16)) return m[3]!;
  }
  return 'unmapped';
}
