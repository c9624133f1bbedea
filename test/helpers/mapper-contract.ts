import test from 'ava';
import { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';
import { ADD2_CODE, INC_CODE, RO, RW, RX, incGraph } from './graphs.js';
import { returnConstantCode } from '../../workloads/patterns/return-constant.js';
import {
  openTarget,
  readTraceLogFrom,
  sha256Hex,
  targetActions,
  targetTracePairs,
  type MapperKind,
} from './mapper-targets.js';

/**
 * The MemoryMapper contract as one suite of ava tests, registered for one mapper kind: code runs
 * in the target, bytes are hashed there, alloc actions run in order, working memory is detached
 * once initialized, code is patched in place, and one range is reused 10,000 times.
 */

async function fresh(t: { teardown(fn: () => unknown): void }, kind: MapperKind) {
  const target = await openTarget(kind);
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
  return { target, manager };
}

export function mapperContractSuite(kind: MapperKind): void {
  test(`${kind}: machine code written through working memory runs in the target and returns arg + 1`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    const fin = await alloc.finalize();
    t.is(fin.key, alloc.base);
    for (const x of [0, 1, 41, -5, 2147483646]) t.is(await target.runInt(fin.sectionAddress('.text'), x), (x + 1) | 0);
  });

  test(`${kind}: data and zero-fill bytes are right in the target, checked by checksum there`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    // Dirty the range first, so that zero-fill has to be done, not inherited.
    const dirty = await manager.allocate({
      name: 'dirt',
      sections: [{ name: '.d', group: RW, alignment: 8, size: 3 * 4096, content: new Uint8Array(3 * 4096).fill(0xee) }],
    });
    dirty.writeContent();
    await manager.deallocate([await dirty.finalize()]);
    const alloc = await manager.allocate(incGraph());
    t.is(alloc.base, dirty.base);
    alloc.writeContent();
    const fin = await alloc.finalize();
    const rw = alloc.layout.segments.find((s) => s.group.prot === RW.prot)!;
    const rwStart = alloc.base + rw.offset;
    const [text, rodata, data, bss] = await target.digest([
      { start: fin.sectionAddress('.text'), length: 4 },
      { start: fin.sectionAddress('.rodata'), length: 8 },
      { start: rwStart, length: rw.contentSize },
      { start: rwStart + rw.contentSize, length: rw.zeroFillSize },
    ]);
    t.is(text, sha256Hex(INC_CODE));
    t.is(rodata, sha256Hex(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)));
    t.is(data, sha256Hex(new Uint8Array(24).fill(0xab)));
    t.is(bss, sha256Hex(new Uint8Array(rw.zeroFillSize)));
    t.true(rw.zeroFillSize >= 200);
  });

  actionContract(kind);
  regionContract(kind);
  patchContract(kind);
}

/** Alloc actions at finalize and deallocate, and what a failing one undoes; reuse of abandoned ranges. */
function actionContract(kind: MapperKind): void {
  test(`${kind}: alloc actions run in order at finalize, their dealloc halves in reverse at deallocate`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const logAlloc = await manager.allocate({
      name: 'log',
      sections: [{ name: '.log', group: RW, alignment: 8, size: 8 * 17 }],
    });
    logAlloc.writeContent();
    await logAlloc.finalize();
    const log = logAlloc.sectionAddress('.log');
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    alloc.actions.push(
      ...targetTracePairs(target, log, 16, [
        [1, 11],
        [2, 12],
        [3, 13],
      ]),
    );
    const fin = await alloc.finalize();
    t.deepEqual(await readTraceLogFrom(target, log, 16), [1, 2, 3]);
    await manager.deallocate([fin]);
    t.deepEqual(await readTraceLogFrom(target, log, 16), [1, 2, 3, 13, 12, 11]);
  });

  test(`${kind}: a failing finalize action undoes the earlier ones and the initialize is refused`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const logAlloc = await manager.allocate({
      name: 'log',
      sections: [{ name: '.log', group: RW, alignment: 8, size: 8 * 9 }],
    });
    logAlloc.writeContent();
    await logAlloc.finalize();
    const log = logAlloc.sectionAddress('.log');
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    const fail = targetActions(target).fail;
    alloc.actions.push(...targetTracePairs(target, log, 8, [[1, 11]]), {
      finalize: { fn: fail, args: new Uint8Array(0) },
      dealloc: null,
    });
    const err = await t.throwsAsync(alloc.finalize(), { code: 'ERR_ALLOC_ACTION_FAILED' });
    t.regex(err!.message, /always fails/);
    t.deepEqual(await readTraceLogFrom(target, log, 8), [1, 11]);
  });

  test(`${kind}: working memory is detached once initialized; an abandoned allocation's range is handed out again`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const abandoned = await manager.allocate(incGraph('a'));
    const stale = abandoned.segments.map((s) => s.workingMemory);
    await abandoned.abandon();
    t.true(stale.every((v) => v.length === 0));
    const alloc = await manager.allocate(incGraph('b'));
    t.is(alloc.base, abandoned.base);
    alloc.writeContent();
    const text = alloc.sectionWorkingMemory('.text');
    const fin = await alloc.finalize();
    t.is(text.length, 0);
    text[0] = 0xcc; // reaches nothing
    t.is(await target.runInt(fin.sectionAddress('.text'), 1), 2);
  });
}

/** Ranges against the regions recorded: thousands of them in one reservation, and one under way. */
function regionContract(kind: MapperKind): void {
  test(`${kind}: with 2,000 regions in one reservation, prepare and initialize refuse exactly the ranges that overlap one, and one under way`, async (t) => {
    const { target } = await fresh(t, kind);
    const mapper = target.mapper;
    const page = mapper.pageSize;
    const n = 2000;
    const { start } = await mapper.reserve((2 * n + 4) * page);
    // Region i on page 2i, a free page after each: issued all at once, as a pipelined JIT does.
    const keys = Array.from({ length: n }, (_, i) => start + 2 * i * page);
    for (const k of keys) mapper.prepare(k, INC_CODE.length).set(INC_CODE);
    const one = (k: number, size = INC_CODE.length) => ({
      mappingBase: k,
      segments: [{ offset: 0, contentSize: size, zeroFillSize: 0, group: RX }],
      actions: [],
    });
    t.deepEqual(await Promise.all(keys.map((k) => mapper.initialize(one(k)))), keys);
    const hex = (x: number) => x.toString(16);
    for (const i of [0, 1, 999, n - 1]) {
      const k = keys[i]!;
      t.throws(() => mapper.prepare(k + 8, 8), { code: 'ERR_RANGE_INITIALIZED', message: new RegExp(hex(k)) });
      // From the free page before region i + 1 into it: refused, naming that region.
      if (i + 1 < n)
        t.throws(() => mapper.prepare(k + page, page + 1), {
          code: 'ERR_RANGE_INITIALIZED',
          message: new RegExp(hex(keys[i + 1]!)),
        });
      await t.throwsAsync(mapper.initialize(one(k, 2 * page)), {
        code: 'ERR_REGION_OVERLAP',
        message: new RegExp(hex(k)),
      });
      // The free page itself is free, to the byte where the next region starts.
      const free = mapper.prepare(k + page, page);
      t.is(free.length, page);
      await mapper.deinitialize([k + page]);
    }
    // Two initializes of one free page issued together: the second is refused while the first is
    // under way (a remote mapper records a region when the executor answers), whatever the executor checks.
    const gap = keys[500]! + page;
    mapper.prepare(gap, INC_CODE.length).set(INC_CODE);
    const first = mapper.initialize(one(gap));
    const second = await t.throwsAsync(mapper.initialize(one(gap, 8)), { code: 'ERR_REGION_OVERLAP' });
    t.regex(
      second!.message,
      new RegExp(
        `overlaps the ${kind === 'in-process' || kind === 'dualmap' ? 'initialized region' : 'region being initialized'} \\[0x${hex(gap)},`,
      ),
    );
    t.is(await first, gap);
    t.is(await target.runInt(gap, 41), 42);
    t.is(await target.runInt(keys[n - 1]!, 1), 2);
    await mapper.deinitialize([...keys, gap]);
    // Every region gone: the whole reservation can be prepared again.
    t.is(mapper.prepare(start, 2 * n * page).length, 2 * n * page);
    await mapper.deinitialize([start]);
  });
}

/** Patching finalized code in place, and the long cycle of reuse of one range. */
function patchContract(kind: MapperKind): void {
  test(`${kind}: patchCode rewrites code of a finalized allocation in place, and refuses anything outside one`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    const fin = await alloc.finalize();
    const text = fin.sectionAddress('.text');
    t.is(await target.runInt(text, 5), 6);
    await target.mapper.patchCode!([{ address: text + 2, bytes: Uint8Array.of(0x09) }]); // lea eax, [rdi+9]
    t.is(await target.runInt(text, 5), 14);
    await t.throwsAsync(target.mapper.patchCode!([{ address: text, bytes: new Uint8Array(0) }]), {
      code: 'ERR_INVALID_PATCH',
    });
    const other = await manager.allocate(incGraph('other'));
    await t.throwsAsync(
      target.mapper.patchCode!([{ address: other.sectionAddress('.text'), bytes: Uint8Array.of(0xc3) }]),
      { code: 'ERR_NOT_INITIALIZED' },
    );
    await other.abandon();
  });

  test(`${kind}: a batch of patches over two allocations changes what each function returns, in at most one executor call`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    // Four functions `return 10 + i` 16 bytes apart in each of two allocations.
    const functionsGraph = (name: string) => {
      const text = new Uint8Array(64).fill(0xcc);
      for (let i = 0; i < 4; i++) text.set(returnConstantCode(10 + i), 16 * i);
      return { name, sections: [{ name: '.text', group: RX, alignment: 16, size: text.length, content: text }] };
    };
    const fins = [];
    for (const name of ['a', 'b']) {
      const alloc = await manager.allocate(functionsGraph(name));
      alloc.writeContent();
      fins.push(await alloc.finalize());
    }
    const entries = fins.flatMap((fin) => [0, 1, 2, 3].map((i) => fin.sectionAddress('.text') + 16 * i));
    t.deepEqual(await Promise.all(entries.map((fn) => target.runInt(fn, 0))), [10, 11, 12, 13, 10, 11, 12, 13]);
    const batch = entries.map((address, i) => ({ address, bytes: returnConstantCode(100 + i) }));
    const callsBefore = target.session?.counters().calls ?? 0;
    await target.mapper.patchCode!(batch);
    const calls = (target.session?.counters().calls ?? 0) - callsBefore;
    t.deepEqual(await Promise.all(entries.map((fn) => target.runInt(fn, 0))), [100, 101, 102, 103, 104, 105, 106, 107]);
    // RPC copy carries the whole batch in one call; shared memory writes the bytes itself and
    // makes at most the one barrier call; the in-process mappers have no executor to call.
    t.is(calls, target.session ? 1 : 0);
    // Where the I-cache is coherent and no code is running, shared memory needs no call at all.
    if (kind === 'shared' && process.arch === 'x64') {
      const before = target.session!.counters().calls;
      await target.mapper.patchCode!([{ address: entries[0]!, bytes: returnConstantCode(7) }], { codeRunning: false });
      t.is(target.session!.counters().calls, before);
      t.is(await target.runInt(entries[0]!, 0), 7);
    }
  });

  test(`${kind}: 10,000 cycles of allocate, write, initialize, call, deinitialize on the same range, every call right`, async (t) => {
    const { target, manager } = await fresh(t, kind);
    const graphs = [INC_CODE, ADD2_CODE].map((code, i) => ({
      name: `g${i}`,
      sections: [
        { name: '.text', group: RX, alignment: 16, size: 4, content: code },
        { name: '.rodata', group: RO, alignment: 8, size: 8, content: Uint8Array.of(i, 0, 0, 0, 0, 0, 0, 0) },
        { name: '.bss', group: RW, alignment: 8, size: 64 },
      ],
    }));
    let base = -1;
    let wrong = 0;
    for (let i = 0; i < 10_000; i++) {
      const alloc = await manager.allocate(graphs[i % 2]!);
      if (base === -1) base = alloc.base;
      if (alloc.base !== base) wrong++;
      alloc.writeContent();
      const fin = await alloc.finalize();
      if ((await target.runInt(fin.sectionAddress('.text'), i)) !== i + 1 + (i % 2)) wrong++;
      await manager.deallocate([fin]);
    }
    t.is(wrong, 0);
    t.is(manager.stats().reservedBytes, 1 << 20);
  });
}
