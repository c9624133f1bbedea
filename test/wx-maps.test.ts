import test from 'ava';
import { R, W, X } from '../graph/alloc-group.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../mappers/slab/slab-memory-manager.js';
import { incGraph, manySegmentGraph } from './helpers/graphs.js';
import { openTarget, type MapperKind, type MapperTarget } from './helpers/mapper-targets.js';
import { isNodeProcess, procMaps, writableAndExecutable, type MapsEntry } from './helpers/proc-maps.js';

/**
 * W^X, as the kernel sees it: while JIT'd code is live and running, /proc/PID/maps of the
 * process that holds the target memory (the executor for shared memory and RPC copy, this
 * process for in-process and dual-mapped) has no mapping that is writable and executable, and
 * every page of every live segment has exactly its segment's protection. The dual mapping's two
 * views are two mappings: the execution view (R-X, or the data segments' own protections) and
 * the writing view (RW-), never one mapping with both.
 *
 * A Node process's own JIT keeps a writable and executable code space of its own, outside any
 * reservation; while the executor is hosted by Node, its whole-process check leaves out
 * anonymous private mappings outside the reservations (a native executor gets the full check).
 */

const GRAPHS: readonly LinkGraph[] = [
  incGraph('a'),
  manySegmentGraph('m1'),
  incGraph('b'),
  manySegmentGraph('m2'),
  incGraph('c'),
];

function pid(target: MapperTarget): number | 'self' {
  return target.session ? target.session.pid! : 'self';
}

/** Every page of each live segment has its segment's protection in the kernel's maps. */
function segmentProtections(
  maps: readonly MapsEntry[],
  fins: readonly FinalizedAllocation[],
): Array<{ at: string; want: number; got: number[] }> {
  const wrong: Array<{ at: string; want: number; got: number[] }> = [];
  for (const fin of fins) {
    for (const seg of fin.layout.segments) {
      const start = fin.base + seg.offset;
      const end = start + seg.pageRoundedSize;
      const covering = maps.filter((m) => m.start < end && m.end > start);
      const covered = covering.reduce((n, m) => n + Math.min(m.end, end) - Math.max(m.start, start), 0);
      const got = [...new Set(covering.map((m) => m.prot))];
      if (covered !== end - start || got.length !== 1 || got[0] !== seg.group.prot)
        wrong.push({ at: `${fin.graphName} ${start.toString(16)}`, want: seg.group.prot, got });
    }
  }
  return wrong;
}

for (const kind of ['shared', 'rpc-copy', 'in-process', 'dualmap'] as const satisfies readonly MapperKind[]) {
  test.serial(
    `${kind}: no writable-and-executable mapping while JIT'd code runs, and every live page has its segment's protection`,
    async (t) => {
      const target = await openTarget(kind);
      t.teardown(() => target.close());
      const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
      const allocs = [];
      for (const g of GRAPHS) {
        const a = await manager.allocate(g);
        a.writeContent();
        allocs.push(a);
      }
      const fins = await Promise.all(allocs.map((a) => a.finalize()));
      // Code in every allocation runs (the pages are live and executable where they must be).
      for (const [i, fin] of fins.entries()) t.is(await target.runInt(fin.sectionAddress('.text'), i), i + 1);

      const who = pid(target);
      const maps = procMaps(who);
      const slabs = manager.reservationRanges();
      const inSlab = (m: MapsEntry) => slabs.some((s) => m.start < s.end && m.end > s.start);
      t.deepEqual(segmentProtections(maps, fins), []);
      t.deepEqual(
        maps.filter((m) => inSlab(m) && writableAndExecutable(m)),
        [],
      );
      // Shared memory: whoever maps a jitmem object maps it without W+X (the executor's pages, our
      // working view, the dual mapping's two views).
      const shm = (m: MapsEntry) => m.path.includes('/dev/shm/') || m.path.startsWith('/jitmem');
      t.deepEqual(
        maps.filter((m) => shm(m) && writableAndExecutable(m)),
        [],
      );
      t.deepEqual(
        procMaps('self').filter((m) => shm(m) && writableAndExecutable(m)),
        [],
      );
      const hostedByNode = isNodeProcess(who);
      const suspects = maps.filter(
        (m) => writableAndExecutable(m) && !(hostedByNode && !m.shared && m.path === '' && !inSlab(m)),
      );
      t.deepEqual(
        suspects,
        [],
        `${who === 'self' ? 'this process' : `executor ${who}`}: writable and executable mappings`,
      );

      if (kind === 'dualmap') {
        // Two views of each object: one holds the target addresses, the other is RW- throughout.
        const views = maps.filter((m) => m.path.includes('jitmem_dualmap'));
        const execution = views.filter(inSlab);
        const writing = views.filter((m) => !inSlab(m));
        t.true(execution.length > 0 && writing.length > 0);
        t.deepEqual([...new Set(writing.map((m) => m.prot))], [R | W]);
        t.true(execution.some((m) => m.prot === (R | X)));
        t.false(execution.some((m) => (m.prot & W) !== 0 && (m.prot & X) !== 0));
      }

      await manager.deallocate(fins);
      // Deinitialized: pages are writable again and none of them executable (in-process, RPC copy,
      // shared memory), or back to the execution view's R-X (dual-mapped): still no W+X.
      const after = procMaps(who);
      t.deepEqual(
        after.filter((m) => inSlab(m) && writableAndExecutable(m)),
        [],
      );
      if (kind !== 'dualmap') {
        for (const f of fins) {
          const covering = after.filter((m) => m.start < f.base + f.size && m.end > f.base);
          t.true(
            covering.length > 0 && covering.every((m) => (m.prot & X) === 0),
            `${f.graphName}: no executable page after deallocate`,
          );
        }
      }
    },
  );
}
