import { computeRatios, extraTimeBudgets } from '../../harness/bench/ratios.js';
import {
  PHASES,
  validateReport,
  type ExecutorName,
  type MapperName,
  type PatternName,
  type Report,
  type ResultRow,
  type SlabPoint,
} from '../../harness/report/report.js';
import { seededRandom } from '../../harness/statistics.js';
import { statsOf } from './reports.js';

/**
 * A report shaped like one `jitmem bench` writes with the default preset (every pattern, both
 * workloads, three mappers, LLVM's executor under load, both policies under churn, five sweep
 * sizes), for tests of how the report is drawn. Generating a real default run takes minutes;
 * the layout depends on the rows and labels, not on the figures. The samples are seeded
 * log-normal draws around medians of the size a real run measures on a 2-CPU machine; ratios
 * and budgets are computed from them by the bench's own functions.
 */

export interface DefaultShapedOptions {
  /** Rows of LLVM's executor (shared@llvm and rpc@llvm under load), as when llvm-22 is installed. */
  readonly llvm: boolean;
  readonly seed?: number;
  readonly commit?: string | null;
  readonly dirty?: boolean;
  readonly createdAt?: string;
  readonly preset?: Report['options']['preset'];
  /** Multiplies every median: a slower or faster run of the same commit. */
  readonly scale?: number;
}

const BASE_MS: Record<string, Record<string, number>> = {
  cray: { inprocess: 0.022, shared: 0.15, rpc: 0.18, 'shared@llvm': 0.23, 'rpc@llvm': 0.59 },
  python: { inprocess: 17, shared: 17, rpc: 42, 'shared@llvm': 19, 'rpc@llvm': 46 },
};
const PATTERN_FACTOR: Record<string, number> = { load: 1, churn: 2.2, update: 0.5, patch: 0.15 };
const SWEEP_BYTES = [4096, 65536, 1 << 20, 16 << 20, 64 << 20];

function samplesAround(median: number, n: number, random: () => number): number[] {
  return Array.from({ length: n }, () => {
    // Box-Muller: a log-normal spread of about ±25% and a tail, as real latencies have.
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.round(median * Math.exp(0.25 * z) * (random() < 0.03 ? 3 : 1) * 1e6) / 1e6;
  });
}

function churnSeries(workload: string, policy: string, random: () => number): SlabPoint[] {
  const steps = workload === 'cray' ? 400 : 310;
  let free = 1;
  return Array.from({ length: steps }, (_, step) => {
    free = Math.max(1, Math.min(policy === 'first-fit' ? 30 : 21, free + (random() < 0.55 ? 1 : -1)));
    return {
      step,
      freeRanges: workload === 'cray' ? 1 + (step % 2) : free,
      fragmentation: workload === 'cray' ? 0.005 * (step % 2) : free / 40,
      liveBytes: 1 << 20,
      reservedBytes: 8 << 20,
    };
  });
}

export function defaultShapedReport(options: DefaultShapedOptions): Report {
  const random = seededRandom(options.seed ?? 11);
  const scale = options.scale ?? 1;
  const rows: ResultRow[] = [];
  const row = (
    workload: string,
    pattern: PatternName,
    mapper: MapperName,
    executor: ExecutorName,
    policy: 'first-fit' | 'best-fit',
    ms: number,
    extra: Partial<ResultRow> = {},
  ): void => {
    const n = Math.max(12, Math.min(400, Math.round(600 / Math.sqrt(ms + 0.01))));
    const latency = samplesAround(ms * scale, n, random);
    const shares = [0.02, 0.1, 0.05, 0.5, 0.3, 0.03];
    const content = extra.contentBytes ?? (workload === 'python' ? 6_660_000 : 9000);
    rows.push({
      workload,
      pattern,
      mapper,
      executor,
      policy,
      contentBytes: content,
      latency: statsOf(latency),
      phases: Object.fromEntries(PHASES.map((p, i) => [p, statsOf(latency.map((x) => x * shares[i]!))])),
      bytes: { content, zeroFill: 4096, moved: mapper === 'rpc' ? content : 0 },
      roundTrips: mapper === 'inprocess' ? 0 : 2,
      slab: {
        policy,
        reservedBytes: 8 << 20,
        peakReservedBytes: 8 << 20,
        liveBytes: 0,
        peakLiveBytes: 1 << 20,
        freeRanges: 1,
        largestFreeRange: 8 << 20,
        fragmentation: 0,
        merges: 10,
      },
      ...extra,
    });
  };
  for (const pattern of ['load', 'churn', 'update', 'patch'] as const) {
    for (const workload of ['cray', 'python']) {
      for (const mapper of ['inprocess', 'shared', 'rpc'] as const) {
        const executors: ExecutorName[] =
          mapper === 'inprocess' ? ['none'] : options.llvm && pattern === 'load' ? ['jitmem', 'llvm'] : ['jitmem'];
        for (const executor of executors) {
          const ms = BASE_MS[workload]![executor === 'llvm' ? `${mapper}@llvm` : mapper]! * PATTERN_FACTOR[pattern]!;
          for (const policy of pattern === 'churn' ? (['first-fit', 'best-fit'] as const) : (['first-fit'] as const)) {
            row(workload, pattern, mapper, executor, policy, ms * (policy === 'best-fit' ? 1.2 : 1), {
              ...(executor === 'llvm' && mapper === 'rpc' ? { cold: true } : {}),
              ...(pattern === 'churn' ? { slabSeries: churnSeries(workload, policy, random) } : {}),
            });
          }
        }
      }
    }
  }
  for (const bytes of SWEEP_BYTES) {
    const label = bytes >= 1 << 20 ? `${bytes / (1 << 20)}MiB` : `${bytes / 1024}KiB`;
    const mb = bytes / (1 << 20);
    row(`synthetic-${label}`, 'sweep', 'inprocess', 'none', 'first-fit', 0.01 + 0.3 * mb, { contentBytes: bytes });
    row(`synthetic-${label}`, 'sweep', 'shared', 'jitmem', 'first-fit', 0.15 + 0.6 * mb, { contentBytes: bytes });
    row(`synthetic-${label}`, 'sweep', 'rpc', 'jitmem', 'first-fit', 0.2 + 8 * mb, { contentBytes: bytes });
  }
  const report = {
    schema: 1 as const,
    tool: { name: 'jitmem' as const, version: '0.1.0' },
    createdAt: options.createdAt ?? '2026-11-29T12:00:00.000Z',
    command: ['jitmem', 'bench'],
    options: {
      preset: options.preset ?? ('default' as const),
      seed: 1,
      cold: false,
      pin: 'none' as const,
      time: 700,
      iterations: 12,
    },
    env: {
      node: 'v20.20.2',
      v8: '11.3.244.8-node.38',
      os: 'Debian GNU/Linux 12 (bookworm)',
      kernel: '6.1.0',
      arch: 'x64',
      cpuModel: 'AMD EPYC',
      cpus: 2,
      pageSize: 4096,
      commit: options.commit === undefined ? '36bac267f377668f07cec3f9cc2160ca71fbb83a' : options.commit,
      dirty: options.dirty ?? false,
      placement: { pin: 'none' as const, controllerCpus: [0, 1], executorCpus: [0, 1], controllerSeenOn: [0, 1] },
    },
    results: rows,
    ratios: computeRatios(rows, 1),
    budgets: extraTimeBudgets(rows),
  };
  return validateReport(report, 'default-shaped report');
}
