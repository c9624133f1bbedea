import test from 'ava';
import * as native from '../native/index.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { incGraph } from './helpers/graphs.js';

test('10,000 cycles of allocate, write, finalize, call, deallocate: every call right, one slab reserved', async (t) => {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close());
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  const graph = incGraph();
  let wrong = 0;
  const bases = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const alloc = await manager.allocate(graph);
    alloc.writeContent();
    const fin = await alloc.finalize();
    bases.add(fin.base);
    if (native.callInt32(fin.sectionAddress('.text'), i) !== i + 1) wrong++;
    await manager.deallocate([fin]);
  }
  t.is(wrong, 0);
  const stats = manager.stats();
  t.is(stats.reservations, 1);
  t.is(stats.reservedBytes, 1 << 20);
  t.is(stats.peakReservedBytes, 1 << 20);
  t.is(stats.liveBytes, 0);
  t.is(stats.freeRanges, 1);
  // Warm pages are reused: the same range every time.
  t.is(bases.size, 1);
});
