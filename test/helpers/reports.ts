import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import type { FitPolicy } from '../../mappers/slab/free-range-index.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import {
  validateReport,
  type MapperName,
  type PhaseName,
  type RatioRow,
  type Report,
  type ResultRow,
  type SlabPoint,
  type Stats,
} from '../../harness/report/report.js';
import { mean, median, quantile, seededRandom } from '../../harness/statistics.js';
import { speedupOf } from '../../harness/bench/ratios.js';
import { RO, RW, RX } from './graphs.js';

/**
 * Schema-1 reports made from real timings, for the compare and charts tests, until (and
 * independently of) `jitmem bench`: every sample is a measured allocate / write / finalize /
 * deallocate cycle of the slab memory manager over the in-process mapper. The three "mappers"
 * of a workload differ by how many cycles one sample holds (in-process 1, shared 2, RPC copy 4),
 * so the speedups are real ratios of real, noisy times: what compare and charts must cope with.
 */

const CYCLES_PER_SAMPLE: Record<MapperName, number> = { inprocess: 1, dualmap: 1, shared: 2, rpc: 4 };

/** tinybench's statistics of a sample set (rme at 95%, normal critical value). */
export function statsOf(samples: readonly number[]): Stats {
  const n = samples.length;
  const m = mean(samples);
  const variance = n > 1 ? samples.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1) : 0;
  const sem = Math.sqrt(variance / n);
  return {
    mean: m,
    p50: quantile(samples, 0.5),
    p75: quantile(samples, 0.75),
    p99: quantile(samples, 0.99),
    min: Math.min(...samples),
    max: Math.max(...samples),
    rme: m > 0 ? ((1.96 * sem) / m) * 100 : 0,
    samplesCount: n,
    samples: [...samples],
  };
}

function graphOf(name: string, codeBytes: number, dataBytes: number): LinkGraph {
  return {
    name,
    sections: [
      { name: '.text', group: RX, alignment: 16, size: codeBytes, content: new Uint8Array(codeBytes).fill(0xc3) },
      { name: '.rodata', group: RO, alignment: 8, size: 64, content: new Uint8Array(64).fill(7) },
      { name: '.data', group: RW, alignment: 8, size: dataBytes, content: new Uint8Array(dataBytes).fill(0xab) },
      { name: '.bss', group: RW, alignment: 8, size: 4096 },
    ],
  };
}

const WORKLOADS: Record<string, { code: number; data: number }> = {
  cray: { code: 8 * 1024, data: 2 * 1024 },
  python: { code: 64 * 1024, data: 16 * 1024 },
};

type PhaseTimes = Record<'reserve' | 'write' | 'initialize' | 'release', number>;

/** One allocate / write / finalize / deallocate cycle, each phase timed. */
async function timedCycle(manager: SlabMemoryManager, graph: LinkGraph, into: PhaseTimes): Promise<void> {
  let t0 = performance.now();
  const alloc = await manager.allocate(graph);
  let t1 = performance.now();
  into.reserve += t1 - t0;
  t0 = t1;
  alloc.writeContent();
  t1 = performance.now();
  into.write += t1 - t0;
  t0 = t1;
  const fin = await alloc.finalize();
  t1 = performance.now();
  into.initialize += t1 - t0;
  t0 = t1;
  await manager.deallocate([fin]);
  into.release += performance.now() - t0;
}

/**
 * Measures the rows of one group together, one sample of each in turn, after a warm-up: the
 * rows then see the same machine (JIT state, other load on a shared CPU), which is what makes
 * their ratios stable within a run.
 */
async function measureRows(
  cells: ReadonlyArray<{ manager: SlabMemoryManager; graph: LinkGraph; cycles: number }>,
  samples: number,
): Promise<Array<{ latency: number[]; phases: Record<keyof PhaseTimes, number[]> }>> {
  const out = cells.map(() => ({
    latency: [] as number[],
    phases: { reserve: [] as number[], write: [] as number[], initialize: [] as number[], release: [] as number[] },
  }));
  for (const cell of cells)
    for (let i = 0; i < 50; i++)
      await timedCycle(cell.manager, cell.graph, { reserve: 0, write: 0, initialize: 0, release: 0 });
  for (let s = 0; s < samples; s++) {
    for (const [i, cell] of cells.entries()) {
      const t: PhaseTimes = { reserve: 0, write: 0, initialize: 0, release: 0 };
      for (let c = 0; c < cell.cycles; c++) await timedCycle(cell.manager, cell.graph, t);
      out[i]!.latency.push(t.reserve + t.write + t.initialize + t.release);
      for (const k of Object.keys(t) as Array<keyof PhaseTimes>) out[i]!.phases[k].push(t[k]);
    }
  }
  return out;
}

function slabSummary(manager: SlabMemoryManager): ResultRow['slab'] {
  const s = manager.stats();
  return {
    policy: s.policy,
    reservedBytes: s.reservedBytes,
    peakReservedBytes: s.peakReservedBytes,
    liveBytes: s.liveBytes,
    peakLiveBytes: s.peakLiveBytes,
    freeRanges: s.freeRanges,
    largestFreeRange: s.largestFreeRange,
    fragmentation: s.fragmentation,
    merges: s.merges,
  };
}

/** A real churn: allocations of seeded random sizes come and go; the allocator state after each step. */
async function churnSeries(
  policy: FitPolicy,
  steps: number,
  seed: number,
): Promise<{ series: SlabPoint[]; slab: ResultRow['slab'] }> {
  const mapper = new InProcessMemoryMapper();
  try {
    const manager = new SlabMemoryManager(mapper, { granularity: 4 << 20, policy });
    const rand = seededRandom(seed);
    const live: Array<Awaited<ReturnType<SlabMemoryManager['finalizeAllocation']>>> = [];
    const series: SlabPoint[] = [];
    for (let step = 0; step < steps; step++) {
      if (live.length > 0 && rand() < 0.45) {
        const [victim] = live.splice(Math.floor(rand() * live.length), 1);
        await manager.deallocate([victim!]);
      } else {
        const graph = graphOf(`g${step}`, (1 + Math.floor(rand() * 24)) * 4096, 4096);
        const alloc = await manager.allocate(graph);
        alloc.writeContent();
        live.push(await alloc.finalize());
      }
      const s = manager.stats();
      series.push({
        step,
        freeRanges: s.freeRanges,
        fragmentation: s.fragmentation,
        liveBytes: s.liveBytes,
        reservedBytes: s.reservedBytes,
      });
    }
    const slab = slabSummary(manager);
    await manager.deallocate(live);
    return { series, slab };
  } finally {
    await mapper.close();
  }
}

export interface MeasuredReportOptions {
  /** Samples per row (default 60). */
  readonly samples?: number;
  /** Add `sweep` rows (content sizes 4 KiB .. 1 MiB) for the sweep chart. */
  readonly sweep?: boolean;
  /** Add `churn` rows with a slabSeries for each fit policy. */
  readonly churn?: boolean;
  readonly createdAt?: string;
  readonly seed?: number;
}

function env(): Report['env'] {
  return {
    node: process.versions.node,
    v8: process.versions.v8,
    os: os.platform(),
    kernel: os.release(),
    arch: os.arch(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    pageSize: 4096,
    commit: null,
    dirty: null,
    placement: { pin: 'none', controllerCpus: [0, 1], executorCpus: [0, 1] },
  };
}

function rowOf(
  workload: string,
  pattern: ResultRow['pattern'],
  mapper: MapperName,
  policy: FitPolicy,
  graph: LinkGraph,
  measured: { latency: number[]; phases: Record<string, number[]> },
  slab: ResultRow['slab'],
): ResultRow {
  const content = graph.sections.reduce((s, x) => s + (x.content ? x.size : 0), 0);
  const zeroFill = graph.sections.reduce((s, x) => s + (x.content ? 0 : x.size), 0);
  return {
    workload,
    pattern,
    mapper,
    executor: mapper === 'inprocess' ? 'none' : 'jitmem',
    policy,
    contentBytes: content,
    rounds: roundsOf(measured.latency),
    latency: statsOf(measured.latency),
    phases: Object.fromEntries(Object.entries(measured.phases).map(([k, v]) => [k, statsOf(v)])) as Partial<
      Record<PhaseName, Stats>
    >,
    bytes: { content, zeroFill, moved: mapper === 'inprocess' ? 0 : content },
    roundTrips: mapper === 'rpc' ? 4 : mapper === 'shared' ? 2 : 0,
    slab,
  };
}

/**
 * Rounds the measured rows are cut into: contiguous blocks of samples, aligned across a group (samples
 * were taken in turn).
 */
export const HELPER_ROUNDS = 8;

export function roundsOf(samples: readonly number[]): NonNullable<ResultRow['rounds']> {
  const n = samples.length;
  const k = Math.min(HELPER_ROUNDS, n);
  return Array.from({ length: k }, (_, i) => {
    const block = samples.slice(Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k));
    return { samples: block.length, p50: median(block) };
  });
}

/** The speedup ratios of a report's rows, as `jitmem bench` defines them (paired per round). */
export function ratiosOf(results: readonly ResultRow[]): RatioRow[] {
  const ratios: RatioRow[] = [];
  const groups = new Map<string, ResultRow[]>();
  for (const r of results) {
    if (r.pattern === 'sweep') continue;
    const key = `${r.workload}\0${r.pattern}\0${r.policy}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const rows of groups.values()) {
    for (const baselineName of ['rpc', 'inprocess'] as const) {
      const baseline = rows.find((r) => r.mapper === baselineName);
      if (!baseline) continue;
      for (const r of rows) {
        if (r === baseline) continue;
        const est = speedupOf(baseline, r, 1);
        if (!est) continue;
        ratios.push({
          workload: r.workload,
          pattern: r.pattern,
          policy: r.policy,
          executor: 'jitmem',
          mapper: r.mapper,
          baseline: baselineName,
          ...est,
        });
      }
    }
  }
  return ratios;
}

/** Measures a small matrix (cray and python, pattern load, all three mappers, first-fit) into a validated report. */
export async function measuredReport(options: MeasuredReportOptions = {}): Promise<Report> {
  const samples = options.samples ?? 60;
  const results: ResultRow[] = [];
  const mapper = new InProcessMemoryMapper();
  try {
    const mappers = ['inprocess', 'shared', 'rpc'] as const;
    const measureGroup = async (
      workload: string,
      pattern: ResultRow['pattern'],
      graph: LinkGraph,
      groupSamples: number,
      granularity: number,
    ) => {
      const managers = mappers.map(() => new SlabMemoryManager(mapper, { granularity }));
      const measured = await measureRows(
        mappers.map((m, i) => ({ manager: managers[i]!, graph, cycles: CYCLES_PER_SAMPLE[m] })),
        groupSamples,
      );
      for (const [i, m] of mappers.entries())
        results.push(rowOf(workload, pattern, m, 'first-fit', graph, measured[i]!, slabSummary(managers[i]!)));
      for (const manager of managers) await manager.close();
    };
    for (const [workload, shape] of Object.entries(WORKLOADS))
      await measureGroup(workload, 'load', graphOf(workload, shape.code, shape.data), samples, 1 << 20);
    if (options.sweep) {
      for (const kib of [4, 16, 64, 256, 1024])
        await measureGroup(
          'python',
          'sweep',
          graphOf(`sweep-${kib}k`, kib * 1024, 1024),
          Math.min(samples, 20),
          4 << 20,
        );
    }
  } finally {
    await mapper.close();
  }
  if (options.churn) {
    for (const policy of ['first-fit', 'best-fit'] as const) {
      const { series, slab } = await churnSeries(policy, 200, options.seed ?? 7);
      const graph = graphOf('python', WORKLOADS.python!.code, WORKLOADS.python!.data);
      const innerMapper = new InProcessMemoryMapper();
      try {
        const manager = new SlabMemoryManager(innerMapper, { granularity: 1 << 20, policy });
        const [measured] = await measureRows([{ manager, graph, cycles: 1 }], Math.min(samples, 20));
        results.push({ ...rowOf('python', 'churn', 'inprocess', policy, graph, measured!, slab), slabSeries: series });
        await manager.close();
      } finally {
        await innerMapper.close();
      }
    }
  }
  const report = {
    schema: 1 as const,
    tool: { name: 'jitmem' as const, version: '0.1.0' },
    createdAt: options.createdAt ?? new Date().toISOString(),
    command: ['test/helpers/reports.ts'],
    options: { preset: 'quick' as const, seed: options.seed ?? 1, cold: false, pin: 'none' as const },
    env: env(),
    results,
    ratios: ratiosOf(results),
  };
  return validateReport(report, 'measured report');
}

/**
 * A copy of `report` in which the rows that `select` picks have every sample (whole and per phase)
 * multiplied by `factor`; ratios are recomputed.
 */
export function withRowsScaled(report: Report, select: (row: ResultRow) => boolean, factor: number): Report {
  const scale = (s: Stats): Stats => statsOf(s.samples.map((x) => x * factor));
  const results = report.results.map((r) =>
    select(r)
      ? {
          ...r,
          latency: scale(r.latency),
          rounds: r.rounds?.map((x) => ({ ...x, p50: x.p50 * factor })),
          phases: Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, scale(v!)])) as ResultRow['phases'],
        }
      : r,
  );
  return validateReport({ ...report, results, ratios: ratiosOf(results) }, 'scaled report');
}

/**
 * A copy in which `select`'s rows spend `factor` times as long in `phase` and nothing else
 * changes: each iteration (and each round's median) takes the extra time of the phase's median.
 * Ratios are recomputed.
 */
export function withPhaseScaled(
  report: Report,
  select: (row: ResultRow) => boolean,
  phase: PhaseName,
  factor: number,
): Report {
  const results = report.results.map((r) => {
    const stats = r.phases[phase];
    if (!select(r) || !stats) return r;
    const extra = (factor - 1) * median(stats.samples);
    return {
      ...r,
      latency: statsOf(r.latency.samples.map((x) => x + extra)),
      rounds: r.rounds?.map((x) => ({ ...x, p50: x.p50 + extra })),
      phases: { ...r.phases, [phase]: statsOf(stats.samples.map((x) => x * factor)) },
    };
  });
  return validateReport({ ...report, results, ratios: ratiosOf(results) }, 'phase-scaled report');
}

/**
 * A copy in which every round of a row has the row's overall median (and every phase sample its
 * phase's median): no spread between rounds,
 * so compare's noise floor is 0 and its verdicts follow the thresholds alone. For tests of
 * thresholds, rules and formatting, which must not depend on how loaded the machine was while
 * the report was measured; ratios are recomputed (each per-round speedup is then the same).
 */
export function withSteadyRounds(report: Report): Report {
  const results = report.results.map((r) => {
    const m = median(r.latency.samples);
    // Phases too: every sample at the phase's median, so the per-phase paired speedups are steady.
    const phases = Object.fromEntries(
      Object.entries(r.phases).map(([k, v]) => [k, statsOf(v!.samples.map(() => median(v!.samples)))]),
    ) as ResultRow['phases'];
    return r.rounds ? { ...r, rounds: r.rounds.map((x) => ({ ...x, p50: m })), phases } : r;
  });
  return validateReport({ ...report, results, ratios: ratiosOf(results) }, 'steady report');
}
