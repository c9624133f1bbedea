import { Bench } from 'tinybench';
import * as native from '../../native/index.js';
import { JitmemError } from '../../core/errors.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { CodePatch, MemoryMapper, PatchOptions } from '../../mappers/memory-mapper.js';
import type { FitPolicy } from '../../mappers/slab/free-range-index.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../../mappers/slab/slab-memory-manager.js';
import type {
  CellCounters,
  OperationLatency,
  ExecutorName,
  MapperName,
  PatternName,
  PhaseName,
  ProcessCounters,
  ResultRow,
  SlabPoint,
  Stats,
} from '../report/report.js';
import { PROCESS_COST_COUNTER_NAMES, costCountersDelta, type ProcessCostCounters } from '../../core/cost-counters.js';
import { PHASES } from '../report/report.js';
import { PhaseClock, ReserveTimingMapper } from './phase-clock.js';
import { CpuClock, cpuBetween, type CpuReading } from './cpu-clock.js';
import { operationLatencyOf, toStats } from './stats.js';
import { verifyLive, type MemoryDigester, type MemoryReader } from './integrity.js';
import type { Plan } from '../../workloads/patterns/plan.js';
import { runPlan, type PlanOperation } from '../../workloads/patterns/run-plan.js';

/**
 * Runs one cell of the matrix (workload × pattern × mapper × executor × policy) with tinybench.
 * Every iteration executes the pattern's steps against a slab memory manager over the cell's
 * mapper, times each phase, and verifies the executor's memory outside the timed phases. The
 * latency of an iteration is the sum of its phases: pattern bookkeeping and verification are
 * not part of it.
 */

/** What the runner needs of a transport: a mapper plus the means to check and count. */
export interface MapperHandle {
  readonly mapper: MapperName;
  readonly executor: ExecutorName;
  readonly memoryMapper: MemoryMapper;
  /** sha256 of executor memory ranges, computed in the executor. */
  readonly digest: MemoryDigester;
  /** Reads executor memory back, to name the first wrong byte on a mismatch. */
  readonly read?: MemoryReader;
  /** Cumulative controller→executor calls, bytes sent and received (zeros in-process). */
  counters(): { calls: number; bytesSent: number; bytesReceived?: number };
  /**
   * Cumulative cost counters of both processes (executor null when it has none to report).
   * Taking them may itself cost a call; the runner measures and subtracts that.
   */
  costCounters?(): Promise<CostSnapshot>;
  /**
   * The controller's side of costCounters, taken locally and at once (no call). Cells that take
   * turns iteration by iteration share this process, so its counters are read around each
   * iteration rather than around the round, or each cell would count the others' work.
   */
  controllerCounters?(): ProcessCostCounters;
  /** Rewrites code in finalized allocations in place, a batch at a time (the `patch` pattern). */
  readonly patch?: (patches: readonly CodePatch[], options?: PatchOptions) => Promise<void>;
  readonly executorPid?: number;
  close(): Promise<void>;
}

export interface CostSnapshot {
  readonly controller: ProcessCostCounters;
  readonly executor: ProcessCostCounters | null;
}

function zeroCounters(): ProcessCostCounters {
  const z = {} as ProcessCostCounters;
  for (const k of PROCESS_COST_COUNTER_NAMES) z[k] = 0;
  return z;
}

function addInto(into: ProcessCostCounters, delta: ProcessCostCounters, sign = 1): void {
  for (const k of PROCESS_COST_COUNTER_NAMES) into[k] += sign * delta[k];
}

function snapshotDelta(after: CostSnapshot, before: CostSnapshot): CostSnapshot {
  return {
    controller: costCountersDelta(after.controller, before.controller),
    executor: after.executor && before.executor ? costCountersDelta(after.executor, before.executor) : null,
  };
}

export interface Cell {
  readonly workload: string;
  readonly pattern: PatternName;
  readonly mapper: MapperName;
  readonly executor: ExecutorName;
  readonly policy: FitPolicy;
}

export function cellName(c: Cell): string {
  return `${c.workload}/${c.pattern}/${c.mapper}${c.executor === 'none' ? '' : `@${c.executor}`}/${c.policy}`;
}

/**
 * Where an iteration checks that the executor's memory holds exactly the bytes written (the
 * executor hashes it; LLVM's is read back): at 'every free', of what it frees, or at its 'end',
 * of what is live before its last free, or 'none'. A free checked in the middle of an iteration
 * stalls its pipeline (the check needs the operations before it done), so only warm-ups check:
 * the first `warmupIterations` of each cell's first round every free, so that every free a plan
 * makes in the middle of its pattern is checked in every cell, and the warm-up iteration that
 * starts each later round its end, so that every round checks each cell on its warm slab.
 * Measured iterations are not checked: on python/load the end check added 4-34 ms to iterations
 * of 11-73 ms (30-50%), which a group's share would pay for with fewer rounds. Checked at every
 * free, the later rounds' warm-ups took 380-650 ms of each python/churn round over its four
 * cells, longer than the round's measured part.
 */
export type IntegrityChecks = 'every free' | 'end' | 'none';

export interface CellRunOptions {
  /** Sampling time in milliseconds (tinybench `time`). */
  readonly time: number;
  /** Minimum iterations (tinybench `iterations`). */
  readonly iterations: number;
  /** Warm-up iterations that check every free (tinybench's; interleaved, the first round's first). */
  readonly warmupIterations: number;
  /** Warm-up time in milliseconds before the first round (tinybench `warmupTime`; default 0). */
  readonly warmupTime?: number;
  /** A fresh slab every iteration instead of one kept warm across iterations. */
  readonly cold: boolean;
  readonly granularity: number;
  /** Called after each measured iteration (progress). */
  readonly onIteration?: (done: number) => void;
}

/** What verification needs of a live allocation beyond the allocation itself. */
interface Checked {
  readonly graph: LinkGraph;
  readonly patches: Array<{ offset: number; bytes: Uint8Array }>;
}

/** The phase each plan operation is timed as (allocate is split between reserve and prepare). */
/**
 * Finalizes and frees a plan keeps in flight: enough that a remote transport answers a run of
 * them in a few wake-ups rather than one round trip each, few enough that freed ranges come
 * back to the allocator soon (a range is reused only once its deinitialize has returned).
 */
const IN_FLIGHT = 64;

const PHASE_OF: Record<Exclude<PlanOperation, 'allocate'>, PhaseName> = {
  finalize: 'initialize',
  patch: 'initialize',
  free: 'deinitialize',
};

export class CellRunner {
  private readonly clock = new PhaseClock();
  private readonly timedMapper: ReserveTimingMapper;
  private warm: SlabMemoryManager | undefined;
  private readonly phaseSamples: Record<PhaseName, number[]> = {
    reserve: [],
    prepare: [],
    write: [],
    initialize: [],
    deinitialize: [],
    release: [],
  };
  /** Every measured operation's own duration, per phase (the per-operation latency; they overlap). */
  private readonly operationSamples: Record<PhaseName, number[]> = {
    reserve: [],
    prepare: [],
    write: [],
    initialize: [],
    deinitialize: [],
    release: [],
  };
  private readonly operationCounts: Record<PhaseName, number> = {
    reserve: 0,
    prepare: 0,
    write: 0,
    initialize: 0,
    deinitialize: 0,
    release: 0,
  };
  private readonly latencySamples: number[] = [];
  /** CPU milliseconds per measured iteration, of the controller and of the executor (integrity checks left out). */
  private readonly cpuSamples = { controller: [] as number[], executor: [] as number[] };
  private readonly cpu: CpuClock;
  private lastCpu: CpuReading = { controller: 0, executor: null };
  private series: SlabPoint[] | undefined;
  private contentBytes = 0;
  private zeroFillBytes = 0;
  /** Whether tinybench is in its measured mode (see round()): its iterations are recorded. */
  private measured = false;
  /**
   * What the iteration running checks of the executor's memory (see IntegrityChecks): set by
   * whoever runs it, 'none' unless they say otherwise.
   */
  private checks: IntegrityChecks = 'none';
  private lastManager: SlabMemoryManager | undefined;
  private readonly cpusSeen = new Set<number>();
  /** Traffic of the integrity checks, which is not the transport's and is taken out of the counts. */
  private readonly checkTraffic = { calls: 0, bytesSent: 0, bytesReceived: 0 };
  /** Cost counters over every measured iteration, the integrity checks and the counters' own calls taken out. */
  private readonly cost = { controller: zeroCounters(), executor: zeroCounters() as ProcessCostCounters | null };
  /** What taking one snapshot costs (measured once: two snapshots back to back). */
  private snapshotCost: CostSnapshot | undefined;
  /** The transport's own calls and bytes over every measured iteration. */
  private readonly transport = { calls: 0, bytesSent: 0 };
  private iterationsRun = 0;

  constructor(
    readonly cell: Cell,
    private readonly handle: MapperHandle,
    private readonly plan: Plan,
    private readonly options: CellRunOptions,
  ) {
    this.timedMapper = new ReserveTimingMapper(handle.memoryMapper, this.clock);
    this.cpu = new CpuClock(handle.executorPid);
  }

  /** The latency samples measured so far, in order. */
  get latencies(): readonly number[] {
    return this.latencySamples;
  }

  /** CPUs the controller was seen on while this cell ran. */
  get controllerCpus(): number[] {
    return [...this.cpusSeen].sort((a, b) => a - b);
  }

  /** Runs the cell in one go (a single round): what a lone cell needs. */
  async run(): Promise<ResultRow> {
    await this.round(this.options.time, this.options.iterations, true);
    return this.finish();
  }

  /**
   * Measures one round of this cell: tinybench for `time` ms and at least `iterations`
   * iterations, the slab kept warm from earlier rounds (unless cold). The bench interleaves
   * the rounds of the cells it compares, so that a slow drift of the machine's speed falls on
   * all of them alike rather than on whichever ran last.
   */
  async round(time: number, iterations: number, warmup: boolean | number): Promise<void> {
    const name = cellName(this.cell);
    this.cpu.refresh();
    // true: the cell's first round, warmed up in full; a number: that many unrecorded iterations
    // first (after another cell's round, caches, the JIT's and the executor's, are the other's).
    const warmupIterations = warmup === true ? this.options.warmupIterations : warmup === false ? 0 : warmup;
    const bench = new Bench({
      time,
      iterations,
      warmupIterations,
      warmupTime: warmup === true ? (this.options.warmupTime ?? 0) : 0,
      warmup: warmupIterations > 0,
      throws: true,
      retainSamples: false,
    });
    let countersAtStart = { calls: 0, bytesSent: 0 };
    let checksAtStart = { calls: 0, bytesSent: 0, bytesReceived: 0 };
    let costAtStart: CostSnapshot | undefined;
    const costCounters = this.handle.costCounters?.bind(this.handle);
    if (costCounters && !this.snapshotCost) {
      const a = await costCounters();
      this.snapshotCost = snapshotDelta(await costCounters(), a);
    }
    bench.add(
      name,
      async () => {
        const total = await this.iteration(this.iterationsRun++, name);
        if (this.measured) this.record(total);
        return { overriddenDuration: total };
      },
      {
        beforeAll: async (mode) => {
          this.measured = mode === 'run';
          this.checks = this.measured ? 'none' : 'every free';
          if (this.measured) {
            if (costCounters) costAtStart = await costCounters();
            countersAtStart = this.handle.counters();
            checksAtStart = { ...this.checkTraffic };
          }
        },
      },
    );
    await bench.run();
    const after = this.handle.counters();
    this.transport.calls += after.calls - countersAtStart.calls - (this.checkTraffic.calls - checksAtStart.calls);
    this.transport.bytesSent +=
      after.bytesSent - countersAtStart.bytesSent - (this.checkTraffic.bytesSent - checksAtStart.bytesSent);
    if (costCounters && costAtStart && this.snapshotCost)
      this.addCost(snapshotDelta(await costCounters(), costAtStart), checksAtStart);
  }

  /** Counters at the start of the measured part of the current round (interleaved rounds). */
  private roundStart:
    | {
        counters: { calls: number; bytesSent: number };
        checks: { calls: number; bytesSent: number; bytesReceived: number };
        cost: CostSnapshot | undefined;
      }
    | undefined;
  /** This process's counters summed over the current round's own iterations (see controllerCounters). */
  private roundController: ProcessCostCounters | undefined;

  /**
   * Unrecorded iterations at the start of a round measured a step at a time (see step()), after
   * the first (see firstRoundWarmupStep), each checking what is live at its end.
   */
  async warmup(iterations: number): Promise<void> {
    this.cpu.refresh();
    const name = cellName(this.cell);
    this.checks = 'end';
    try {
      for (let i = 0; i < iterations; i++) await this.iteration(this.iterationsRun++, name);
    } finally {
      this.checks = 'none';
    }
  }

  /**
   * One unrecorded iteration of the first round's warm-up, which the caller interleaves with the
   * other cells' as the measured iterations will be: the cell's first `warmupIterations` check
   * every free, the rest nothing, as measured iterations. Interleaved, the checked iterations
   * count within the warm-up time instead of before it: python/churn's first round took 1.1 s of
   * checked iterations, one cell after the other, and then 0.45 s interleaved.
   */
  async firstRoundWarmupStep(): Promise<number> {
    // The first round's warm-up is the first thing a cell runs: its first iterations are these.
    if (this.iterationsRun < this.options.warmupIterations) this.checks = 'every free';
    try {
      return await this.step({ record: false });
    } finally {
      this.checks = 'none';
    }
  }

  /**
   * Starts the measured part of a round that the caller drives a step (one iteration) at a time, interleaved with other
   * cells.
   */
  async beginMeasuring(): Promise<void> {
    const costCounters = this.handle.costCounters?.bind(this.handle);
    if (costCounters && !this.snapshotCost) {
      const a = await costCounters();
      this.snapshotCost = snapshotDelta(await costCounters(), a);
    }
    this.roundStart = {
      cost: costCounters ? await costCounters() : undefined,
      counters: this.handle.counters(),
      checks: { ...this.checkTraffic },
    };
    this.roundController = this.handle.controllerCounters ? zeroCounters() : undefined;
  }

  /**
   * One iteration as a measured one runs (its integrity checks as `checks` says: none, unless a
   * warm-up asks); returns its latency (ms). `record: false`: a warm-up that runs the measured
   * code paths, interleaved with other cells as the measured iterations will be, and is neither
   * recorded nor counted.
   */
  async step(options: { record?: boolean } = {}): Promise<number> {
    if (options.record === false) return this.iteration(this.iterationsRun++, cellName(this.cell));
    const before = this.handle.controllerCounters?.();
    const total = await this.iteration(this.iterationsRun++, cellName(this.cell));
    if (before && this.roundController) {
      addInto(this.roundController, costCountersDelta(this.handle.controllerCounters!(), before));
    }
    this.record(total);
    return total;
  }

  /** Ends the measured part of the round: its transport traffic and cost counters go into the cell's. */
  async endMeasuring(): Promise<void> {
    const start = this.roundStart;
    this.roundStart = undefined;
    if (!start) return;
    const after = this.handle.counters();
    this.transport.calls += after.calls - start.counters.calls - (this.checkTraffic.calls - start.checks.calls);
    this.transport.bytesSent +=
      after.bytesSent - start.counters.bytesSent - (this.checkTraffic.bytesSent - start.checks.bytesSent);
    const costCounters = this.handle.costCounters?.bind(this.handle);
    const ownController = this.roundController;
    this.roundController = undefined;
    if (costCounters && start.cost && this.snapshotCost) {
      const delta = snapshotDelta(await costCounters(), start.cost);
      this.addCost(
        ownController ? { ...delta, controller: ownController } : delta,
        start.checks,
        ownController === undefined,
      );
    }
  }

  private record(total: number): void {
    for (const p of PHASES) {
      this.phaseSamples[p].push(this.clock.totals[p]);
      const ops = this.clock.operations[p];
      this.operationCounts[p] += ops.length;
      for (const d of ops) this.operationSamples[p].push(d);
    }
    this.latencySamples.push(total);
    this.cpuSamples.controller.push(Math.max(0, this.lastCpu.controller));
    if (this.lastCpu.executor !== null) this.cpuSamples.executor.push(Math.max(0, this.lastCpu.executor));
    this.options.onIteration?.(this.latencySamples.length);
  }

  /**
   * Adds one round's counter deltas, less the snapshot's own cost and the integrity checks'
   * traffic: the checks' calls and bytes as the controller counted them, and their mirror on
   * the executor (what one side sent, the other received).
   */
  private addCost(
    delta: CostSnapshot,
    checksAtStart: { calls: number; bytesSent: number; bytesReceived: number },
    controllerHoldsSnapshots = true,
  ): void {
    const calls = this.checkTraffic.calls - checksAtStart.calls;
    const sent = this.checkTraffic.bytesSent - checksAtStart.bytesSent;
    const received = this.checkTraffic.bytesReceived - checksAtStart.bytesReceived;
    addInto(this.cost.controller, delta.controller);
    // Counted around each iteration, the controller's figures hold no snapshot of their own.
    if (controllerHoldsSnapshots) addInto(this.cost.controller, this.snapshotCost!.controller, -1);
    this.cost.controller.roundTrips -= calls;
    this.cost.controller.wireBytesOut -= sent;
    this.cost.controller.wireBytesIn -= received;
    if (delta.executor && this.snapshotCost!.executor && this.cost.executor) {
      addInto(this.cost.executor, delta.executor);
      addInto(this.cost.executor, this.snapshotCost!.executor, -1);
      this.cost.executor.roundTrips -= calls;
      this.cost.executor.wireBytesIn -= sent;
      this.cost.executor.wireBytesOut -= received;
    } else {
      this.cost.executor = null;
    }
  }

  /** Counters per measured iteration (negative noise from the snapshot's cost clamped to 0). */
  private costPerIteration(n: number): CellCounters | undefined {
    if (!this.handle.costCounters || !this.snapshotCost) return undefined;
    const per = (c: ProcessCostCounters): ProcessCounters => {
      const out = {} as ProcessCounters;
      for (const k of PROCESS_COST_COUNTER_NAMES) out[k] = Math.max(0, Math.round((c[k] / n) * 1000) / 1000);
      return out;
    };
    return { controller: per(this.cost.controller), executor: this.cost.executor ? per(this.cost.executor) : null };
  }

  /** Gives the warm slab back and summarizes every round into the cell's row. */
  async finish(): Promise<ResultRow> {
    const name = cellName(this.cell);
    await this.warm?.close();
    this.warm = undefined;
    const n = this.latencySamples.length;
    if (n === 0) throw new JitmemError('ERR_BENCH_NO_SAMPLES', `cell ${name} produced no samples`, { cell: name });
    const phases: Partial<Record<PhaseName, Stats>> = {};
    for (const p of PHASES) phases[p] = toStats(this.phaseSamples[p]);
    const operationLatency: Partial<Record<PhaseName, OperationLatency>> = {};
    for (const p of PHASES)
      if (this.operationCounts[p] > 0) operationLatency[p] = operationLatencyOf(this.operationSamples[p], n);
    const slab = this.lastManager!.stats();
    return {
      ...this.cell,
      ...(this.options.cold ? { cold: true } : {}),
      contentBytes: this.contentBytes,
      latency: toStats(this.latencySamples),
      cpu: {
        controller: toStats(this.cpuSamples.controller),
        executor: this.cpuSamples.executor.length === n ? toStats(this.cpuSamples.executor) : null,
      },
      phases,
      ...(Object.keys(operationLatency).length ? { operationLatency } : {}),
      bytes: {
        content: this.contentBytes,
        zeroFill: this.zeroFillBytes,
        moved: Math.round(this.transport.bytesSent / n),
      },
      roundTrips: this.transport.calls / n,
      ...(this.costPerIteration(n) ? { counters: this.costPerIteration(n)! } : {}),
      slab: {
        policy: slab.policy,
        reservedBytes: slab.reservedBytes,
        peakReservedBytes: slab.peakReservedBytes,
        liveBytes: slab.liveBytes,
        peakLiveBytes: slab.peakLiveBytes,
        freeRanges: slab.freeRanges,
        largestFreeRange: slab.largestFreeRange,
        fragmentation: slab.fragmentation,
        merges: slab.merges,
      },
      ...(this.series && this.series.length > 1 ? { slabSeries: this.series } : {}),
    };
  }

  private manager(): SlabMemoryManager {
    if (this.options.cold) {
      return new SlabMemoryManager(this.timedMapper, {
        granularity: this.options.granularity,
        policy: this.cell.policy,
      });
    }
    return (this.warm ??= new SlabMemoryManager(this.timedMapper, {
      granularity: this.options.granularity,
      policy: this.cell.policy,
    }));
  }

  /** One iteration; returns its latency (sum of phases) in milliseconds. */
  private async iteration(i: number, name: string): Promise<number> {
    const clock = this.clock;
    clock.reset();
    this.cpusSeen.add(native.currentCpu());
    const manager = this.manager();
    this.lastManager = manager;
    const checked = new Map<FinalizedAllocation, Checked>();
    const record: SlabPoint[] | undefined = i === 0 && this.cell.pattern === 'churn' ? (this.series = []) : undefined;
    let content = 0;
    let zeroFill = 0;
    const cpuStart = this.cpu.read();
    // CPU the integrity checks use (the executor hashes its memory) is not the iteration's.
    let checksCpu: CpuReading = { controller: 0, executor: 0 };
    const patchCode =
      this.handle.patch ??
      (() =>
        Promise.reject(
          new JitmemError(
            'ERR_PATCH_UNSUPPORTED',
            `cell ${name}: the ${this.cell.mapper} mapper cannot patch finalized code`,
            { cell: name },
          ),
        ));
    // Plans are stateless: each iteration replays the same steps from the start.
    await runPlan(this.plan, manager, {
      inFlight: IN_FLIGHT,
      freeAtEnd: true,
      patcher: { patchCode },
      hooks: {
        time: (op, call) => {
          // Reserve happens inside allocate and is timed on its own (ReserveTimingMapper): the rest is prepare.
          if (op === 'allocate') return clock.timeEnclosing('prepare', call);
          return clock.timeAsync(PHASE_OF[op], call);
        },
        timeWrite: (call) => clock.time('write', call),
        finalized: (step, fin) => {
          for (const seg of fin.layout.segments) {
            content += seg.contentSize;
            zeroFill += seg.zeroFillSize;
          }
          checked.set(fin, { graph: step.graph, patches: [] });
        },
        patched: (fin, address, bytes) => checked.get(fin)!.patches.push({ offset: address - fin.base, bytes }),
        beforeFree: async (allocs, { last, drain }) => {
          if (this.checks === 'none' || (this.checks === 'end' && !last)) return;
          await drain();
          const before = this.cpu.read();
          await this.verify(name, allocs, checked);
          const used = cpuBetween(this.cpu.read(), before);
          checksCpu = {
            controller: checksCpu.controller + used.controller,
            executor: checksCpu.executor !== null && used.executor !== null ? checksCpu.executor + used.executor : null,
          };
        },
      },
      afterStep: record
        ? (step) => {
            if (step.op === 'phase') return;
            const s = manager.stats();
            record.push({
              step: record.length,
              freeRanges: s.freeRanges,
              fragmentation: s.fragmentation,
              liveBytes: s.liveBytes,
              reservedBytes: s.reservedBytes,
            });
          }
        : undefined,
    });
    if (this.options.cold) await clock.timeAsync('release', () => manager.close());
    this.contentBytes = content;
    this.zeroFillBytes = zeroFill;
    const used = cpuBetween(this.cpu.read(), cpuStart);
    this.lastCpu = {
      controller: used.controller - checksCpu.controller,
      executor: used.executor !== null && checksCpu.executor !== null ? used.executor - checksCpu.executor : null,
    };
    return clock.total();
  }

  /** Verifies the executor's memory of allocations about to be freed; its traffic is not the transport's. */
  private async verify(
    name: string,
    allocs: readonly FinalizedAllocation[],
    checked: ReadonlyMap<FinalizedAllocation, Checked>,
  ): Promise<void> {
    const before = this.handle.counters();
    await verifyLive(
      name,
      allocs.map((fin) => ({
        graph: checked.get(fin)!.graph,
        layout: fin.layout,
        base: fin.base,
        patches: checked.get(fin)!.patches,
      })),
      this.handle.digest,
      this.handle.read,
    );
    const after = this.handle.counters();
    this.checkTraffic.calls += after.calls - before.calls;
    this.checkTraffic.bytesSent += after.bytesSent - before.bytesSent;
    this.checkTraffic.bytesReceived += (after.bytesReceived ?? 0) - (before.bytesReceived ?? 0);
  }
}
