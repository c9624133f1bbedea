import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI } from './executor-process.js';

/** Helpers for the linker's tests: programs compiled in the test, run natively and under `jitmem run`. */

export interface RunOutput {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs the real `jitmem run` (the compiled CLI) with the given arguments; stdout is kept as bytes. */
export function jitmemRun(
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 110_000);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** A temporary directory removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'jitmem-jitlink-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `source` to dir/name and compiles it to dir/<name>.o with the given flags. */
export function compile(dir: string, name: string, source: string, flags: readonly string[]): string {
  const src = path.join(dir, name);
  const obj = src.replace(/\.(c|cc|s)$/, '') + '.o';
  writeFileSync(src, source);
  const compiler = name.endsWith('.cc') ? 'g++' : 'gcc';
  execFileSync(compiler, [...flags, '-c', src, '-o', obj], { stdio: ['ignore', 'ignore', 'pipe'] });
  return obj;
}

/** Builds an archive from objects with GNU ar (with its symbol index). */
export function archive(dir: string, name: string, objects: readonly string[]): string {
  const out = path.join(dir, name);
  execFileSync('ar', ['rcs', out, ...objects], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** Links objects natively (gcc/g++ as the driver) and runs the result: the reference output. */
export function runNative(
  dir: string,
  name: string,
  inputs: readonly string[],
  cxx = false,
  noPie = false,
  args: readonly string[] = [],
): { status: number; stdout: Buffer } {
  const exe = path.join(dir, name);
  execFileSync(cxx ? 'g++' : 'gcc', [...(noPie ? ['-no-pie'] : []), ...inputs, '-o', exe], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    return { status: 0, stdout: execFileSync(exe, args, { stdio: ['ignore', 'pipe', 'ignore'] }) };
  } catch (err) {
    const e = err as { status: number; stdout: Buffer };
    return { status: e.status, stdout: e.stdout };
  }
}

export function hasCompiler(name: 'gcc' | 'g++'): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
