import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PROCESS_COST_COUNTER_NAMES, type ProcessCostCounters } from '../../core/cost-counters.js';
import { JitmemError } from '../../core/errors.js';
import { readRegularFile } from '../../core/files.js';
import type { FitPolicy } from '../../mappers/slab/free-range-index.js';

/**
 * The benchmark report, schema 1: the TypeScript shape of reports/schema-v1.json, and the one
 * place reports are validated when read. reports/README.md documents every field.
 */

export const REPORT_SCHEMA_VERSION = 1;

export type PhaseName = 'reserve' | 'prepare' | 'write' | 'initialize' | 'deinitialize' | 'release';
export const PHASES: readonly PhaseName[] = ['reserve', 'prepare', 'write', 'initialize', 'deinitialize', 'release'];
export type MapperName = 'inprocess' | 'dualmap' | 'shared' | 'rpc';
/** Mappers whose target is this process: they need no executor. */
export const IN_PROCESS_MAPPERS: readonly MapperName[] = ['inprocess', 'dualmap'];
export type ExecutorName = 'jitmem' | 'llvm' | 'none';
export type PatternName = 'load' | 'churn' | 'update' | 'patch' | 'sweep' | 'run';
/**
 * Phases of the `run` pattern (a program linked, moved, run to exit and freed). jitmem's rows
 * time read, link, reserve, write, initialize, run, deinitialize, release; llvm-jitlink's rows
 * hold the phases its --show-times prints (read, link, run) and `other`: the rest of its
 * process's life (process and executor start, exit).
 */
export type RunPhaseName =
  'read' | 'link' | 'reserve' | 'write' | 'initialize' | 'run' | 'deinitialize' | 'release' | 'other';
export const RUN_PHASES: readonly RunPhaseName[] = [
  'read',
  'link',
  'reserve',
  'write',
  'initialize',
  'run',
  'deinitialize',
  'release',
  'other',
];
export type LinkerName = 'jitmem' | 'llvm-jitlink';
/**
 * llvm-jitlink's --use-memmgr out of process (generic and simple-remote both copy the bytes over the wire: RPC copy).
 */
export type LlvmMemmgr = 'generic' | 'simple-remote' | 'shared';

/** tinybench's statistics of one sample set, in milliseconds. */
export interface Stats {
  mean: number;
  p50: number;
  p75: number;
  p99: number;
  min: number;
  max: number;
  /** Relative margin of error of the mean, in percent. */
  rme: number;
  samplesCount: number;
  samples: number[];
}

export interface SlabSummary {
  policy: FitPolicy;
  reservedBytes: number;
  peakReservedBytes: number;
  liveBytes: number;
  peakLiveBytes: number;
  freeRanges: number;
  largestFreeRange: number;
  fragmentation: number;
  merges: number;
}

export interface SlabPoint {
  step: number;
  freeRanges: number;
  fragmentation: number;
  liveBytes: number;
  reservedBytes: number;
}

export interface ResultRow {
  workload: string;
  pattern: PatternName;
  mapper: MapperName;
  executor: ExecutorName;
  policy: FitPolicy;
  /** Present when this cell ran with a fresh slab every iteration. */
  cold?: boolean;
  contentBytes?: number;
  latency: Stats;
  /**
   * Each phase's share of every iteration's time (ms per iteration): an instant during which
   * operations of several phases were under way is split equally among those phases, so an
   * iteration's phases sum to its latency.
   */
  phases: Partial<Record<PhaseName | RunPhaseName, Stats>>;
  /**
   * Per-operation latency of each phase: every operation's own duration, start to end. With a
   * pipelined plan these overlap (64 finalizes in flight): they say how long one operation
   * takes, not what share of the iteration its phase is, and never sum to the iteration.
   */
  operationLatency?: Partial<Record<PhaseName, OperationLatency>>;
  /**
   * CPU time per measured iteration (ms), beside the wall time of `latency`: the controller's
   * (its process's CPU clock, every thread) and the executor's (its threads' scheduler run time,
   * read from outside the process; null in-process). Integrity checks are left out. Samples are
   * in the same order as the latency's.
   */
  cpu?: { controller: Stats; executor: Stats | null };
  /** `run` rows: whose linker linked the program. */
  linker?: LinkerName;
  /** `run` rows of llvm-jitlink out of process: its memory manager. */
  memmgr?: LlvmMemmgr;
  /** `run` rows: what the program was asked to do. */
  program?: string;
  /** `run` rows: every iteration ended with this exit status and printed this (sha256 of stdout). */
  verified?: { iterations: number; exitStatus: number; stdoutSha256: string };
  /**
   * `run` rows of jitmem: where its linker ran. `process-per-run`: every iteration in a fresh
   * worker process (cold JS, a fresh executor each time); `warm`: one long-lived controller per
   * cell ran warm-up iterations, then all measured ones, over one executor session.
   */
  controller?: 'warm' | 'process-per-run';
  /**
   * `run` rows: the linker's whole process (llvm-jitlink) or the iteration's worker process (jitmem, process per run),
   * spawn to exit.
   */
  wholeProcess?: Stats;
  /** `run` rows of jitmem's warm controller: each iteration's wall time in the controller (its phases sum to it). */
  iteration?: Stats;
  /** `run` rows of jitmem out of process: executor spawn to its Setup message, per iteration (not part of latency). */
  startup?: Stats;
  bytes: { content: number; zeroFill: number; moved: number };
  roundTrips: number;
  /**
   * `run` rows of jitmem's warm controller: minor page faults per iteration (mean), of the controller and the executor.
   */
  minorFaults?: { controller: number; executor?: number };
  /**
   * Each measurement round's sample count and median latency (ms), in the order run. The
   * rounds of a group run every mapper back to back, so round i of two mappers pair up.
   */
  rounds?: RoundSummary[];
  /** Cost counters per measured iteration, of both processes. */
  counters?: CellCounters;
  /** Absent on `run` rows: the linker's allocator lives in the iteration's own process. */
  slab?: SlabSummary;
  slabSeries?: SlabPoint[];
}

/** One process's cost counters per iteration (core/cost-counters.ts counts them; the report keeps their mean). */
export type ProcessCounters = ProcessCostCounters;

/** The counters' names, in the order the executor's counter service sends them. */
export const PROCESS_COUNTER_NAMES = PROCESS_COST_COUNTER_NAMES;

/** Counters that depend on the scheduler, the allocator of V8 and the GC as much as on the code: shown, never gated. */
export const UNGATED_COUNTERS: ReadonlySet<keyof ProcessCounters> = new Set([
  'minorFaults',
  'voluntarySwitches',
  'handlerNs',
]);

export interface CellCounters {
  controller: ProcessCounters;
  /** Null in-process, and for LLVM's executor, which has no counter service. */
  executor: ProcessCounters | null;
}

/** The distribution of one phase's operation durations over a cell's measured iterations (ms). */
export interface OperationLatency {
  /** Operations of this phase per iteration. */
  perIteration: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
  /** Operations measured in all. */
  count: number;
}

export interface RoundSummary {
  samples: number;
  p50: number;
  /**
   * This cell's place (0-based) in the round's order: the cells of a group alternate forward and backward (A B C D, D C
   * B A).
   */
  position?: number;
}

/** How one workload/pattern/policy group was sampled (bench --precision). */
export interface SamplingGroup {
  workload: string;
  pattern: string;
  policy: string;
  rounds: number;
  elapsedMs: number;
  /** Every speedup of the group reached the precision asked. */
  converged: boolean;
  /**
   * The headline speedup (shared memory over RPC copy) with the widest interval, its 95% CI half-width in percent of
   * the speedup: what the precision target stops on.
   */
  widest?: { label: string; percent: number };
  /** The widest interval among all the group's speedups. */
  widestAny?: { label: string; percent: number };
  /**
   * With a precision target: what the group waited for, `every` speedup (`--quick`, `--full`) or
   * the `headlines` (shared memory over RPC copy; the default preset), and every speedup of the
   * group (label as the summary names it, 95% CI half-width in percent, `headline` for shared
   * memory over RPC copy) still wider than the precision when sampling stopped, waited for or
   * not, widest first; empty when all reached it. The summary names each. Absent in reports of
   * older versions (which waited for the headlines) and in the run pattern's groups.
   */
  waitedFor?: 'every' | 'headlines';
  notConverged?: Array<{ label: string; percent: number; headline?: boolean }>;
  /**
   * A headline whose verdict was not settled when sampling stopped: its 95% interval crossed an
   * edge of the band of ±precision around 1 (sampling.ts verdictOf), and the rounds that would
   * settle it at the spread its rounds showed (absent when none would). Reports of the previous
   * version recorded `edgePercent` and `marginPercent` (how near 1 the interval ended) instead.
   */
  unsettled?: {
    label: string;
    ci95?: [number, number];
    roundsToSettle?: number;
    edgePercent?: number;
    marginPercent?: number;
  };
  /** Rounds and seconds the widest would need to reach the target (half-width shrinks as 1/sqrt(rounds)). */
  roundsNeeded?: number;
  secondsNeeded?: number;
}

/** The precision mode's target and budget, and how each group fared. */
export interface SamplingSection {
  /** The 95% CI half-width asked of every speedup, in percent; absent: a fixed number of rounds. */
  precision?: number;
  maxTimeMs?: number;
  minRounds: number;
  /**
   * A garbage collection ran before each round, outside the timed phases (a young-generation
   * one; a full one in older versions).
   */
  gcBetweenRounds: boolean;
  /** Unrecorded warm-up iterations each cell runs at the start of every round after the first. */
  warmupPerRound: number;
  groups: SamplingGroup[];
  /** How fast the machine itself ran: a fixed walk timed before each round (absent in older reports). */
  machineSpeed?: MachineSpeed;
}

/** The timings of a fixed piece of work through a run (harness/bench/machine-speed.ts), milliseconds. */
export interface MachineSpeed {
  /** What was timed. */
  work: string;
  /** The figures of each part of the run that had five timings or more, in the order they ran. */
  parts: MachineSpeedFigures[];
  /** Every timing, in order: when (ms since the first), wall and CPU time, and before which part's round. */
  series: Array<{ atMs: number; wallMs: number; cpuMs: number; part: 'matrix' | 'run' }>;
}

/** The walk's timings before the rounds of one part of the run: the matrix, or the run pattern. */
export interface MachineSpeedFigures {
  part: 'matrix' | 'run';
  samples: number;
  /** Its wall time: median, 5th and 95th percentiles, least and most. */
  wallMs: { p50: number; p5: number; p95: number; min: number; max: number };
  /** Its CPU time (the timing thread's) at the median. */
  cpuMsP50: number;
  /** The 95th percentile of the wall time over the 5th: how far apart the machine's fast and slow moments were. */
  spread: number;
  /** Timings whose CPU time was under 90% of their wall time: the thread waited for the CPU. */
  waitedForCpu: number;
}

export interface RatioRow {
  workload: string;
  pattern: string;
  policy: string;
  executor: string;
  mapper: string;
  baseline: 'rpc' | 'inprocess';
  speedup: number;
  ci95: [number, number];
  /**
   * Paired per-round speedups (median baseline / median mapper within round i); with them,
   * `speedup` is their geometric mean and `ci95` a Student-t interval over rounds.
   */
  rounds?: number[];
  /** Two-sided Wilcoxon signed-rank p-value of the per-round log speedups against 0 (no difference). */
  p?: number;
  /**
   * The same paired speedups for each mapper phase both rows timed (per round: the baseline's
   * median phase time over the mapper's). A phase a transport owns (initialize above all) moves
   * by the full size of a change to it, where the whole iteration moves by a fraction of it.
   */
  phases?: Partial<Record<PhaseName, PhaseSpeedup>>;
}

/** One phase's paired speedup over rounds (see RatioRow.phases). */
export interface PhaseSpeedup {
  speedup: number;
  ci95: [number, number];
  rounds: number[];
  p: number;
}

export interface BudgetRow {
  label: string;
  value: number;
  budget: number;
  unit: string;
  /** Whether the value must stay at or below the budget (default) or reach at least it. */
  direction?: 'at-most' | 'at-least';
  /**
   * The value's 95% interval, where it is measured over paired rounds: `value` is then the
   * estimate (mean of per-round differences, or geometric mean of per-round ratios) and the
   * verdict is the interval's.
   */
  ci95?: [number, number];
  /** Rounds the interval is taken over. */
  rounds?: number;
  /**
   * With an interval: `ok` when all of it is within the budget, `over` when all of it is past
   * it, `undecided` otherwise. Without one, the value alone decides (ok or over).
   */
  verdict?: 'ok' | 'over' | 'undecided';
  /**
   * Measured to stand beside one of ours (LLVM's executor on the same load), not judged: no
   * verdict. Reports from before it carried a verdict on such rows, which readers ignore.
   */
  informational?: boolean;
  /** False only when the verdict is `over` (ours; informational rows are always true). */
  ok: boolean;
}

/**
 * Whether a budget row was measured only to stand beside one of ours (no verdict of its own).
 * Reports from before `informational` carried a verdict on LLVM's executor's rows: the label tells them.
 */
export function isInformationalBudget(b: Pick<BudgetRow, 'label' | 'informational'>): boolean {
  return b.informational ?? b.label.includes("LLVM's executor");
}

export interface Placement {
  pin: 'same' | 'split' | 'none';
  controllerCpus: number[];
  executorCpus: number[];
  controllerSeenOn?: number[];
}

export interface ReportEnv {
  node: string;
  v8: string;
  os: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  cpus: number;
  pageSize: number;
  commit: string | null;
  dirty: boolean | null;
  placement: Placement;
}

/** One figure of the end-to-end comparison: a speedup with its interval, or why it is missing. */
export interface EndToEndHeadline {
  workload: string;
  linker: LinkerName;
  /** Whose executor the out-of-process rows used. */
  executor: 'jitmem' | 'llvm';
  /** The RPC-copy row the shared-memory row is compared with. */
  baseline: 'rpc' | 'generic' | 'simple-remote';
  /** jitmem's rows: from its warm controller or from a process per run. */
  controller?: 'warm' | 'process-per-run';
  /**
   * Time to exit over RPC copy / over shared memory: with rounds, the geometric mean of the
   * paired per-round speedups (median RPC copy / median shared memory within round i) with a
   * Student-t 95% interval over rounds on the log scale, as every ratio of the report; without
   * (older reports), the ratio of medians with a bootstrap interval.
   */
  speedup: number;
  ci95: [number, number];
  /** The paired per-round speedups. */
  rounds?: number[];
  /**
   * jitmem's rows: the transport phases' (reserve + write + initialize) share of time to exit,
   * mean over rounds of each round's median share, with a Student-t 95% interval cut to [0, 1].
   */
  transportShare?: { shared: TransportShare; rpc: TransportShare };
  /** Where the difference comes from, in phase figures. */
  explanation: string;
}

export interface TransportShare {
  share: number;
  ci95: [number, number];
  rounds: number;
}

export interface EndToEndSection {
  /** LLVM's tools, or why their rows are absent. */
  /**
   * `rerun`: llvm-jitlink runs refused by a race of its own ("In <Absolute Symbols>, duplicate
   * definition of symbol") and run again once; the sample is the second run's.
   */
  llvm: { available: boolean; version?: string; dir: string; reason?: string; rerun?: number };
  /** jitmem's linker, or why its rows are absent. */
  jitmem: { available: boolean; reason?: string };
  /** Executor spawn to its Setup message, per executor, measured alike in interleaved rounds. */
  startup: Array<{
    executor: 'jitmem' | 'llvm';
    /** jitmem's: started from its entry file or from its startup snapshot. */ from?: 'entry file' | 'snapshot';
    stats: Stats;
  }>;
  /** Spawn to exit of `node -e 0`: the floor under any Node executor's start-up. */
  nodeFloor?: Stats;
  headlines: EndToEndHeadline[];
  /**
   * Where the run pattern's processes ran: not pinned (any of `allowedCpus`, whatever --pin said
   * for the matrix), and how jitmem's warm controllers ran: their V8 flags, and the unrecorded
   * iterations each ran before its measured ones (`warmControllerWarmup`; absent in reports from
   * before it was recorded, which warmed up 5). Absent in older reports, whose run pattern
   * inherited the matrix's pinning.
   */
  placement?: { allowedCpus: number[]; warmControllerV8Flags: string[]; warmControllerWarmup?: number };
}

export interface Report {
  schema: 1;
  tool: { name: 'jitmem'; version: string };
  createdAt: string;
  command?: string[];
  options: {
    preset: 'default' | 'quick' | 'full' | 'custom';
    seed: number;
    cold: boolean;
    pin: Placement['pin'];
    time?: number;
    iterations?: number;
  };
  env: ReportEnv;
  results: ResultRow[];
  ratios: RatioRow[];
  budgets?: BudgetRow[];
  /** The `run` pattern's comparison of linkers, transports and executors. */
  endToEnd?: EndToEndSection;
  /** How long each group was sampled and whether it reached the precision asked. */
  sampling?: SamplingSection;
}

type Validator = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string }> | null };
let validator: Validator | undefined;

function schemaValidator(): Validator {
  if (validator) return validator;
  const require = createRequire(import.meta.url);
  const Ajv = require('ajv') as new (opts: object) => { compile(schema: object): Validator };
  const schema = JSON.parse(
    readFileSync(new URL('../../../reports/schema-v1.json', import.meta.url), 'utf8'),
  ) as object;
  validator = new Ajv({ allErrors: true, strict: false, validateFormats: false }).compile(schema);
  return validator;
}

/**
 * Checks that `data` is a schema-1 report. Throws ERR_REPORT_SCHEMA_VERSION for another
 * version and ERR_REPORT_INVALID (with the first few problems, by JSON path) otherwise.
 */
export function validateReport(data: unknown, source = 'report'): Report {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new JitmemError(
      'ERR_REPORT_INVALID',
      `${source} is not a jitmem report: expected a JSON object, got ${Array.isArray(data) ? 'an array' : data === null ? 'null' : typeof data}`,
      { source },
    );
  }
  const version = (data as { schema?: unknown }).schema;
  // No schema field at all: some other JSON file (a package.json), not an old report.
  if (version === undefined) {
    throw new JitmemError(
      'ERR_REPORT_INVALID',
      `${source} is not a jitmem report: it has no "schema" field; give a file written by jitmem bench`,
      { source },
    );
  }
  if (version !== REPORT_SCHEMA_VERSION) {
    throw new JitmemError(
      'ERR_REPORT_SCHEMA_VERSION',
      `${source} has schema ${JSON.stringify(version)}; this jitmem reads schema ${REPORT_SCHEMA_VERSION} only (re-run the benchmark with this version to compare)`,
      { source, schema: version },
    );
  }
  const validate = schemaValidator();
  if (!validate(data)) {
    const problems = (validate.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    throw new JitmemError('ERR_REPORT_INVALID', `${source} does not match report schema 1: ${problems.join('; ')}`, {
      source,
      problems,
    });
  }
  return data as Report;
}

/** The largest report file read; a bench report is a few MB (samples are one line per array). */
export const MAX_REPORT_BYTES = 256 * 1024 * 1024;

/**
 * Samples kept per sample set once a report is read. compare's bootstrap and rank test and the
 * charts' box plots cost O(n log n) per resample in the samples of a row; a row of millions
 * would take hours. An evenly spaced subsample in the original order keeps the distribution
 * (and any drift over time) to within 1/MAX_SAMPLES_PER_ROW in every quantile.
 */
export const MAX_SAMPLES_PER_ROW = 2048;

/** Reads and validates a report file: a regular file of at most 256 MiB, schema 1. */
export function readReport(file: string): Report {
  const bytes = readRegularFile(file, {
    what: 'report',
    maxBytes: MAX_REPORT_BYTES,
    limitText: '256 MiB',
    unreadableCode: 'ERR_REPORT_UNREADABLE',
    tooLargeCode: 'ERR_REPORT_TOO_LARGE',
  });
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new JitmemError(
      'ERR_REPORT_INVALID',
      `${file} is not valid JSON: ${(err as Error).message}`,
      { file },
      { cause: err },
    );
  }
  return subsampleReport(validateReport(data, file));
}

/**
 * Caps every sample set of a report at MAX_SAMPLES_PER_ROW (see there); `samplesCount` and the
 * stored statistics still describe all the samples the run took.
 */
export function subsampleReport(report: Report, limit = MAX_SAMPLES_PER_ROW): Report {
  const cap = (s: Stats): void => {
    const n = s.samples.length;
    if (n <= limit) return;
    const kept = new Array<number>(limit);
    for (let i = 0; i < limit; i++) kept[i] = s.samples[Math.floor(((i + 0.5) * n) / limit)]!;
    s.samples = kept;
  };
  for (const row of report.results) {
    cap(row.latency);
    for (const phase of Object.values(row.phases)) if (phase) cap(phase);
  }
  return report;
}

/**
 * A report as a file: indented for reading, except that number arrays (the raw samples, tens
 * of thousands for a fast cell) stay on one line each, which keeps reports a few MB at most.
 */
export function formatReportJson(report: Report): string {
  const placeholders: string[] = [];
  const text = JSON.stringify(
    report,
    (_key, value: unknown) => {
      if (Array.isArray(value) && value.length > 8 && value.every((v) => typeof v === 'number')) {
        placeholders.push(JSON.stringify(value));
        return `\u0000${placeholders.length - 1}`;
      }
      return value;
    },
    1,
  );
  return text.replace(/"\\u0000(\d+)"/g, (_m, i: string) => placeholders[Number(i)]!) + '\n';
}
