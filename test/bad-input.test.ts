import test from 'ava';
import { createHash } from 'node:crypto';
import * as native from '../native/index.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { FreeRangeIndex } from '../mappers/slab/free-range-index.js';
import { allocGroup } from '../graph/alloc-group.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { INC_CODE, RW, RX, incGraph } from './helpers/graphs.js';

function setup(t: { teardown(fn: () => unknown): void }) {
  const mapper = new InProcessMemoryMapper();
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  t.teardown(() => mapper.close());
  return { mapper, manager };
}

const oneSection = (size: unknown, alignment: unknown = 8): LinkGraph =>
  ({ name: 'bad', sections: [{ name: '.data', group: RW, alignment, size }] }) as unknown as LinkGraph;

test('a graph with nothing to allocate is refused', async (t) => {
  const { manager } = setup(t);
  await t.throwsAsync(manager.allocate({ name: 'empty', sections: [] }), { code: 'ERR_EMPTY_GRAPH' });
  await t.throwsAsync(manager.allocate(oneSection(0)), { code: 'ERR_EMPTY_GRAPH', message: /"bad"/ });
});

for (const [label, size] of [
  ['negative', -1],
  ['NaN', Number.NaN],
  ['fractional', 1.5],
  ['unsafe', 2 ** 53],
  ['infinite', Number.POSITIVE_INFINITY],
  ['a string', '16'],
] as const) {
  test(`a section size that is ${label} is ERR_INVALID_SIZE and names the value`, async (t) => {
    const { manager } = setup(t);
    const err = await t.throwsAsync(manager.allocate(oneSection(size)), { code: 'ERR_INVALID_SIZE' });
    t.true(err!.message.includes('.data'));
    t.true(err!.message.includes(typeof size === 'string' ? JSON.stringify(size) : String(size)));
  });
}

for (const alignment of [0, 3, 12, -8, 1.5, Number.NaN]) {
  test(`alignment ${alignment} (not a power of two) is ERR_INVALID_ALIGNMENT`, async (t) => {
    const { manager } = setup(t);
    await t.throwsAsync(manager.allocate(oneSection(16, alignment)), { code: 'ERR_INVALID_ALIGNMENT' });
  });
}

test('content whose length disagrees with the section size is refused', async (t) => {
  const { manager } = setup(t);
  await t.throwsAsync(
    manager.allocate({ name: 'g', sections: [{ name: '.t', group: RX, alignment: 4, size: 8, content: INC_CODE }] }),
    {
      code: 'ERR_CONTENT_SIZE_MISMATCH',
    },
  );
});

test('freeing an unknown, an already freed or a foreign allocation gives typed errors', async (t) => {
  const { manager, mapper } = setup(t);
  const other = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  const a = await manager.allocate(incGraph());
  a.writeContent();
  const fin = await a.finalize();
  await t.throwsAsync(other.deallocate([fin]), { code: 'ERR_UNKNOWN_ALLOCATION' });
  await t.throwsAsync(manager.deallocate([{ base: fin.base, key: fin.key } as never]), {
    code: 'ERR_NOT_AN_ALLOCATION',
  });
  await t.throwsAsync(manager.deallocate([fin, fin]), { code: 'ERR_DOUBLE_FREE' });
  await manager.deallocate([fin]);
  await t.throwsAsync(manager.deallocate([fin]), { code: 'ERR_ALREADY_FREED' });
  // A stale handle cannot free a newer allocation that landed at the same address.
  const b = await manager.allocate(incGraph());
  t.is(b.base, fin.base);
  b.writeContent();
  const finB = await b.finalize();
  await t.throwsAsync(manager.deallocate([fin]), { code: 'ERR_ALREADY_FREED' });
  t.is(native.callInt32(finB.sectionAddress('.text'), 1), 2);
  await t.throwsAsync(manager.deallocate('nope' as never), { code: 'ERR_INVALID_ARGUMENT' });
});

test('finalizing twice, or abandoning after finalize, is refused', async (t) => {
  const { manager } = setup(t);
  const a = await manager.allocate(incGraph());
  a.writeContent();
  await a.finalize();
  await t.throwsAsync(a.finalize(), { code: 'ERR_ALREADY_FINALIZED' });
  await t.throwsAsync(a.abandon(), { code: 'ERR_ALREADY_FINALIZED' });
});

test('abandoned allocations give their range back and their working memory is detached', async (t) => {
  const { manager } = setup(t);
  const a = await manager.allocate(incGraph());
  const wm = a.segments[0]!.workingMemory;
  await a.abandon();
  t.is(wm.length, 0);
  await t.throwsAsync(a.abandon(), { code: 'ERR_ALREADY_FREED' });
  t.is(manager.stats().liveBytes, 0);
  t.is(manager.stats().freeRanges, 1);
});

for (const [label, addr] of [
  ['negative', -4096],
  ['NaN', Number.NaN],
  ['fractional', 4096.5],
  ['unsafe', 2 ** 60],
] as const) {
  test(`a ${label} address is ERR_INVALID_ADDRESS everywhere`, async (t) => {
    const { mapper } = setup(t);
    t.throws(() => mapper.prepare(addr, 16), { code: 'ERR_INVALID_ADDRESS' });
    await t.throwsAsync(
      mapper.initialize({
        mappingBase: addr,
        segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: RX }],
        actions: [],
      }),
      {
        code: 'ERR_INVALID_ADDRESS',
      },
    );
    await t.throwsAsync(mapper.deinitialize([addr]), { code: 'ERR_INVALID_ADDRESS' });
    await t.throwsAsync(mapper.release([addr]), { code: 'ERR_INVALID_ADDRESS' });
    t.throws(() => native.view(addr, 1), { code: 'ERR_INVALID_ADDRESS' });
    t.throws(() => native.call(addr), { code: 'ERR_INVALID_ADDRESS' });
  });
}

test('an address outside every reservation is refused before any byte changes', async (t) => {
  const { mapper } = setup(t);
  const { start, end } = await mapper.reserve(4 * mapper.pageSize);
  const outside = end + 64 * mapper.pageSize;
  t.throws(() => mapper.prepare(outside, 16), {
    code: 'ERR_OUT_OF_RESERVATION',
    message: new RegExp(outside.toString(16)),
  });
  t.throws(() => mapper.prepare(end - 8, 16), { code: 'ERR_OUT_OF_RESERVATION' });
  await t.throwsAsync(mapper.deinitialize([outside]), { code: 'ERR_OUT_OF_RESERVATION' });
  await t.throwsAsync(mapper.deinitialize([start]), { code: 'ERR_UNKNOWN_KEY' });
  await t.throwsAsync(mapper.release([start + mapper.pageSize]), { code: 'ERR_UNKNOWN_RESERVATION' });

  // A segment that runs past the reservation: refused, and the reservation is unchanged.
  const wm = mapper.prepare(start, 4 * mapper.pageSize);
  wm.fill(0x5a);
  const before = createHash('sha256')
    .update(native.view(start, 4 * mapper.pageSize))
    .digest('hex');
  await t.throwsAsync(
    mapper.initialize({
      mappingBase: start,
      segments: [
        { offset: 0, contentSize: 16, zeroFillSize: 0, group: RX },
        { offset: 3 * mapper.pageSize, contentSize: 16, zeroFillSize: 2 * mapper.pageSize, group: RW },
      ],
      actions: [],
    }),
    { code: 'ERR_OUT_OF_RESERVATION' },
  );
  // The refused request detached nothing and wrote nothing: the view still works.
  t.is(wm.length, 4 * mapper.pageSize);
  t.is(
    createHash('sha256')
      .update(native.view(start, 4 * mapper.pageSize))
      .digest('hex'),
    before,
  );
  await t.throwsAsync(
    mapper.initialize({
      mappingBase: start + 1,
      segments: [{ offset: 0, contentSize: 1, zeroFillSize: 0, group: RX }],
      actions: [],
    }),
    {
      code: 'ERR_UNALIGNED_ADDRESS',
    },
  );
});

test('other bad options: policy, granularity, AllocGroup, reserve sizes', async (t) => {
  const { mapper } = setup(t);
  t.throws(() => new SlabMemoryManager(mapper, { policy: 'worst-fit' as never }), {
    code: 'ERR_INVALID_POLICY',
    message: /worst-fit/,
  });
  t.throws(() => new SlabMemoryManager(mapper, { granularity: 1000 }), { code: 'ERR_INVALID_GRANULARITY' });
  t.throws(() => new SlabMemoryManager(mapper, { granularity: -4096 }), { code: 'ERR_INVALID_SIZE' });
  t.throws(() => new FreeRangeIndex('next-fit' as never), { code: 'ERR_INVALID_POLICY' });
  t.throws(() => allocGroup(9), { code: 'ERR_INVALID_PROTECTION' });
  t.throws(() => allocGroup(5, 'forever' as never), { code: 'ERR_INVALID_LIFETIME' });
  await t.throwsAsync(mapper.reserve(0), { code: 'ERR_INVALID_SIZE' });
  await t.throwsAsync(mapper.reserve(100), { code: 'ERR_INVALID_SIZE', message: /page size/ });
  await t.throwsAsync(new SlabMemoryManager(mapper).allocate(null as never), { code: 'ERR_INVALID_GRAPH' });
});

test('a closed manager or mapper refuses work with a code', async (t) => {
  const mapper = new InProcessMemoryMapper();
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  await manager.allocate(incGraph());
  await manager.close();
  await t.throwsAsync(manager.allocate(incGraph()), { code: 'ERR_MANAGER_CLOSED' });
  await mapper.close();
  await t.throwsAsync(mapper.reserve(4096), { code: 'ERR_MAPPER_CLOSED' });
});
