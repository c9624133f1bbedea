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

/**
 * Decides the CPUs of controller and executor for a pin mode: `same` puts both on the first
 * allowed CPU, `split` puts them on two different ones, `none` leaves the scheduler free.
 * Returns null sets when nothing is pinned.
 */
export function cpuPlan(pin: PinMode): { controller: number[] | null; executor: number[] | null } {
  if (pin === 'none') return { controller: null, executor: null };
  const allowed = native.getAffinity(0);
  const first = allowed[0]!;
  if (pin === 'same') return { controller: [first], executor: [first] };
  const second = allowed.find((c) => c !== first);
  if (second === undefined) return { controller: [first], executor: [first] };
  return { controller: [first], executor: [second] };
}
