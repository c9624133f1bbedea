import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { ensureOutputDirectory } from '../../core/files.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitmemError } from '../../core/errors.js';
import { importOptional } from '../optional-dependency.js';

/**
 * Runs a jitmem benchmark under a profiler: clinic flame (a flame graph, HTML), clinic doctor
 * (event-loop delay, CPU, memory and handles over time, HTML) or V8's own CPU profiler
 * (`--cpu-prof`, a .cpuprofile that Chrome DevTools and speedscope open). Clinic is driven
 * through its API; it is unmaintained, so when it fails the run is repeated under the V8
 * profiler and the result says why.
 *
 * The profiled program is `node dist/harness/cli.js <subcommand> <args>`: `bench` by default;
 * tests profile `bench-alloc`, which is quicker.
 */

export type ProfileTool = 'flame' | 'doctor' | 'cpuprof';
/**
 * Which process is profiled: the controller (the bench). `executor` and `both` are refused with
 * how to profile the native executor instead.
 */
export type ProfileTarget = 'controller' | 'executor' | 'both';
export const PROFILE_TARGETS: readonly ProfileTarget[] = ['controller', 'executor', 'both'];
export const PROFILE_TOOLS: readonly ProfileTool[] = ['flame', 'doctor', 'cpuprof'];

export interface ProfileOptions {
  readonly tool: ProfileTool;
  /** Where the profile goes (created when missing). */
  readonly outDir: string;
  /** Arguments of the profiled subcommand. */
  readonly args: readonly string[];
  /** The jitmem subcommand profiled (default `bench`). */
  readonly subcommand?: string;
  /** The process profiled (default the controller, the only one V8 and clinic can see into). */
  readonly target?: ProfileTarget;
  /** Makes the clinic tool (default: @clinic/flame or @clinic/doctor); tests pass one that fails. */
  readonly loadClinic?: (tool: 'flame' | 'doctor', outDir: string) => ClinicTool;
}

export interface ProfileResult {
  readonly requested: ProfileTool;
  /** The tool that made the profile: `cpuprof` after a clinic failure. */
  readonly tool: ProfileTool;
  /** The file to open: an HTML page for clinic, a .cpuprofile for cpuprof. */
  readonly file: string;
  /** Why clinic was not used, when it failed. */
  readonly fallbackReason?: string;
  /** Exit status of the profiled command, where the tool reports it (cpuprof). */
  readonly exitStatus?: number | null;
  /** The command that was profiled. */
  readonly command: readonly string[];
}

const cliPath = fileURLToPath(new URL('../cli.js', import.meta.url));

export interface ClinicTool {
  collect(args: string[], cb: (err: Error | null, dataPath: string) => void): void;
  visualize(dataPath: string, htmlPath: string, cb: (err: Error | null) => void): void;
}

type ClinicToolClass = new (settings: object) => ClinicTool;

/** Clinic is an optional package: loaded when a profile asks for it, with one clear error when it is not installed. */
async function loadClinicTool(tool: 'flame' | 'doctor'): Promise<ClinicToolClass> {
  const name = tool === 'flame' ? '@clinic/flame' : '@clinic/doctor';
  // Clinic ships no types; the name goes through a variable so TypeScript does not look for them.
  const load = () => import(name) as Promise<{ default: ClinicToolClass }>;
  return (await importOptional(load, [name], `jitmem profile --tool ${tool}`)).default;
}

/**
 * Clinic keeps state per process (0x's working files): two collections at once in one process break
 * each other, so they queue.
 */
let clinicQueue: Promise<unknown> = Promise.resolve();

function runClinic(
  clinic: () => ClinicTool,
  tool: 'flame' | 'doctor',
  outDir: string,
  command: string[],
): Promise<string> {
  const run = clinicQueue.then(() => runClinicNow(clinic(), tool, outDir, command));
  // The queue only orders the runs: this run's failure reaches its caller through `run`, and
  // must not fail the runs queued after it.
  clinicQueue = run.catch(() => undefined);
  return run;
}

async function runClinicNow(
  clinic: ClinicTool,
  tool: 'flame' | 'doctor',
  outDir: string,
  command: string[],
): Promise<string> {
  const dataPath = await new Promise<string>((resolve, reject) =>
    clinic.collect(command, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const html = `${dataPath}.html`;
  await new Promise<void>((resolve, reject) =>
    clinic.visualize(dataPath, html, (err) => (err ? reject(err) : resolve())),
  );
  if (!existsSync(html) || statSync(html).size === 0)
    throw new Error(`clinic ${tool} reported success but wrote no page at ${html}`);
  return html;
}

async function runCpuProf(outDir: string, command: string[]): Promise<{ file: string; exitStatus: number | null }> {
  const before = new Set(existsSync(outDir) ? readdirSync(outDir) : []);
  const [node, ...rest] = command;
  const exitStatus = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(node!, ['--cpu-prof', '--cpu-prof-dir', outDir, ...rest], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  const made = readdirSync(outDir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (made.length === 0) {
    throw new JitmemError(
      'ERR_PROFILE_FAILED',
      `the V8 profiler wrote no .cpuprofile in ${outDir} (the profiled command exited with status ${exitStatus})`,
      { outDir, exitStatus },
    );
  }
  // The controller writes its profile last: it outlives any process it started.
  const newest = made.map((f) => path.join(outDir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
  return { file: newest, exitStatus };
}

export async function runProfile(options: ProfileOptions): Promise<ProfileResult> {
  const outDir = path.resolve(options.outDir);
  // A clinic that is not installed is the user's to fix (one npm command), not a failure to
  // fall back from: say so before anything is made or a long benchmark runs.
  const Tool = options.tool === 'cpuprof' || options.loadClinic ? null : await loadClinicTool(options.tool);
  ensureOutputDirectory(outDir, 'the profile');
  const command = [process.execPath, cliPath, options.subcommand ?? 'bench', ...options.args];
  const target = options.target ?? 'controller';
  if (target !== 'controller') {
    // The executor is a native program: neither V8's profiler nor clinic sees inside it.
    throw new JitmemError(
      'ERR_PROFILE_TARGET_UNSUPPORTED',
      `--target ${target}: jitmem's executor is a native program, not a Node process; profile it with perf, e.g. ` +
        "'perf record -g -p PID' on the jitmem-executor process the bench starts (its pid is in 'ps' while it runs)",
      { target },
    );
  }
  if (options.tool === 'cpuprof') {
    const { file, exitStatus } = await runCpuProf(outDir, command);
    return { requested: 'cpuprof', tool: 'cpuprof', file, exitStatus, command };
  }
  const tool = options.tool;
  let reason: string;
  const before = new Set(readdirSync(outDir));
  try {
    const file = await runClinic(
      () => (options.loadClinic ? options.loadClinic(tool, outDir) : new Tool!({ dest: outDir })),
      tool,
      outDir,
      command,
    );
    return { requested: options.tool, tool: options.tool, file, command };
  } catch (err) {
    reason = `clinic ${options.tool} failed: ${(err as Error).message ?? String(err)}`;
    // What the failed run left (clinic's data folder, a half-written page) is no profile: only
    // the fallback's profile stays.
    for (const entry of readdirSync(outDir))
      if (!before.has(entry) && /\.clinic-(doctor|flame)/.test(entry))
        rmSync(path.join(outDir, entry), { recursive: true, force: true });
  }
  const { file, exitStatus } = await runCpuProf(outDir, command);
  return { requested: options.tool, tool: 'cpuprof', file, fallbackReason: reason, exitStatus, command };
}
