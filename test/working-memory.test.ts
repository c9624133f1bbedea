import test from 'ava';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { ForwardingMapper } from '../mappers/forwarding-mapper.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { INC_CODE, RW, RX, incGraph } from './helpers/graphs.js';
import { openTarget, sha256Hex, type MapperKind } from './helpers/mapper-targets.js';

/**
 * Working memory made only when asked for. Every mapper has it in this process (the target
 * in process, the writing mapping, the shared mapping, RPC copy's staging pages:
 * MemoryMapper.prepareLocal), so writeContent copies the graph's bytes there natively and no view
 * is made; a view asked for is the same memory, and like every view it is detached at finalize.
 * Either way the write window closes at finalize or abandon: writeContent is refused, a view
 * asked for afterwards is empty, and the memory that went live is as written.
 */

/** Sections with gaps between them (alignment), so that the bytes between must be zeroed on a reused range. */
function gappedGraph(name: string, fill: number): LinkGraph {
  return {
    name,
    sections: [
      { name: '.text', group: RX, alignment: 16, size: INC_CODE.length, content: INC_CODE },
      { name: '.a', group: RW, alignment: 8, size: 3, content: new Uint8Array(3).fill(fill) },
      { name: '.b', group: RW, alignment: 64, size: 100, content: new Uint8Array(100).fill(fill + 1) },
    ],
  };
}

for (const kind of ['in-process', 'dualmap', 'shared', 'rpc-copy'] as const satisfies readonly MapperKind[]) {
  test(`${kind}: content written without a view goes live byte for byte, gaps zeroed on a reused range, and the window closes at finalize`, async (t) => {
    const target = await openTarget(kind);
    t.teardown(() => target.close());
    const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
    // Dirty the range first: every byte of the next allocation's pages is 0xee.
    const dirt = await manager.allocate({
      name: 'dirt',
      sections: [{ name: '.d', group: RW, alignment: 8, size: 12288, content: new Uint8Array(12288).fill(0xee) }],
    });
    dirt.writeContent();
    await manager.deallocate([await dirt.finalize()]);

    const alloc = await manager.allocate(gappedGraph('gapped', 0x11));
    alloc.writeContent();
    const fin = await alloc.finalize();
    t.is(await target.runInt(fin.sectionAddress('.text'), 41), 42);
    const dataStart = fin.sectionAddress('.a');
    const data = await target.read(dataStart, fin.sectionAddress('.b') + 100 - dataStart);
    const expected = new Uint8Array(data.length);
    expected.fill(0x11, 0, 3);
    expected.fill(0x12, data.length - 100);
    t.is(sha256Hex(data), sha256Hex(expected), 'the sections byte for byte, the gap between them zero');
    // Closed: writeContent refused, a view asked for now is empty and reaches nothing.
    t.throws(() => alloc.writeContent(), { code: 'ERR_WORKING_MEMORY_DETACHED' });
    for (const s of alloc.segments) {
      const wm = s.workingMemory;
      t.is(wm.length, 0);
      wm[0] = 0xcc;
    }
    t.is(await target.runInt(fin.sectionAddress('.text'), 1), 2);
    t.deepEqual(await target.read(fin.sectionAddress('.text'), INC_CODE.length), INC_CODE);
  });

  test(`${kind}: a view asked for after writeContent holds what was written, and is detached at finalize`, async (t) => {
    const target = await openTarget(kind);
    t.teardown(() => target.close());
    const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    const text = alloc.sectionWorkingMemory('.text');
    t.deepEqual([...text], [...INC_CODE]);
    // A write through the view before finalize is what goes live: lea eax, [rdi+2].
    text[2] = 0x02;
    const fin = await alloc.finalize();
    t.is(text.length, 0);
    t.is(await target.runInt(fin.sectionAddress('.text'), 5), 7);
  });

  test(`${kind}: an allocation abandoned before any view was made gives its range back`, async (t) => {
    const target = await openTarget(kind);
    t.teardown(() => target.close());
    const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
    const first = await manager.allocate(incGraph('first'));
    first.writeContent();
    await first.abandon();
    t.throws(() => first.writeContent(), { code: 'ERR_WORKING_MEMORY_DETACHED' });
    const again = await manager.allocate(incGraph('again'));
    t.is(again.base, first.base);
    again.writeContent();
    const fin = await again.finalize();
    t.is(await target.runInt(fin.sectionAddress('.text'), 0), 1);
  });
}

test("a forwarding mapper (the bench's reserve timer, for one) passes prepareLocal through: the target address in process, the staging address for RPC copy", async (t) => {
  for (const kind of ['in-process', 'rpc-copy'] as const) {
    const target = await openTarget(kind);
    t.teardown(() => target.close());
    const wrapped = new ForwardingMapper(target.mapper);
    const { start } = await wrapped.reserve(1 << 20);
    const local = wrapped.prepareLocal!(start + 4096, 100);
    const base = target.mapper.prepareLocal!(start, 100)!;
    t.is(typeof local, 'number');
    t.is(local! - base, 4096, kind);
    if (kind === 'in-process') t.is(base, start);
    else t.not(base, start);
  }
});

test('in-process: a section given larger content after allocate is refused by writeContent, and nothing past its segment is written', async (t) => {
  const target = await openTarget('in-process');
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
  const neighbour = await manager.allocate(incGraph('neighbour'));
  const graph = gappedGraph('grown', 0x21);
  const alloc = await manager.allocate(graph);
  neighbour.writeContent();
  const neighbourFin = await neighbour.finalize();
  const before = await target.read(alloc.base, alloc.size + 4096);
  // The graph is the caller's: its section now holds far more than its place.
  (graph.sections[2] as { content: Uint8Array }).content = new Uint8Array(64 << 10).fill(0x99);
  t.throws(() => alloc.writeContent(), { code: 'ERR_CONTENT_SIZE_MISMATCH', message: /"\.b" of graph "grown" has 65536 bytes/ });
  const after = await target.read(alloc.base + alloc.size, 4096);
  t.deepEqual(after, before.subarray(alloc.size));
  t.is(await target.runInt(neighbourFin.sectionAddress('.text'), 1), 2);
});
