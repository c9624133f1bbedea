import test from 'ava';
import * as native from '../native/index.js';
import { osCounts } from '../core/cost-counters.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { SlabKeeper } from '../mappers/slab/slab-keeper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { INC_CODE, RO, RW, RX } from './helpers/graphs.js';
import { openTarget, type MapperKind } from './helpers/mapper-targets.js';

/**
 * Warm slabs: a program run after another on a kept slab lands on the same pages, with no new
 * reservation (no mmap here, no shm object in the executor) and no first-touch faults where the
 * controller writes its content; a fresh slab per program pays both.
 */

const PAGE = native.pageSize();
const PAGES = 64;

/** A program of 64 pages of read-only data, a page of data and the increment function. */
function program(name: string): LinkGraph {
  return {
    name,
    sections: [
      { name: '.text', group: RX, alignment: 16, size: INC_CODE.length, content: INC_CODE },
      {
        name: '.rodata',
        group: RO,
        alignment: 8,
        size: PAGES * PAGE,
        content: new Uint8Array(PAGES * PAGE).fill(0x5a),
      },
      { name: '.data', group: RW, alignment: 8, size: 8, content: new Uint8Array(8).fill(1) },
    ],
  };
}

for (const kind of ['in-process', 'shared'] as const satisfies readonly MapperKind[]) {
  test.serial(
    `${kind}: a kept slab runs the next program on the pages already faulted in; a fresh one maps and faults them again`,
    async (t) => {
      const target = await openTarget(kind);
      t.teardown(() => target.close());
      const keeper = new SlabKeeper(target.mapper);
      t.teardown(() => keeper.close());

      const runOne = async (name: string, fresh: boolean) => {
        const slab = fresh
          ? new SlabMemoryManager(target.mapper, { granularity: 1 << 20 })
          : keeper.acquire({ granularity: 1 << 20 });
        const mmapBefore = osCounts.mmap;
        const shmBefore = target.session ? (await target.session.executorCostCounters()).shmCreated : 0;
        const alloc = await slab.allocate(program(name));
        const faultsBefore = process.resourceUsage().minorPageFault;
        alloc.writeContent();
        const faults = process.resourceUsage().minorPageFault - faultsBefore;
        const fin = await alloc.finalize();
        t.is(await target.runInt(fin.sectionAddress('.text'), 9), 10);
        await slab.deallocate([fin]);
        const shm = target.session ? (await target.session.executorCostCounters()).shmCreated - shmBefore : 0;
        const mmaps = osCounts.mmap - mmapBefore;
        if (fresh) await slab.close();
        else await keeper.giveBack(slab);
        return { slab, base: fin.base, faults, mmaps, shm };
      };

      const first = await runOne('first', false);
      t.is(keeper.idleCount, 1);
      const second = await runOne('second', false);
      t.is(second.slab, first.slab);
      t.is(second.base, first.base);
      t.is(second.mmaps, 0);
      t.is(second.shm, 0);
      // 65 pages written: the first touch of each faults, a kept page does not.
      t.true(first.faults >= PAGES, `first program: ${first.faults} faults`);
      t.true(second.faults < 8, `second program: ${second.faults} faults`);

      // Another policy gets a slab of its own.
      const other = keeper.acquire({ granularity: 1 << 20, policy: 'best-fit' });
      t.not(other, first.slab);
      await keeper.giveBack(other);
      // Against a fresh slab, which reserves (and, through shared memory, creates an object) anew.
      const fresh = await runOne('fresh', true);
      t.not(fresh.slab, first.slab);
      t.true(fresh.mmaps >= 1);
      if (kind === 'shared') t.is(fresh.shm, 1);
      t.true(fresh.faults >= PAGES, `fresh slab: ${fresh.faults} faults`);
      t.log(
        `${kind}: minor faults writing ${PAGES + 1} pages: first ${first.faults}, kept ${second.faults}, fresh ${fresh.faults}`,
      );
    },
  );
}

test('a kept slab is lent to one user at a time, given back empty, and matched by policy and placement', async (t) => {
  const target = await openTarget('in-process');
  t.teardown(() => target.close());
  const keeper = new SlabKeeper(target.mapper, { maxIdle: 1 });
  const a = keeper.acquire({ granularity: 1 << 20 });
  const b = keeper.acquire({ granularity: 1 << 20 });
  t.not(a, b);
  const alloc = await a.allocate(program('p'));
  alloc.writeContent();
  const fin = await alloc.finalize();
  await t.throwsAsync(keeper.giveBack(a), { code: 'ERR_SLAB_IN_USE' });
  await a.deallocate([fin]);
  await keeper.giveBack(a);
  await t.throwsAsync(keeper.giveBack(a), { code: 'ERR_UNKNOWN_SLAB' });
  // maxIdle 1: giving b back closes a, the least recently used.
  await keeper.giveBack(b);
  t.is(keeper.idleCount, 1);
  await t.throwsAsync(a.allocate(program('q')), { code: 'ERR_MANAGER_CLOSED' });
  // A placement the kept slab's reservations do not lie in gets a new slab; a window around them gets it back.
  const s = keeper.acquire({});
  t.is(s, b);
  await (await s.allocate(program('r'))).abandon();
  const [r] = s.reservationRanges();
  await keeper.giveBack(s);
  const elsewhere = keeper.acquire({ placement: { start: 0x10000, end: 0x20000 } });
  t.not(elsewhere, b);
  await elsewhere.close();
  const around = keeper.acquire({ placement: { start: r!.start, end: r!.end } });
  t.is(around, b);
  await keeper.giveBack(around);
  await keeper.close();
  t.throws(() => keeper.acquire(), { code: 'ERR_KEEPER_CLOSED' });
  t.throws(() => new SlabKeeper(target.mapper, { maxIdle: -1 }), { code: 'ERR_INVALID_ARGUMENT' });
});
