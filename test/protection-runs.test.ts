import test from 'ava';
import * as native from '../native/index.js';
import { osCounts } from '../core/cost-counters.js';
import { procMaps, writableAndExecutable } from './helpers/proc-maps.js';
import { R, W, X } from '../graph/alloc-group.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { DualMappedMemoryMapper } from '../mappers/dual-mapped-memory-mapper.js';
import { PageProtectionRuns } from '../mappers/page-protection-runs.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../mappers/slab/slab-memory-manager.js';
import { incGraph, manySegmentGraph } from './helpers/graphs.js';
import { loadWorkload } from '../workloads/workload-sources.js';
import { loadPlan } from '../workloads/patterns/load-pattern.js';
import { runPlan } from '../workloads/patterns/run-plan.js';

/**
 * mprotect by protection run, counted against runs worked out by hand. Pages of a fresh
 * in-process reservation are RW-; those of a dual-mapped one's execution view are R-X. A call
 * is needed for each maximal run of pages that changes protection (pages already at their
 * protection in between may be covered by the same call); finalizes issued together are
 * protected together, and the slab lays neighbours out so that their code or read-only data
 * meet. After every step the kernel's view (/proc/self/maps) must agree page for page with the
 * mapper's record, and no mapping of the reservation may be writable and executable.
 */

const PAGE = native.pageSize();

/** Every page of the record has, in the kernel, the protection the record says. */
function assertKernelAgrees(
  t: { deepEqual(a: unknown, b: unknown, m?: string): void; true(v: boolean, m?: string): void },
  runs: PageProtectionRuns,
): void {
  const maps = procMaps('self');
  for (const run of runs.runs()) {
    const covering = maps.filter((m) => m.start < run.end && m.end > run.start);
    const covered = covering.reduce((n, m) => n + Math.min(m.end, run.end) - Math.max(m.start, run.start), 0);
    t.deepEqual(
      { bytes: covered, prots: [...new Set(covering.map((m) => m.prot))] },
      { bytes: run.end - run.start, prots: [run.prot] },
      `run [${run.start.toString(16)}, ${run.end.toString(16)})`,
    );
  }
  // Node's own JIT keeps a writable and executable code space; the reservation has none.
  const inside = maps.filter((m) => m.start < runs.end && m.end > runs.start);
  t.true(!inside.some(writableAndExecutable), 'no mapping of the reservation is writable and executable');
}

async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; mprotect: number }> {
  const before = osCounts.mprotect;
  const value = await fn();
  return { value, mprotect: osCounts.mprotect - before };
}

async function load(manager: SlabMemoryManager, graphs: readonly LinkGraph[]): Promise<FinalizedAllocation[]> {
  const allocs = [];
  for (const g of graphs) {
    const a = await manager.allocate(g);
    a.writeContent();
    allocs.push(a);
  }
  // Issued in one turn: protected together.
  return Promise.all(allocs.map((a) => a.finalize()));
}

test.serial(
  'PageProtectionRuns plans one call per run of the result that changed, and nothing for pages already right',
  (t) => {
    const P = 0x1000;
    const runs = new PageProtectionRuns(0x10000, 0x10000 + 16 * P, R | W);
    // Pages 0-1 R--, 2-4 RW- (no change), 5 R-X: two calls.
    t.deepEqual(
      runs.change([
        { start: 0x10000, end: 0x10000 + 2 * P, prot: R },
        { start: 0x10000 + 2 * P, end: 0x10000 + 5 * P, prot: R | W },
        { start: 0x10000 + 5 * P, end: 0x10000 + 6 * P, prot: R | X },
      ]),
      [
        { start: 0x10000, length: 2 * P, prot: R },
        { start: 0x10000 + 5 * P, length: P, prot: R | X },
      ],
    );
    // Pages 6 and 8 to R-X: page 7 between them stays RW-, so they are two runs (6 extends page 5's).
    t.deepEqual(
      runs.change([
        { start: 0x10000 + 6 * P, end: 0x10000 + 7 * P, prot: R | X },
        { start: 0x10000 + 8 * P, end: 0x10000 + 9 * P, prot: R | X },
      ]),
      [
        { start: 0x10000 + 6 * P, length: P, prot: R | X },
        { start: 0x10000 + 8 * P, length: P, prot: R | X },
      ],
    );
    // Everything back to RW-: one call from the first changed page to the last, over the RW- pages between.
    t.deepEqual(runs.change([{ start: 0x10000, end: 0x10000 + 9 * P, prot: R | W }]), [
      { start: 0x10000, length: 9 * P, prot: R | W },
    ]);
    t.is(runs.runCount, 1);
    t.deepEqual(runs.change([{ start: 0x10000, end: 0x10000 + 16 * P, prot: R | W }]), []);
    // Pages whose state is not known (a failed call) get a call whatever is asked.
    runs.forget(0x10000 + 3 * P, 0x10000 + 4 * P);
    t.deepEqual(runs.change([{ start: 0x10000, end: 0x10000 + 16 * P, prot: R | W }]), [
      { start: 0x10000 + 3 * P, length: P, prot: R | W },
    ]);
    t.throws(() => runs.change([{ start: 0x10000, end: 0x10000 + 17 * P, prot: R }]), {
      code: 'ERR_OUT_OF_RESERVATION',
    });
  },
);

test.serial(
  'in-process, three segments (R--, RW-, R-X): 2 calls to finalize, 1 to deallocate; the kernel agrees with the record',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fin = await counted(() => load(manager, [incGraph()]));
    t.is(fin.mprotect, 2);
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    t.deepEqual(
      runs.runs().map((r) => [(r.start - slab!.start) / PAGE, (r.end - r.start) / PAGE, r.prot]),
      [
        [0, 1, R],
        [1, 1, R | W],
        [2, 1, R | X],
        [3, 253, R | W],
      ],
    );
    assertKernelAgrees(t, runs);
    t.is(native.callInt32(fin.value[0]!.sectionAddress('.text'), 41), 42);
    const free = await counted(() => manager.deallocate(fin.value));
    t.is(free.mprotect, 1);
    t.is(runs.runCount, 1);
    assertKernelAgrees(t, runs);
  },
);

test.serial(
  'in-process, six segments: 4 calls (R--, R-X, R--, R-X; RW- pages need none), 1 to deallocate',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fin = await counted(() => load(manager, [manySegmentGraph()]));
    t.is(fin.mprotect, 4);
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    t.deepEqual(
      runs.runs().map((r) => [(r.start - slab!.start) / PAGE, (r.end - r.start) / PAGE, r.prot]),
      [
        [0, 2, R],
        [2, 3, R | W],
        [5, 1, R | X],
        [6, 1, R],
        [7, 1, R | W],
        [8, 1, R | X],
        [9, 247, R | W],
      ],
    );
    assertKernelAgrees(t, runs);
    const free = await counted(() => manager.deallocate(fin.value));
    t.is(free.mprotect, 1);
    assertKernelAgrees(t, runs);
  },
);

test.serial(
  'in-process, neighbours finalized together share runs: four three-segment graphs take 5 calls, not 8, and 1 to free',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    // The slab alternates the layouts: R RW RX | RX RW R | R RW RX | RX RW R. Runs to change:
    // R, RX RX, R R, RX RX, R.
    const fin = await counted(() => load(manager, [incGraph('a'), incGraph('b'), incGraph('c'), incGraph('d')]));
    t.is(fin.mprotect, 5);
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    t.deepEqual(
      runs.runs().map((r) => [(r.start - slab!.start) / PAGE, (r.end - r.start) / PAGE, r.prot]),
      [
        [0, 1, R],
        [1, 1, R | W],
        [2, 2, R | X],
        [4, 1, R | W],
        [5, 2, R],
        [7, 1, R | W],
        [8, 2, R | X],
        [10, 1, R | W],
        [11, 1, R],
        [12, 244, R | W],
      ],
    );
    assertKernelAgrees(t, runs);
    for (const [i, f] of fin.value.entries()) t.is(native.callInt32(f.sectionAddress('.text'), i), i + 1);
    // Segment i of a reversed layout is still the same segment: the content is where the graph says.
    t.deepEqual([...native.view(fin.value[1]!.sectionAddress('.rodata'), 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    const free = await counted(() => manager.deallocate(fin.value));
    t.is(free.mprotect, 1);
    assertKernelAgrees(t, runs);
    // Two six-segment graphs: A ends with R-X (finalize), its reversed neighbour starts with it: 4 + 4 - 1.
    const many = await counted(() => load(manager, [manySegmentGraph('m1'), manySegmentGraph('m2')]));
    t.is(many.mprotect, 7);
    assertKernelAgrees(t, runs);
    t.is((await counted(() => manager.deallocate(many.value))).mprotect, 1);
  },
);

test.serial(
  'in-process, finalized one after another: each graph pays its own runs (2 each), deallocated together: 1',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fins: FinalizedAllocation[] = [];
    const before = osCounts.mprotect;
    for (const name of ['a', 'b', 'c']) fins.push(...(await load(manager, [incGraph(name)])));
    t.is(osCounts.mprotect - before, 6);
    const [slab] = manager.reservationRanges();
    assertKernelAgrees(t, mapper.pageProtections(slab!.start)!);
    t.is((await counted(() => manager.deallocate(fins))).mprotect, 1);
  },
);

test.serial(
  'dual-mapped, three segments: the execution view is R-X already, so R-- and RW- take 2 calls and deallocate 1',
  async (t) => {
    const mapper = new DualMappedMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fin = await counted(() => load(manager, [incGraph()]));
    t.is(fin.mprotect, 2);
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    t.deepEqual(
      runs.runs().map((r) => [(r.start - slab!.start) / PAGE, (r.end - r.start) / PAGE, r.prot]),
      [
        [0, 1, R],
        [1, 1, R | W],
        [2, 254, R | X],
      ],
    );
    assertKernelAgrees(t, runs);
    t.is(native.callInt32(fin.value[0]!.sectionAddress('.text'), 1), 2);
    t.is((await counted(() => manager.deallocate(fin.value))).mprotect, 1);
    assertKernelAgrees(t, runs);
  },
);

test.serial(
  'a failing finalize action puts only its own region back; a neighbour protected in the same pass stays live',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const a = await manager.allocate(incGraph('a'));
    a.writeContent();
    const b = await manager.allocate(incGraph('b'));
    b.writeContent();
    b.actions.push({ finalize: { fn: native.actionAddresses().fail, args: new Uint8Array(0) }, dealloc: null });
    const [fa, fb] = await Promise.allSettled([a.finalize(), b.finalize()]);
    t.is(fa.status, 'fulfilled');
    t.is(fb.status, 'rejected');
    t.is((fb as PromiseRejectedResult).reason.code, 'ERR_ALLOC_ACTION_FAILED');
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    // a: R RW RX; b's three pages back to RW-.
    t.deepEqual(
      runs.runs().map((r) => [(r.start - slab!.start) / PAGE, (r.end - r.start) / PAGE, r.prot]),
      [
        [0, 1, R],
        [1, 1, R | W],
        [2, 1, R | X],
        [3, 253, R | W],
      ],
    );
    assertKernelAgrees(t, runs);
    t.is(native.callInt32((fa as PromiseFulfilledResult<FinalizedAllocation>).value.sectionAddress('.text'), 5), 6);
  },
);

test.serial(
  'a caller that waits for each finalize is not kept waiting for a turn of the event loop once its pattern shows',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fins: FinalizedAllocation[] = [];
    // The first finalize waits for the end of the turn (a neighbour might join it); it comes alone.
    fins.push(...(await load(manager, [incGraph('first')])));
    let turns = 0;
    const countTurns = () => {
      turns++;
      if (turns < 1000) setImmediate(countTurns);
    };
    setImmediate(countTurns);
    for (let i = 0; i < 10; i++) {
      const before = turns;
      fins.push(...(await load(manager, [incGraph(`n${i}`)])));
      t.is(turns, before, `finalize ${i} settled within the job that issued it`);
    }
    turns = 1000;
    // Issued together, they are still protected together: 4 neighbours in 5 calls.
    await manager.deallocate(fins);
    const together = await counted(() => load(manager, [incGraph('a'), incGraph('b'), incGraph('c'), incGraph('d')]));
    t.is(together.mprotect, 5);
    await manager.deallocate(together.value);
  },
);

test.serial(
  'deinitializes issued together put their pages back in one call; a range freed without waiting can be prepared at once',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const fins = await load(manager, [incGraph('a'), incGraph('b'), incGraph('c'), incGraph('d')]);
    // Four frees of one allocation each, as a JIT drops old versions: one pass, one call.
    const freed = await counted(() => Promise.all(fins.map((f) => manager.deallocate([f]))));
    t.is(freed.mprotect, 1);
    const [slab] = manager.reservationRanges();
    t.is(mapper.pageProtections(slab!.start)!.runCount, 1);
    // Straight on the mapper: deinitialize, and prepare the same range before the promise settles.
    const again = await load(manager, [incGraph('e')]);
    const key = again[0]!.key;
    const done = mapper.deinitialize([key]);
    const view = mapper.prepare(key, 16);
    t.is(view.length, 16);
    view[0] = 0xc3;
    await done;
    await mapper.deinitialize([key]); // drops the prepared view
    t.is(view.length, 0);
  },
);

test.serial(
  'an mprotect that fails (a page unmapped under the mapper) fails its initialize with the errno; the record forgets those pages',
  async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    const alloc = await manager.allocate(manySegmentGraph());
    alloc.writeContent();
    // Take the second page of .rodata away: the R-- call covering it fails with ENOMEM.
    native.unmap(alloc.base + PAGE, PAGE);
    const err = await t.throwsAsync(alloc.finalize());
    t.is((err as { code?: string }).code, 'ENOMEM');
    const [slab] = manager.reservationRanges();
    const runs = mapper.pageProtections(slab!.start)!;
    // Every page of the failed allocation is back to RW- where it still exists. The .rodata
    // segment's calls failed half way (the kernel changes the pages before the hole), so the
    // record does not claim to know its two pages; the other segments' pages are RW- again.
    t.true([0, 1].every((i) => ![R, R | W, R | X].includes(runs.protectionAt(alloc.base + i * PAGE))));
    for (let i = 2; i < alloc.size / PAGE; i++) t.is(runs.protectionAt(alloc.base + i * PAGE), R | W);
    const maps = procMaps('self').filter((m) => m.start < alloc.base + alloc.size && m.end > alloc.base);
    t.true(maps.every((m) => m.prot === (R | W)));
    // The slab burned the range; the next allocation goes elsewhere and works.
    const next = await load(manager, [incGraph('next')]);
    t.is(native.callInt32(next[0]!.sectionAddress('.text'), 1), 2);
  },
);

test.serial(
  'python/load in-process, run as the bench runs it (64 finalizes in flight): at most 200 mprotect calls an iteration',
  async (t) => {
    // The budget, as a count (counts do not depend on the machine's load): 179 graphs,
    // 176 of them with both R-- and R-X segments, were 680 calls (one or more per segment and
    // one per region freed). By run: about one per graph (neighbours share their code's or
    // read-only data's run) and one for the whole free.
    const graphs = loadWorkload('python').graphs;
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 30 });
    const plan = loadPlan(graphs);
    await runPlan(plan, manager, { inFlight: 64, freeAtEnd: true });
    const counts: number[] = [];
    for (let i = 0; i < 3; i++)
      counts.push((await counted(() => runPlan(plan, manager, { inFlight: 64, freeAtEnd: true }))).mprotect);
    t.log(`mprotect calls per python/load iteration: ${counts.join(', ')}`);
    t.true(counts.every((n) => n <= 200 && n >= graphs.length / 2));
    t.is(manager.stats().liveAllocations, 0);
  },
);
