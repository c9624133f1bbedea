import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { linkObjects } from '../../jitlink/link.js';
import { loadTls } from '../../loader/load-tls.js';
import { MappedInputs } from '../../loader/mapped-inputs.js';
import { InProcessTarget } from '../../loader/program-target.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import { budgetVerdict } from '../bench/ratios.js';
import { meanInterval, median } from '../statistics.js';
import type { FirstLinkProbeResult, FirstLinkSource } from './first-link-probe.js';
import { timeOneLink, type LinkerParts, type LinkSample, type LinkStatsLine } from './time-one-link.js';

export type { LinkSample } from './time-one-link.js';

/**
 * The linker's benchmark: the time jitmem's linker takes to link a program (read objects,
 * resolve symbols, lay out, apply relocations: everything before main is called, transport
 * excluded), beside llvm-jitlink's own "time to link object files" for the same objects,
 * measured in the same run, rounds interleaved so that both see the same machine load.
 */

/** llvm-jitlink 22 in-process, CPython 3.11, on the reference machine (docs/design.md §9). */
export const LINK_BUDGET_MS = 86;

export const DEFAULT_LLVM_JITLINK = '/usr/lib/llvm-22/bin/llvm-jitlink';

export interface LlvmSample {
  /** "time to link object files", wall clock and user + system. */
  wall: number;
  cpu: number;
  /** "time to load/add object files", wall clock. */
  loadWall: number;
}

export interface LinkBenchOptions {
  readonly inputs: readonly string[];
  readonly preload: readonly string[];
  /** Measured links (after the first, cold one). */
  readonly iterations: number;
  /** llvm-jitlink runs (0 to skip it). */
  readonly llvmRuns: number;
  /**
   * First links, each in a fresh process started for it (first-link-probe.ts), one per round
   * beside that round's llvm-jitlink run (0: only this process's own first link).
   */
  readonly coldRuns?: number;
  readonly llvmJitlink?: string;
  /**
   * The system linker's link of the same files into a native program (the compiler driver and
   * its arguments before `-o FILE`), timed in the same rounds: the budget at LLVM's scale.
   */
  readonly nativeLink?: readonly string[];
  /** Called after each measurement, for progress. */
  readonly progress?: (what: string) => void;
}

/** First links in fresh processes, paired by round with llvm-jitlink's runs. */
export interface FirstLinks {
  readonly samples: readonly LinkSample[];
  /** Where each process took the linker's code from (what its figure includes). */
  readonly sources: readonly FirstLinkSource[];
  /**
   * The geometric mean over rounds of first link / llvm-jitlink's time to link (wall), its
   * Student-t 95% interval on the log scale, the rounds it is over, and the budget's verdict
   * (at most 1.0x): ok when the whole interval is within, over when the whole interval is past,
   * undecided otherwise. Absent without llvm-jitlink or with fewer than 2 rounds.
   */
  readonly ratio?: { geomean: number; ci95: [number, number]; n: number; verdict: 'ok' | 'over' | 'undecided' };
  /** The same over CPU times. */
  readonly cpuRatio?: { geomean: number; ci95: [number, number]; n: number };
}

export interface LinkBenchResult {
  /** This process's own first link (the linker imported from its modules, as bench-link is). */
  readonly cold: LinkSample;
  /** First links in fresh processes (coldRuns > 0). */
  readonly firstLinks?: FirstLinks;
  /** llvm-jitlink runs that refused once and linked when run again (a race inside llvm-jitlink). */
  readonly llvmRetried?: number;
  readonly samples: readonly LinkSample[];
  readonly llvm: readonly LlvmSample[] | null;
  /** Why llvm-jitlink was not measured, when it was not. */
  readonly llvmSkipped?: string;
  readonly stats: LinkStatsLine;
  readonly loadAverage: readonly number[];
  /** Wall-clock milliseconds of each native link (nativeLink), when asked for. */
  readonly native?: readonly number[];
  /** This process's peak resident set after the links (bytes), beside the inputs' size on disk. */
  readonly peakRss: number;
  readonly inputBytes: number;
}

const run = promisify(execFile);

/** One llvm-jitlink -noexec -show-times run, parsed. */
export async function measureLlvmJitlink(
  binary: string,
  inputs: readonly string[],
  preload: readonly string[],
): Promise<LlvmSample> {
  const args = ['-noexec', '-show-times', ...preload.flatMap((p) => ['-preload', p]), ...inputs];
  const { stdout, stderr } = await run(binary, args, { maxBuffer: 16 << 20, timeout: 120_000 });
  return parseLlvmTimes(stdout + stderr);
}

/** Parses llvm-jitlink's -show-times table: user, system, user+system, wall, name. */
export function parseLlvmTimes(text: string): LlvmSample {
  const row = (name: string) => {
    const m = new RegExp(
      `^\\s*([\\d.]+) \\(\\s*[\\d.]+%\\)\\s+([\\d.]+) \\(\\s*[\\d.]+%\\)\\s+([\\d.]+) \\(\\s*[\\d.]+%\\)\\s+([\\d.]+) \\(\\s*[\\d.]+%\\)\\s+${name}`,
      'm',
    ).exec(text);
    return m ? { cpu: Number(m[3]) * 1000, wall: Number(m[4]) * 1000 } : undefined;
  };
  const link = row('time to link object files');
  if (!link) throw new Error(`llvm-jitlink printed no "time to link object files" row:\n${text.slice(0, 2000)}`);
  return { wall: link.wall, cpu: link.cpu, loadWall: row('time to load/add object files')?.wall ?? 0 };
}

const MODULE_PARTS: LinkerParts = {
  linkObjects,
  MappedInputs,
  loadTls,
  InProcessTarget,
  InProcessMemoryMapper,
  SlabMemoryManager,
};

const FIRST_LINK_PROBE = fileURLToPath(new URL('./first-link-probe.js', import.meta.url));

/** One fresh process's first link (first-link-probe.ts). */
async function probeFirstLink(inputs: readonly string[], preload: readonly string[]): Promise<FirstLinkProbeResult> {
  const args = [FIRST_LINK_PROBE, ...preload.flatMap((p) => ['--preload', p]), ...inputs];
  const { stdout } = await run(process.execPath, args, { maxBuffer: 1 << 20, timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as FirstLinkProbeResult;
}

/** Geometric mean of paired ratios with its Student-t 95% interval (log scale). */
function pairedRatio(
  a: readonly number[],
  b: readonly number[],
): { geomean: number; ci95: [number, number]; n: number } | undefined {
  const n = Math.min(a.length, b.length);
  if (n < 2) return undefined;
  const est = meanInterval(Array.from({ length: n }, (_, i) => Math.log(a[i]! / b[i]!)));
  return { geomean: Math.exp(est.mean), ci95: [Math.exp(est.low), Math.exp(est.high)], n };
}

/** First links in fresh processes beside llvm-jitlink's runs of the same rounds, judged against the budget (1.0x). */
export function judgeFirstLinks(
  samples: readonly LinkSample[],
  sources: readonly FirstLinkSource[],
  llvm: readonly LlvmSample[] | null,
): FirstLinks {
  if (!llvm) return { samples, sources };
  const ratio = pairedRatio(
    samples.map((s) => s.total),
    llvm.map((s) => s.wall),
  );
  const cpuRatio = pairedRatio(
    samples.map((s) => s.cpu),
    llvm.map((s) => s.cpu),
  );
  return {
    samples,
    sources,
    ...(ratio ? { ratio: { ...ratio, verdict: budgetVerdict(ratio.ci95, 1) } } : {}),
    ...(cpuRatio ? { cpuRatio } : {}),
  };
}

/**
 * One llvm-jitlink run. A refusal is run again once: llvm-jitlink 22 now and then refuses
 * CPython ("duplicate definition of symbol 'confstr'" in its absolute symbols), a race of its own.
 */
async function llvmJitlinkOnce(
  binary: string,
  inputs: readonly string[],
  preload: readonly string[],
): Promise<{ sample: LlvmSample; retried: boolean }> {
  try {
    return { sample: await measureLlvmJitlink(binary, inputs, preload), retried: false };
  } catch {
    return { sample: await measureLlvmJitlink(binary, inputs, preload), retried: true };
  }
}

/** What the rounds gather. */
interface RoundsState {
  readonly samples: LinkSample[];
  readonly llvm: LlvmSample[];
  readonly native: number[];
  readonly firstLinks: LinkSample[];
  readonly sources: FirstLinkSource[];
  llvmRefusal: string | undefined;
  llvmRetried: number;
}

/**
 * One round: a fresh process's first link, a warm link here, llvm-jitlink, the native link, each
 * while its count lasts. Interleaved, so that a burst of load hits every side.
 */
async function runRound(
  r: number,
  options: LinkBenchOptions,
  state: RoundsState,
  linkOnce: () => Promise<LinkSample>,
  llvmJitlink: string | undefined,
  nativeDir: string | undefined,
): Promise<void> {
  if (r < (options.coldRuns ?? 0)) {
    const { sample, source } = await probeFirstLink(options.inputs, options.preload);
    state.firstLinks.push(sample);
    state.sources.push(source);
    options.progress?.(
      `first link in a fresh process ${r + 1}/${options.coldRuns}: ${sample.total.toFixed(1)} ms (${source})`,
    );
  }
  if (r < options.iterations) {
    const s = await linkOnce();
    state.samples.push(s);
    options.progress?.(`jitmem link ${r + 1}/${options.iterations}: ${s.total.toFixed(1)} ms`);
  }
  if (llvmJitlink !== undefined && state.llvmRefusal === undefined && r < options.llvmRuns) {
    try {
      const { sample, retried } = await llvmJitlinkOnce(llvmJitlink, options.inputs, options.preload);
      state.llvm.push(sample);
      if (retried) state.llvmRetried++;
      options.progress?.(
        `llvm-jitlink ${r + 1}/${options.llvmRuns}: ${sample.wall.toFixed(1)} ms${retried ? ' (refused once, linked when run again)' : ''}`,
      );
    } catch (err) {
      // A refusal is a result: said, not skipped in silence.
      state.llvmRefusal = refusalOf(err);
      options.progress?.(`llvm-jitlink refused: ${state.llvmRefusal}`);
    }
  }
  if (nativeDir !== undefined && r < options.llvmRuns) {
    const t = performance.now();
    const [linker, ...linkArgs] = options.nativeLink!;
    await run(linker!, [...linkArgs, '-o', path.join(nativeDir, 'program')], {
      maxBuffer: 16 << 20,
      timeout: 300_000,
    });
    state.native.push(performance.now() - t);
    options.progress?.(`native link ${state.native.length}: ${state.native[state.native.length - 1]!.toFixed(1)} ms`);
  }
}

function llvmSkipped(
  llvmRuns: number,
  llvmJitlink: string,
  available: boolean,
  refusal: string | undefined,
): { llvmSkipped?: string } {
  if (refusal !== undefined) return { llvmSkipped: `refused the link: ${refusal}` };
  if (available) return {};
  return { llvmSkipped: llvmRuns === 0 ? 'not asked for (--llvm-runs 0)' : `${llvmJitlink} is not installed` };
}

export async function runLinkBench(options: LinkBenchOptions): Promise<LinkBenchResult> {
  const target = new InProcessTarget();
  for (const p of options.preload) await target.preload(p);
  const memory = new SlabMemoryManager(new InProcessMemoryMapper());
  const llvmJitlink = options.llvmJitlink ?? DEFAULT_LLVM_JITLINK;
  const llvmAvailable = options.llvmRuns > 0 && existsSync(llvmJitlink);
  let stats: LinkBenchResult['stats'] | undefined;
  const linkOnce = async (): Promise<LinkSample> => {
    const { sample, linkStats } = await timeOneLink(MODULE_PARTS, options.inputs, target, memory);
    stats ??= linkStats;
    return sample;
  };
  const nativeDir = options.nativeLink ? mkdtempSync(path.join(tmpdir(), 'jitmem-native-link-')) : undefined;
  const state: RoundsState = {
    samples: [],
    llvm: [],
    native: [],
    firstLinks: [],
    sources: [],
    llvmRefusal: undefined,
    llvmRetried: 0,
  };
  try {
    const cold = await linkOnce();
    options.progress?.(`cold link ${cold.total.toFixed(1)} ms`);
    const coldRuns = options.coldRuns ?? 0;
    const rounds = Math.max(options.iterations, llvmAvailable ? options.llvmRuns : 0, coldRuns);
    for (let r = 0; r < rounds; r++)
      await runRound(r, options, state, linkOnce, llvmAvailable ? llvmJitlink : undefined, nativeDir);
    const llvm = llvmAvailable && state.llvmRefusal === undefined ? state.llvm : null;
    return {
      cold,
      ...(coldRuns > 0 ? { firstLinks: judgeFirstLinks(state.firstLinks, state.sources, llvm) } : {}),
      ...(state.llvmRetried > 0 ? { llvmRetried: state.llvmRetried } : {}),
      samples: state.samples,
      llvm,
      ...llvmSkipped(options.llvmRuns, llvmJitlink, llvmAvailable, state.llvmRefusal),
      stats: stats!,
      loadAverage: loadavg(),
      ...(nativeDir !== undefined ? { native: state.native } : {}),
      peakRss: process.resourceUsage().maxRSS * 1024,
      inputBytes: options.inputs.reduce((n, f) => n + statSync(f).size, 0),
    };
  } finally {
    if (nativeDir !== undefined) rmSync(nativeDir, { recursive: true, force: true });
    await memory.close();
  }
}

/** llvm-jitlink's own words for a refusal: its error lines, without the long symbol lists. */
function refusalOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  const lines = (e.stderr ?? e.message ?? String(err)).split('\n').filter((l) => l.startsWith('llvm-jitlink error:'));
  const reasons = lines
    .filter((l) => !l.includes('failed to materialize'))
    .map((l) => l.replace(/^llvm-jitlink error: /, '').slice(0, 160));
  const unique = [...new Set(reasons)];
  return unique.length > 0 ? unique.slice(0, 3).join('; ') : (e.message ?? String(err)).slice(0, 300);
}

/** Medians of each phase over the samples. */
export function medianSample(samples: readonly LinkSample[]): LinkSample {
  const m = (k: keyof LinkSample) => median(samples.map((s) => s[k]));
  return {
    readObjects: m('readObjects'),
    resolve: m('resolve'),
    layout: m('layout'),
    applyRelocations: m('applyRelocations'),
    total: m('total'),
    cpu: m('cpu'),
  };
}
