import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

/**
 * What `jitmem run` of a trivial object costs beside Node's own start (`node -e 0`): whole
 * processes, started in turn (node, run in process, run through shared memory, node, ...) so
 * that the machine's load falls on all three alike; the ratios of medians are the figures.
 */

export const STARTUP_BUDGET = { inprocess: 1.3, shared: 1.6 } as const;

// The CLI as users start it: package.json's bin.
const CLI = fileURLToPath(new URL('../cli.cjs', import.meta.url));

export interface StartupBenchResult {
  readonly rounds: number;
  /** Median wall time of each command, ms. */
  readonly nodeMs: number;
  readonly inprocessMs: number;
  readonly sharedMs: number;
  readonly ratio: { inprocess: number; shared: number };
  /** 95% interval of each ratio (ratioInterval). */
  readonly interval: { inprocess: [number, number]; shared: [number, number] };
}

/**
 * The 95% interval of median(b) / median(a) for rounds taken in turn: a percentile bootstrap
 * resampling whole rounds (both commands of a round stay together), 2,000 resamples from a fixed
 * seed so the same samples give the same interval.
 */
export function ratioInterval(a: readonly number[], b: readonly number[]): [number, number] {
  let seed = 0x9e3779b9;
  const random = (): number => {
    // xorshift32: enough to pick indices, and repeatable.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const ratios: number[] = [];
  for (let r = 0; r < 2000; r++) {
    const ra: number[] = [];
    const rb: number[] = [];
    for (let i = 0; i < a.length; i++) {
      const k = Math.floor(random() * a.length);
      ra.push(a[k]!);
      rb.push(b[k]!);
    }
    ratios.push(median(rb) / median(ra));
  }
  ratios.sort((x, y) => x - y);
  return [ratios[Math.floor(0.025 * ratios.length)]!, ratios[Math.ceil(0.975 * ratios.length) - 1]!];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wall time of one process from spawn to exit, ms; its exit status must be `status`. */
function timeProcess(command: string, args: readonly string[], status: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (code === status) resolve(ms);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}, expected ${status}: ${stderr.trim()}`));
    });
  });
}

/** Compiles `int main(void) { return 7; }` with the system's C compiler (CC, else cc). */
function trivialObject(dir: string): string {
  const source = path.join(dir, 'trivial.c');
  const object = path.join(dir, 'trivial.o');
  writeFileSync(source, 'int main(void) { return 7; }\n');
  execFileSync(process.env.CC?.trim() || 'cc', ['-O2', '-c', source, '-o', object], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return object;
}

export async function runStartupBench(options: {
  rounds?: number;
  write: (line: string) => void;
}): Promise<StartupBenchResult> {
  const rounds = options.rounds ?? 15;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-startup-'));
  try {
    const object = trivialObject(dir);
    const node = process.execPath;
    const commands = [
      { key: 'node', args: ['-e', '0'], status: 0 },
      { key: 'inprocess', args: [CLI, 'run', object], status: 7 },
      { key: 'shared', args: [CLI, 'run', '--mapper', 'shared', object], status: 7 },
    ] as const;
    const samples: Record<string, number[]> = { node: [], inprocess: [], shared: [] };
    // One warm-up round: the page cache holds Node, the CLI's modules and the executor.
    for (const c of commands) await timeProcess(node, c.args, c.status);
    for (let i = 0; i < rounds; i++)
      for (const c of commands) samples[c.key]!.push(await timeProcess(node, c.args, c.status));
    const nodeMs = median(samples.node!);
    const inprocessMs = median(samples.inprocess!);
    const sharedMs = median(samples.shared!);
    const ratio = { inprocess: inprocessMs / nodeMs, shared: sharedMs / nodeMs };
    const interval = {
      inprocess: ratioInterval(samples.node!, samples.inprocess!),
      shared: ratioInterval(samples.node!, samples.shared!),
    };
    const within = (i: [number, number]): string => `95% interval ${i[0].toFixed(2)}-${i[1].toFixed(2)}x`;
    const verdict = (r: number, budget: number): string => (r <= budget ? 'within budget' : 'OVER BUDGET');
    options.write(
      `jitmem run of a trivial object beside node -e 0 (medians of n = ${rounds} rounds, the three in turn; ratios of medians):`,
    );
    options.write(`  node -e 0                   ${nodeMs.toFixed(1).padStart(7)} ms`);
    options.write(
      `  jitmem run, in process      ${inprocessMs.toFixed(1).padStart(7)} ms   ${ratio.inprocess.toFixed(2)}x (${within(interval.inprocess)})   budget <= ${STARTUP_BUDGET.inprocess}x   ${verdict(ratio.inprocess, STARTUP_BUDGET.inprocess)}`,
    );
    options.write(
      `  jitmem run, shared memory   ${sharedMs.toFixed(1).padStart(7)} ms   ${ratio.shared.toFixed(2)}x (${within(interval.shared)})   budget <= ${STARTUP_BUDGET.shared}x   ${verdict(ratio.shared, STARTUP_BUDGET.shared)}`,
    );
    return { rounds, nodeMs, inprocessMs, sharedMs, ratio, interval };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
