import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';
import { allocGroup, R, X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { median } from '../statistics.js';
import { budgetVerdict, summarizePaired } from './ratios.js';
import type { BudgetRow } from '../report/report.js';
import { closeOrKill, withCleanup } from '../../core/cleanup.js';

/**
 * What one remote call costs beside what a finalize costs: a no-op round trip and the finalize
 * of a one-page graph through shared memory, measured alternately against one jitmem executor,
 * so that both see the same machine. A finalize that is one round trip plus a few microseconds
 * of work in the executor stays within 1.5x the no-op.
 */

export interface RoundTripProbe {
  /** Median microseconds. */
  readonly noopUs: number;
  readonly finalizeUs: number;
  readonly samples: number;
  /**
   * Median microseconds the controller spends in finalize() until it returns, the call on the
   * wire: the write included, since the channel writes a turn's first frame at once (and, the two
   * processes on one CPU, the executor's run it wakes when the kernel switches to it there and
   * then), where before it ended before the write.
   */
  readonly controllerFinalizeUs: number;
  /**
   * The executor's handler time per call (its handlerNs counter over a run of each kind), us:
   * a no-op, and a finalize with the deinitialize that follows it (two calls).
   */
  readonly executorHandlerUs?: { readonly noop: number; readonly finalizeAndFree: number };
  /**
   * The finalize-over-no-op ratio of each block of PROBE_BLOCK consecutive pairs (median finalize
   * over median no-op within the block): the rounds its interval is taken over. The bench takes
   * its blocks at moments spread over the run (RoundTripProbeSession).
   */
  readonly blockRatios: readonly number[];
}

/**
 * Pairs per block of the probe's interval. The pairs alternate a no-op and a finalize, so each
 * block sees one spell of the machine on both sides; 1000 pairs make 20 blocks.
 */
const PROBE_BLOCK = 50;
const PROBE_BLOCKS = 20;
/**
 * Unrecorded pairs before each block: the executor has been idle since the last, and the first
 * call to an idle executor costs 0.6-2.6 ms on this VM (its CPU woken), JIT tiers and page faults
 * come with the first block.
 */
const BLOCK_WARMUP = 20;

/** One page of code: `mov eax, 7; ret`, padded with int3. */
function onePageGraph(pageSize: number): LinkGraph {
  const code = new Uint8Array(Math.min(256, pageSize)).fill(0xcc);
  code.set([0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3]);
  return {
    name: 'one-page',
    sections: [{ name: '.text', group: allocGroup(R | X), alignment: 16, size: code.length, content: code }],
  };
}

/**
 * The probe over one jitmem executor, its blocks taken at moments the bench chooses (between the
 * matrix's groups, then after the run pattern), so that its interval holds the machine's spells
 * over the run: taken all at once, in 0.1 s, a spell that slowed every call (a no-op 23.5 us where
 * it took 15.6, the controller's finalize 10.9 us where it took 4.2) read 1.66x (95% CI 1.57-1.74)
 * "over budget" in one of five runs of a commit that read 1.32-1.33x in the other four.
 */
export class RoundTripProbeSession {
  private readonly noop: number[] = [];
  private readonly finalize: number[] = [];
  private readonly controllerFinalize: number[] = [];
  private readonly blockRatios: number[] = [];

  private constructor(
    private readonly session: ExecutorSession,
    private readonly mapper: SharedMemoryMapper,
    private readonly manager: SlabMemoryManager,
    private readonly graph: LinkGraph,
  ) {}

  /** Spawns the probe's executor (on `executorCpus` when given). */
  static async open(options: { executorCpus?: readonly number[] | null } = {}): Promise<RoundTripProbeSession> {
    const session = await ExecutorSession.spawn();
    try {
      if (options.executorCpus && session.pid !== undefined) native.setAffinity(session.pid, options.executorCpus);
      const mapper = new SharedMemoryMapper(session);
      const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
      return new RoundTripProbeSession(session, mapper, manager, onePageGraph(mapper.pageSize));
    } catch (err) {
      session.kill();
      throw err;
    }
  }

  /** Blocks the probe takes. */
  static readonly BLOCKS = PROBE_BLOCKS;

  /** The probe's executor process. */
  get executorPid(): number | undefined {
    return this.session.pid;
  }

  /** Blocks taken so far. */
  get blocks(): number {
    return this.blockRatios.length;
  }

  /** One block: BLOCK_WARMUP unrecorded pairs, then PROBE_BLOCK measured ones, a no-op then a finalize each. */
  async block(): Promise<void> {
    const noop: number[] = [];
    const finalize: number[] = [];
    const controllerFinalize: number[] = [];
    for (let i = -BLOCK_WARMUP; i < PROBE_BLOCK; i++) {
      const t0 = performance.now();
      await this.session.noop();
      const t1 = performance.now();
      const alloc = await this.manager.allocate(this.graph);
      alloc.writeContent();
      const t2 = performance.now();
      const pending = alloc.finalize();
      const t2s = performance.now();
      const fin = await pending;
      const t3 = performance.now();
      await this.manager.deallocate([fin]);
      if (i < 0) continue;
      noop.push((t1 - t0) * 1000);
      finalize.push((t3 - t2) * 1000);
      controllerFinalize.push((t2s - t2) * 1000);
    }
    // A block counts whole or not at all.
    this.noop.push(...noop);
    this.finalize.push(...finalize);
    this.controllerFinalize.push(...controllerFinalize);
    const n = median(noop);
    const f = median(finalize);
    if (n > 0 && f > 0) this.blockRatios.push(f / n);
  }

  /** The figures of the blocks taken, with the executor's handler times; closes the executor. */
  async finish(): Promise<RoundTripProbe> {
    return withCleanup(async () => {
      const executorHandlerUs = this.session.hasCostCounters
        ? await handlerTimes(this.session, this.manager, this.graph, Math.min(this.noop.length, 500))
        : undefined;
      await this.manager.close();
      await this.mapper.close();
      return {
        noopUs: median(this.noop),
        finalizeUs: median(this.finalize),
        samples: this.noop.length,
        controllerFinalizeUs: median(this.controllerFinalize),
        ...(executorHandlerUs ? { executorHandlerUs } : {}),
        blockRatios: [...this.blockRatios],
      };
    }, [() => closeOrKill(this.session)]);
  }

  /** Ends the executor at once (a bench that failed). */
  kill(): void {
    this.session.kill();
  }
}

/** The executor's mean handler time per no-op, and per finalize + deinitialize, from its counters. */
async function handlerTimes(session: ExecutorSession, manager: SlabMemoryManager, graph: LinkGraph, n: number) {
  const handlerNs = async (): Promise<number> => (await session.executorCostCounters()).handlerNs;
  const a = await handlerNs();
  for (let i = 0; i < n; i++) await session.noop();
  const b = await handlerNs();
  for (let i = 0; i < n; i++) {
    const alloc = await manager.allocate(graph);
    alloc.writeContent();
    await manager.deallocate([await alloc.finalize()]);
  }
  const c = await handlerNs();
  // Each reading is a call too: its own handler time is in the next difference (a few hundred ns).
  return { noop: (b - a) / n / 1000, finalizeAndFree: (c - b) / n / 1000 };
}

/** One-page finalize over a no-op round trip (issue 23: the floor is a round trip plus an mprotect). */
export const ROUND_TRIP_BUDGET = 1.5;

/**
 * The budget line: with blocks, the speedup statistic of every ratio of the report (geometric
 * mean of the per-block ratios, Student-t 95% interval on their logs), judged ok / over /
 * undecided by its interval; without (older probes), the ratio of the medians alone.
 */
export function roundTripBudget(probe: RoundTripProbe): BudgetRow {
  const blocks = probe.blockRatios ?? [];
  const est = blocks.length >= 3 ? summarizePaired([...blocks]) : undefined;
  const ratio = est ? est.speedup : probe.finalizeUs / probe.noopUs;
  const verdict = est ? budgetVerdict(est.ci95, ROUND_TRIP_BUDGET) : ratio <= ROUND_TRIP_BUDGET ? 'ok' : 'over';
  const h = probe.executorHandlerUs;
  const handlers = `; handler time: controller ${probe.controllerFinalizeUs.toFixed(1)} us to send a finalize${h ? `, executor ${h.noop.toFixed(1)} us a no-op, ${h.finalizeAndFree.toFixed(1)} us a finalize + free` : ''}`;
  return {
    label: `sequential remote finalize of a one-page graph (shared memory, median ${probe.finalizeUs.toFixed(1)} us) over a no-op round trip (median ${probe.noopUs.toFixed(1)} us), ${probe.samples} each in blocks of ${PROBE_BLOCK} taken through the run${handlers}`,
    value: ratio,
    budget: ROUND_TRIP_BUDGET,
    unit: 'x',
    direction: 'at-most',
    ...(est ? { ci95: est.ci95, rounds: blocks.length } : {}),
    verdict,
    ok: verdict !== 'over',
  };
}
