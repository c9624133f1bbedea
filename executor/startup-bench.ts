#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import * as native from '../native/index.js';
import { DEFAULT_LLVM_EXECUTOR, ExecutorSession } from '../session/executor-session.js';

/**
 * Start-up and idle memory of jitmem's executor beside LLVM's, in the same run (issue 19's
 * budgets: spawn to Setup at most 3x llvm-jitlink-executor's median, idle RSS at most 2x).
 * Figures, not a test: the two executors are spawned in turn, each with the pair of
 * descriptors a controller hands it, timed from spawn to its Setup message; its VmRSS is read
 * once it sits idle after Setup and one round trip.
 *
 *   node dist/executor/startup-bench.js [--samples N] [--llvm-executor PATH]
 */

interface Sample {
  readonly ms: number;
  readonly rssKiB: number;
}

async function once(command: string, args: readonly string[]): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    const session = await ExecutorSession.over(child.stdio[4] as Readable, child.stdio[3] as Writable);
    const ms = performance.now() - t0;
    // One call answered: the executor has done its start-up work and waits for the next.
    await session.lookup(['malloc']);
    const rssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN);
    await session.close();
    return { ms, rssKiB };
  } finally {
    child.kill('SIGKILL');
    await closed;
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(argv: readonly string[]): Promise<number> {
  let samples = 30;
  let llvm = DEFAULT_LLVM_EXECUTOR;
  const usage = 'usage: node dist/executor/startup-bench.js [--samples N] [--llvm-executor PATH]\n';
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag !== '--samples' && flag !== '--llvm-executor') {
      process.stderr.write(usage);
      return 2;
    }
    const value = argv[++i];
    if (value === undefined) {
      process.stderr.write(`${flag} needs a value\n${usage}`);
      return 2;
    }
    if (flag === '--samples') samples = Number(value);
    else llvm = value;
  }
  if (!Number.isSafeInteger(samples) || samples < 1) {
    process.stderr.write(`--samples expects a whole number >= 1; got ${samples}\n`);
    return 2;
  }
  const kinds = [{ name: "jitmem's jitmem-executor", command: native.executorBinary(), args: ['--fds', '3,4'] }];
  if (existsSync(llvm)) kinds.push({ name: "LLVM's llvm-jitlink-executor", command: llvm, args: ['filedescs=3,4'] });
  else process.stderr.write(`no ${llvm}: jitmem's executor alone, no budget to compare with\n`);
  // One of each first, unrecorded: the page cache and the dynamic loader's caches warm up.
  for (const k of kinds) await once(k.command, k.args);
  const got = kinds.map(() => [] as Sample[]);
  for (let i = 0; i < samples; i++) for (const [j, k] of kinds.entries()) got[j]!.push(await once(k.command, k.args));
  const ms = got.map((g) => median(g.map((s) => s.ms)));
  const rss = got.map((g) => median(g.map((s) => s.rssKiB)));
  for (const [j, k] of kinds.entries()) {
    process.stdout.write(
      `executor start-up, spawn to Setup, ${k.name}: median ${ms[j]!.toFixed(2)} ms (n=${samples}); idle RSS median ${(rss[j]! / 1024).toFixed(1)} MiB\n`,
    );
  }
  if (kinds.length === 2) {
    const startOk = ms[0]! <= 3 * ms[1]!;
    const rssOk = rss[0]! <= 2 * rss[1]!;
    process.stdout.write(
      `start-up: ${ms[0]!.toFixed(2)} ms against a budget of ${(3 * ms[1]!).toFixed(2)} ms (3x LLVM's, same run): ${startOk ? 'within' : 'OVER'}\n`,
    );
    process.stdout.write(
      `idle RSS: ${(rss[0]! / 1024).toFixed(1)} MiB against a budget of ${((2 * rss[1]!) / 1024).toFixed(1)} MiB (2x LLVM's): ${rssOk ? 'within' : 'OVER'}\n`,
    );
    return startOk && rssOk ? 0 : 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (err: unknown) => {
    process.stderr.write(`startup-bench: ${(err as Error).message}\n`);
    process.exit(70);
  },
);
