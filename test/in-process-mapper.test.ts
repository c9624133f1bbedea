import test from 'ava';
import { createHash } from 'node:crypto';
import * as native from '../native/index.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { INC_CODE, RW, RX, incGraph, readTraceLog, tracePairs } from './helpers/graphs.js';

function fresh() {
  const mapper = new InProcessMemoryMapper();
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  return { mapper, manager };
}

test('machine code written through working memory runs after finalize, and returns its argument plus one', async (t) => {
  const { manager, mapper } = fresh();
  t.teardown(() => mapper.close());
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  const text = alloc.sectionAddress('.text');
  t.is(text % 16, 0);
  // Working memory is a view of the target pages themselves: the bytes are already there.
  t.deepEqual([...native.view(text, 4)], [...INC_CODE]);
  const fin = await alloc.finalize();
  t.is(fin.key, alloc.base);
  for (const x of [0, 1, 41, -5, 2147483646]) t.is(native.callInt32(fin.sectionAddress('.text'), x), (x + 1) | 0);
});

test('after finalize the working memory is detached: a stale write changes nothing and the process lives on', async (t) => {
  const { manager, mapper } = fresh();
  t.teardown(() => mapper.close());
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  const code = alloc.sectionWorkingMemory('.text');
  const segment = alloc.segments.find((s) => s.group.prot === RX.prot)!.workingMemory;
  const fin = await alloc.finalize();
  t.is(segment.length, 0);
  t.is(code.length, 0);
  segment[0] = 0xcc; // int3, if it reached the page
  code[1] = 0x00;
  t.throws(() => segment.set([0xcc]), { instanceOf: TypeError, message: /detached/ });
  t.deepEqual([...native.view(fin.sectionAddress('.text'), 4)], [...INC_CODE]);
  t.is(native.callInt32(fin.sectionAddress('.text'), 9), 10);
  t.throws(() => alloc.writeContent(), { code: 'ERR_WORKING_MEMORY_DETACHED' });
});

test('zero-fill tails are zeroed and data lands byte for byte', async (t) => {
  const { manager, mapper } = fresh();
  t.teardown(() => mapper.close());
  // Dirty the slab first so zeroing is observable on reuse.
  const dirty = await manager.allocate({
    name: 'dirt',
    sections: [{ name: '.d', group: RW, alignment: 8, size: 8192, content: new Uint8Array(8192).fill(0xee) }],
  });
  dirty.writeContent();
  await manager.deallocate([await dirty.finalize()]);
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  const fin = await alloc.finalize();
  const rw = alloc.layout.segments.find((s) => s.group.prot === RW.prot)!;
  const bytes = native.view(alloc.base + rw.offset, rw.contentSize + rw.zeroFillSize).slice();
  t.deepEqual([...bytes.subarray(0, 24)], new Array(24).fill(0xab));
  t.true(bytes.subarray(rw.contentSize).every((b) => b === 0));
  t.is(
    createHash('sha256')
      .update(native.view(fin.sectionAddress('.rodata'), 8))
      .digest('hex'),
    createHash('sha256')
      .update(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))
      .digest('hex'),
  );
});

test('alloc actions run in order at finalize and their dealloc halves in reverse at deallocate', async (t) => {
  const { manager, mapper } = fresh();
  t.teardown(() => mapper.close());
  const alloc = await manager.allocate({
    name: 'log',
    sections: [{ name: '.log', group: RW, alignment: 8, size: 8 * 17, content: new Uint8Array(8 * 17) }],
  });
  alloc.writeContent();
  const log = alloc.sectionAddress('.log');
  alloc.actions.push(
    ...tracePairs(log, 16, [
      [1, 11],
      [2, 12],
      [3, 13],
    ]),
  );
  const fin = await alloc.finalize();
  t.deepEqual(readTraceLog(log), [1, 2, 3]);
  await manager.deallocate([fin]);
  t.deepEqual(readTraceLog(log), [1, 2, 3, 13, 12, 11]);
});

test('a failing finalize action undoes the actions before it and leaves the pages writable', async (t) => {
  const { manager, mapper } = fresh();
  t.teardown(() => mapper.close());
  const alloc = await manager.allocate({
    name: 'fails',
    sections: [
      { name: '.text', group: RX, alignment: 16, size: 4, content: INC_CODE },
      { name: '.log', group: RW, alignment: 8, size: 8 * 9, content: new Uint8Array(8 * 9) },
    ],
  });
  alloc.writeContent();
  const log = alloc.sectionAddress('.log');
  const fail = native.actionAddresses().fail;
  alloc.actions.push(...tracePairs(log, 8, [[1, 11]]), {
    finalize: { fn: fail, args: new Uint8Array(0) },
    dealloc: null,
  });
  const err = await t.throwsAsync(alloc.finalize(), { code: 'ERR_ALLOC_ACTION_FAILED' });
  t.regex(err!.message, /always fails/);
  t.deepEqual(readTraceLog(log), [1, 11]);
  // Protections were rolled back: the text page is writable again (a write would fault otherwise).
  native.copyIn(alloc.sectionAddress('.text'), Uint8Array.of(0x90));
  t.is(manager.stats().burnedBytes, alloc.size);
});

test('deinitialize puts pages back to RW and the same range is initialized again', async (t) => {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close());
  const { start } = await mapper.reserve(2 * mapper.pageSize);
  for (const code of [INC_CODE, Uint8Array.of(0x8d, 0x47, 0x02, 0xc3)]) {
    const wm = mapper.prepare(start, 4);
    wm.set(code);
    const key = await mapper.initialize({
      mappingBase: start,
      segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: RX }],
      actions: [],
    });
    t.is(key, start);
    t.is(native.callInt32(start, 1), 1 + code[2]!);
    await mapper.deinitialize([key]);
  }
});
