import test from 'ava';
import { SlabMemoryManager, type FinalizedAllocation } from '../mappers/slab/slab-memory-manager.js';
import { RW, incGraph } from './helpers/graphs.js';
import { openTarget, readTraceLogFrom, targetTracePairs, type MapperKind } from './helpers/mapper-targets.js';

/**
 * Deinitializes issued together, as a JIT frees its old versions one allocation at a time: the
 * remote mappers send them in one call (the service takes a list of keys), the in-process ones
 * put their pages back in one pass; either way the dealloc actions run in the order the calls
 * were issued, each call's newest region first, as they would one call after another.
 */

for (const kind of ['shared', 'rpc-copy', 'in-process', 'dualmap'] as const satisfies readonly MapperKind[]) {
  test(`${kind}: four frees of five allocations issued together take ${kind === 'shared' || kind === 'rpc-copy' ? 'one executor call' : 'no executor call'}, and their dealloc actions run in issue order`, async (t) => {
    const target = await openTarget(kind);
    t.teardown(() => target.close());
    const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
    const logAlloc = await manager.allocate({
      name: 'log',
      sections: [{ name: '.log', group: RW, alignment: 8, size: 8 * 33 }],
    });
    logAlloc.writeContent();
    await logAlloc.finalize();
    const log = logAlloc.sectionAddress('.log');
    const fins: FinalizedAllocation[] = [];
    for (let v = 0; v < 5; v++) {
      const alloc = await manager.allocate(incGraph(`v${v}`));
      alloc.writeContent();
      // Version v logs v at finalize and 10 + v, then 20 + v at dealloc (two pairs: reverse order).
      alloc.actions.push(
        ...targetTracePairs(target, log, 32, [
          [v, 20 + v],
          [100 + v, 10 + v],
        ]),
      );
      fins.push(await alloc.finalize());
    }
    const callsBefore = target.session?.counters().calls ?? 0;
    // v0, then v1 and v2 in one call, then v3, then v4: four deallocates issued together.
    await Promise.all([
      manager.deallocate([fins[0]!]),
      manager.deallocate([fins[1]!, fins[2]!]),
      manager.deallocate([fins[3]!]),
      manager.deallocate([fins[4]!]),
    ]);
    const calls = (target.session?.counters().calls ?? 0) - callsBefore;
    t.is(calls, target.session ? 1 : 0);
    const trace = await readTraceLogFrom(target, log, 32);
    t.deepEqual(trace.slice(10), [10, 20, 12, 22, 11, 21, 13, 23, 14, 24]);
    // The ranges are free and usable again.
    const again = await manager.allocate(incGraph('again'));
    again.writeContent();
    const fin = await again.finalize();
    t.is(await target.runInt(fin.sectionAddress('.text'), 2), 3);
  });
}

test('shared: a free naming an unknown key fails alone; the frees sent with it succeed', async (t) => {
  const target = await openTarget('shared');
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
  const fins: FinalizedAllocation[] = [];
  for (const name of ['a', 'b']) {
    const alloc = await manager.allocate(incGraph(name));
    alloc.writeContent();
    fins.push(await alloc.finalize());
  }
  const [good, bad, again] = await Promise.allSettled([
    target.mapper.deinitialize([fins[0]!.key]),
    target.mapper.deinitialize([fins[1]!.key + 4096 * 100]),
    target.mapper.deinitialize([fins[0]!.key]),
  ]);
  t.is(good.status, 'fulfilled');
  t.is(bad.status, 'rejected');
  t.is((bad as PromiseRejectedResult).reason.code, 'ERR_UNKNOWN_KEY');
  // The same key twice in one batch: unknown the second time, as one call after another.
  t.is(again.status, 'rejected');
  t.is((again as PromiseRejectedResult).reason.code, 'ERR_UNKNOWN_KEY');
  await target.mapper.deinitialize([fins[1]!.key]);
});
