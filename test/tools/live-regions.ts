import { performance } from 'node:perf_hooks';
import { SlabMemoryManager, type FinalizedAllocation } from '../../mappers/slab/slab-memory-manager.js';
import { budgetVerdict } from '../../harness/bench/ratios.js';
import { meanInterval, welchTTest } from '../../harness/statistics.js';
import { INC_CODE, RW, RX } from '../helpers/graphs.js';
import { MAPPER_KINDS, openTarget, type MapperKind } from '../helpers/mapper-targets.js';

/**
 * What one allocation costs as the regions live in one reservation grow: a long-running JIT keeps
 * its slab warm, and every function it links stays there. At each level the slab holds that many
 * finalized two-section graphs; then blocks of cycles (allocate, write, finalize, free one more
 * graph) are timed, the live count the same before and after each. The budget: the cost at the
 * highest level within 2x of the lowest, judged by the 95% interval of their ratio (Welch, on the
 * log of the blocks' times).
 *
 *   node dist/test/tools/live-regions.js [in-process|shared|rpc-copy ...]
 */

const LEVELS = [1000, 2000, 4000, 8000];
const BLOCKS = 8;
const CYCLES = 100;
const BUDGET = 2;

const data = new Uint8Array(32).fill(7);
const graph = (i: number) => ({
  name: `f${i}`,
  sections: [
    { name: '.text', group: RX, alignment: 16, size: INC_CODE.length, content: INC_CODE },
    { name: '.data', group: RW, alignment: 8, size: data.length, content: data },
  ],
});

async function measure(kind: MapperKind): Promise<void> {
  const target = await openTarget(kind);
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 30 });
  const live: FinalizedAllocation[] = [];
  const blocksAt = new Map<number, number[]>();
  let n = 0;
  const cycle = async () => {
    const a = await manager.allocate(graph(n++));
    a.writeContent();
    return a.finalize();
  };
  try {
    // Unrecorded: the first cycles of a process pay for its JIT tiers and first page touches.
    for (let c = 0; c < 2 * CYCLES; c++) await manager.deallocate([await cycle()]);
    for (const level of LEVELS) {
      while (live.length < level) live.push(await cycle());
      const blocks: number[] = [];
      for (let b = 0; b < BLOCKS; b++) {
        const t0 = performance.now();
        for (let c = 0; c < CYCLES; c++) await manager.deallocate([await cycle()]);
        blocks.push(((performance.now() - t0) * 1000) / CYCLES);
      }
      blocksAt.set(level, blocks);
      const m = meanInterval(blocks);
      console.log(
        `${kind}: ${level} live regions: ${m.mean.toFixed(1)} us per allocate + write + finalize + free (95% CI ${m.low.toFixed(1)}-${m.high.toFixed(1)}, ${BLOCKS} blocks of ${CYCLES})`,
      );
    }
  } finally {
    await manager.deallocate(live);
    await manager.close();
    await target.close();
  }
  const lo = LEVELS[0]!;
  const hi = LEVELS[LEVELS.length - 1]!;
  const w = welchTTest(blocksAt.get(lo)!.map(Math.log), blocksAt.get(hi)!.map(Math.log));
  const ci: [number, number] = [Math.exp(w.low), Math.exp(w.high)];
  const verdict = budgetVerdict(ci, BUDGET);
  console.log(
    `${kind}: at ${hi} live regions over at ${lo}: ${Math.exp(w.diff).toFixed(2)}x (95% CI ${ci[0].toFixed(2)}-${ci[1].toFixed(2)}), budget <= ${BUDGET}x: ${verdict === 'over' ? 'OVER BUDGET' : verdict}`,
  );
}

const kinds = process.argv.slice(2);
for (const kind of kinds.length ? kinds : MAPPER_KINDS) {
  if (!(MAPPER_KINDS as readonly string[]).includes(kind)) {
    console.error(`live-regions: unknown mapper ${JSON.stringify(kind)}; expected one of ${MAPPER_KINDS.join(', ')}`);
    process.exit(2);
  }
  await measure(kind as MapperKind);
}
