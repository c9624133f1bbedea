import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { linkObjects } from '../../jitlink/link.js';
import { loadTls } from '../../loader/load-tls.js';
import { InProcessTarget } from '../../loader/program-target.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import { median } from '../statistics.js';

/**
 * The linker's benchmark: the time jitmem's linker takes to link a program (read objects,
 * resolve symbols, lay out, apply relocations: everything before main is called, transport
 * excluded), beside llvm-jitlink's own "time to link object files" for the same objects,
 * measured in the same run, rounds interleaved so that both see the same machine load.
 */

/** llvm-jitlink 22 in-process, CPython 3.11, on the reference machine (docs/design.md §9). */
export const LINK_BUDGET_MS = 86;

export const DEFAULT_LLVM_JITLINK = '/usr/lib/llvm-22/bin/llvm-jitlink';

export interface LinkSample {
  readObjects: number;
  resolve: number;
  layout: number;
  applyRelocations: number;
  /** The four phases together (wall clock). */
  total: number;
  /** CPU time (user + system) of this process over the four phases. */
  cpu: number;
}

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
  readonly llvmJitlink?: string;
  /**
   * The system linker's link of the same files into a native program (the compiler driver and
   * its arguments before `-o FILE`), timed in the same rounds: the budget at LLVM's scale.
   */
  readonly nativeLink?: readonly string[];
  /** Called after each measurement, for progress. */
  readonly progress?: (what: string) => void;
}

export interface LinkBenchResult {
  readonly cold: LinkSample;
  readonly samples: readonly LinkSample[];
  readonly llvm: readonly LlvmSample[] | null;
  /** Why llvm-jitlink was not measured, when it was not. */
  readonly llvmSkipped?: string;
  readonly stats: {
    objects: number;
    sections: number;
    relocations: number;
    gotEntries: number;
    stubs: number;
    externals: number;
    bytes: number;
  };
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

function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

/**
 * One link of `inputs`, timed: read, resolve, lay out (in linkObjects), then the relocation into
 * a slab allocation, which is given back. The allocation and the content copy are transport and
 * not measured; binding thread-locals through the executor's dynamic linker is part of linking.
 */
async function timeOneLink(
  inputs: readonly string[],
  target: InProcessTarget,
  memory: SlabMemoryManager,
): Promise<{ sample: LinkSample; linkStats: LinkBenchResult['stats'] }> {
  const cpu0 = process.cpuUsage();
  const linked = await linkObjects(inputs, {
    pageSize: target.pageSize,
    lookup: (names) => target.lookup(names),
    runtimeSymbols: target.runtimeSymbols(),
  });
  const linkCpu = cpuMs(cpu0);
  const allocation = await memory.allocate(linked.graph);
  let tls: Awaited<ReturnType<typeof loadTls>> | undefined;
  try {
    allocation.writeContent();
    const cpu1 = process.cpuUsage();
    const t = performance.now();
    if (linked.usesTls) tls = await loadTls(target, linked.tlsImage(allocation.base, allocation.layout));
    linked.relocate(
      allocation.base,
      allocation.segments.map((s) => s.workingMemory),
      allocation.layout,
      tls?.binding,
    );
    const applyRelocations = performance.now() - t;
    const relocateCpu = cpuMs(cpu1);
    const { readObjects, resolve, layout } = linked.times;
    return {
      sample: {
        readObjects,
        resolve,
        layout,
        applyRelocations,
        total: readObjects + resolve + layout + applyRelocations,
        cpu: linkCpu + relocateCpu,
      },
      linkStats: { ...linked.stats, bytes: linked.layout.size },
    };
  } finally {
    await allocation.abandon();
    await tls?.close();
  }
}

export async function runLinkBench(options: LinkBenchOptions): Promise<LinkBenchResult> {
  const target = new InProcessTarget();
  for (const p of options.preload) await target.preload(p);
  const memory = new SlabMemoryManager(new InProcessMemoryMapper());
  const llvmJitlink = options.llvmJitlink ?? DEFAULT_LLVM_JITLINK;
  const llvmAvailable = options.llvmRuns > 0 && existsSync(llvmJitlink);
  let stats: LinkBenchResult['stats'] | undefined;

  const linkOnce = async (): Promise<LinkSample> => {
    const { sample, linkStats } = await timeOneLink(options.inputs, target, memory);
    stats ??= linkStats;
    return sample;
  };
  let llvmRefusal: string | undefined;
  const nativeDir = options.nativeLink ? mkdtempSync(path.join(tmpdir(), 'jitmem-native-link-')) : undefined;

  try {
    const cold = await linkOnce();
    options.progress?.(`cold link ${cold.total.toFixed(1)} ms`);
    const samples: LinkSample[] = [];
    const llvm: LlvmSample[] = [];
    const native: number[] = [];
    // Rounds interleave the two linkers, so that a burst of load hits both.
    const rounds = Math.max(options.iterations, llvmAvailable ? options.llvmRuns : 0);
    for (let r = 0; r < rounds; r++) {
      if (r < options.iterations) {
        const s = await linkOnce();
        samples.push(s);
        options.progress?.(`jitmem link ${r + 1}/${options.iterations}: ${s.total.toFixed(1)} ms`);
      }
      if (llvmAvailable && llvmRefusal === undefined && r < options.llvmRuns) {
        try {
          const s = await measureLlvmJitlink(llvmJitlink, options.inputs, options.preload);
          llvm.push(s);
          options.progress?.(`llvm-jitlink ${r + 1}/${options.llvmRuns}: ${s.wall.toFixed(1)} ms`);
        } catch (err) {
          // A refusal is a result: said, not skipped in silence.
          llvmRefusal = refusalOf(err);
          options.progress?.(`llvm-jitlink refused: ${llvmRefusal}`);
        }
      }
      if (nativeDir !== undefined && r < options.llvmRuns) {
        const t = performance.now();
        const [linker, ...linkArgs] = options.nativeLink!;
        await run(linker!, [...linkArgs, '-o', path.join(nativeDir, 'program')], {
          maxBuffer: 16 << 20,
          timeout: 300_000,
        });
        native.push(performance.now() - t);
        options.progress?.(`native link ${native.length}: ${native[native.length - 1]!.toFixed(1)} ms`);
      }
    }
    return {
      cold,
      samples,
      llvm: llvmAvailable && llvmRefusal === undefined ? llvm : null,
      ...(llvmRefusal !== undefined
        ? { llvmSkipped: `refused the link: ${llvmRefusal}` }
        : llvmAvailable
          ? {}
          : {
              llvmSkipped: options.llvmRuns === 0 ? 'not asked for (--llvm-runs 0)' : `${llvmJitlink} is not installed`,
            }),
      stats: stats!,
      loadAverage: loadavg(),
      ...(nativeDir !== undefined ? { native } : {}),
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
