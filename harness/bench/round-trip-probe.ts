import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';
import { allocGroup, R, X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { median } from '../statistics.js';
import type { BudgetRow } from '../report/report.js';
import { closeOrKill, withCleanup } from '../../core/cleanup.js';

/**
 * What one remote call costs beside what a finalize costs: a no-op round trip and the finalize
 * of a one-page graph through shared memory, measured alternately against one jitmem executor,
 * so that both see the same machine. A finalize that is one round trip plus a few microseconds
 * of work in the executor stays within twice the no-op.
 */

export interface RoundTripProbe {
  /** Median microseconds. */
  readonly noopUs: number;
  readonly finalizeUs: number;
  readonly samples: number;
}

/** One page of code: `mov eax, 7; ret`, padded with int3. */
function onePageGraph(pageSize: number): LinkGraph {
  const code = new Uint8Array(Math.min(256, pageSize)).fill(0xcc);
  code.set([0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3]);
  return { name: 'one-page', sections: [{ name: '.text', group: allocGroup(R | X), alignment: 16, size: code.length, content: code }] };
}

export async function probeRoundTrip(options: { samples?: number; executorCpus?: readonly number[] | null } = {}): Promise<RoundTripProbe> {
  const samples = options.samples ?? 1000;
  const session = await ExecutorSession.spawn();
  return withCleanup(async () => {
    if (options.executorCpus && session.pid !== undefined) native.setAffinity(session.pid, options.executorCpus);
    const mapper = new SharedMemoryMapper(session);
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const graph = onePageGraph(mapper.pageSize);
    const noop: number[] = [];
    const finalize: number[] = [];
    for (let i = -50; i < samples; i++) {
      const t0 = performance.now();
      await session.noop();
      const t1 = performance.now();
      const alloc = await manager.allocate(graph);
      alloc.writeContent();
      const t2 = performance.now();
      const fin = await alloc.finalize();
      const t3 = performance.now();
      await manager.deallocate([fin]);
      if (i < 0) continue; // warm-up: JIT tiers, first page faults
      noop.push((t1 - t0) * 1000);
      finalize.push((t3 - t2) * 1000);
    }
    await manager.close();
    await mapper.close();
    return { noopUs: median(noop), finalizeUs: median(finalize), samples };
  }, [() => closeOrKill(session)]);
}

export function roundTripBudget(probe: RoundTripProbe): BudgetRow {
  const ratio = probe.finalizeUs / probe.noopUs;
  return {
    label: `sequential remote finalize of a one-page graph (shared memory, median ${probe.finalizeUs.toFixed(1)} us) over a no-op round trip (median ${probe.noopUs.toFixed(1)} us), ${probe.samples} each`,
    value: ratio,
    budget: 2,
    unit: 'x',
    direction: 'at-most',
    ok: ratio <= 2,
  };
}
