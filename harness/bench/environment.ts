import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import * as native from '../../native/index.js';
import type { Placement, ReportEnv } from '../report/report.js';

/**
 * Where a benchmark ran: enough to tell whether two reports can be compared, and to read a
 * figure correctly (a round trip across CPUs costs several times one on the same CPU).
 */

function git(args: string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text);
    if (m) return m[1]!;
  } catch {
    // not Linux, or no os-release: fall back to Node's view
  }
  return `${os.type()} ${os.release()}`;
}

/**
 * jitmem's own commit, when it runs from its repository. An installed copy sits under
 * node_modules/ of someone else's project, whose repository is not ours to report.
 */
function ownCommit(repoDir: string): string | null {
  const top = git(['rev-parse', '--show-toplevel'], repoDir);
  if (top === null) return null;
  try {
    if (realpathSync(top) !== realpathSync(repoDir)) return null;
  } catch {
    return null;
  }
  return git(['rev-parse', 'HEAD'], repoDir);
}

export function captureEnvironment(placement: Placement, repoDir: string): ReportEnv {
  const commit = ownCommit(repoDir);
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no'], repoDir);
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    os: osName(),
    kernel: os.release(),
    arch: process.arch,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    pageSize: native.pageSize(),
    commit,
    dirty: status === null ? null : status.length > 0,
    placement,
  };
}

export type PinMode = Placement['pin'];

/** Idle time (in clock ticks) of each CPU so far, from /proc/stat; empty where it cannot be read. */
function idleTicks(): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
      // idle + iowait: time the CPU had nothing to run.
      if (m) out.set(Number(m[1]), Number(m[5]) + Number(m[6]));
    }
  } catch {
    // not Linux: no choice to make from the kernel's figures
  }
  return out;
}

/** How long the idle times are sampled before a CPU is chosen. */
const IDLE_SAMPLE_MS = 120;

/**
 * The allowed CPU that was idle the longest over a short sample: a process that keeps one CPU
 * busy (a CI runner's neighbour) is then not the one both processes are pinned to. Ties, and
 * machines without /proc/stat, keep the first allowed CPU.
 */
export function idlestCpu(allowed: readonly number[]): number {
  const first = allowed[0]!;
  if (allowed.length < 2) return first;
  const before = idleTicks();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, IDLE_SAMPLE_MS);
  const after = idleTicks();
  let best = first;
  let bestIdle = -1;
  for (const cpu of allowed) {
    const idle = (after.get(cpu) ?? 0) - (before.get(cpu) ?? 0);
    if (idle > bestIdle) [best, bestIdle] = [cpu, idle];
  }
  return best;
}

/**
 * Decides the CPUs of controller and executor for a pin mode: `same` puts both on the idlest
 * allowed CPU, `split` puts them on two different ones, `none` leaves the scheduler free.
 * Returns null sets when nothing is pinned.
 *
 * Why `same` is the bench's default: unpinned on this project's 2-vCPU machines, the scheduler
 * moves the executor between the controller's CPU and the other one from round to round, and a
 * round trip across CPUs costs several times one on the same CPU; the paired per-round speedups
 * spread two to four times wider than with both on one CPU (docs/measurement.md).
 */
export function cpuPlan(pin: PinMode): { controller: number[] | null; executor: number[] | null } {
  if (pin === 'none') return { controller: null, executor: null };
  const allowed = native.getAffinity(0);
  if (pin === 'same') {
    const cpu = idlestCpu(allowed);
    return { controller: [cpu], executor: [cpu] };
  }
  const first = allowed[0]!;
  const second = allowed.find((c) => c !== first);
  if (second === undefined) return { controller: [first], executor: [first] };
  return { controller: [first], executor: [second] };
}
