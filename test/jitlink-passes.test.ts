import test from 'ava';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { linkObjects } from '../jitlink/link.js';
import { InProcessTarget } from '../loader/program-target.js';
import { compile, tempDir } from './helpers/jitlink-run.js';

/**
 * The linker's passes fill one plan; relocate() reads it and writes only into the memory it is
 * given and the result it returns. So one link relocated into two allocations gives two
 * results, and the second leaves the first as it was: its entry, symbols, exports, init
 * functions, and the pointers it wrote into its own memory.
 */

const SOURCE = `
int counter = 7;
int *const where = &counter;
static int bump(void) { return ++counter; }
int (*hook)(void) = bump;
__attribute__((constructor)) static void start(void) { counter = 1; }
int main(void) { return hook() + *where; }
`;

test('relocating one link twice leaves the first result unchanged', async (t) => {
  const dir = tempDir(t);
  const object = compile(dir, 'twice.c', SOURCE, ['-O1', '-fPIC']);
  const target = new InProcessTarget();
  const memory = new SlabMemoryManager(new InProcessMemoryMapper());
  t.teardown(() => memory.close());
  const linked = await linkObjects([object], {
    pageSize: target.pageSize,
    lookup: (names) => target.lookup(names),
    runtimeSymbols: target.runtimeSymbols(),
  });

  const first = await memory.allocate(linked.graph);
  const second = await memory.allocate(linked.graph);
  t.teardown(async () => {
    await first.abandon();
    await second.abandon();
  });
  first.writeContent();
  second.writeContent();
  const one = linked.relocate(
    first.base,
    first.segments.map((s) => s.workingMemory),
    first.layout,
  );
  const snapshot = {
    base: one.base,
    entry: one.entry,
    counter: one.symbol('counter'),
    hook: one.symbol('hook'),
    init: [...one.init],
    exports: JSON.stringify(one.exports()),
  };
  const inFirst = (a: number | undefined) => a !== undefined && a >= first.base && a < first.base + first.layout.size;
  t.true(inFirst(snapshot.entry) && inFirst(snapshot.counter) && inFirst(snapshot.hook));
  t.is(snapshot.init.length, 1);
  t.true(inFirst(snapshot.init[0]));
  // The data the first relocation wrote: `where` holds the address of counter in the first allocation.
  const whereAddress = one.symbol('where')!;
  const readPointer = (allocation: typeof first, address: number): number => {
    const offset = address - allocation.base;
    const segment = allocation.layout.segments.findIndex(
      (s) => offset >= s.offset && offset < s.offset + s.pageRoundedSize,
    );
    const seg = allocation.segments[segment]!;
    const view = new DataView(seg.workingMemory.buffer, seg.workingMemory.byteOffset, seg.workingMemory.length);
    const at = offset - allocation.layout.segments[segment]!.offset;
    return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  };
  t.is(readPointer(first, whereAddress), snapshot.counter!);

  const two = linked.relocate(
    second.base,
    second.segments.map((s) => s.workingMemory),
    second.layout,
  );
  t.not(two.base, one.base);
  t.is(two.symbol('counter')! - two.base, snapshot.counter! - snapshot.base);
  t.is(readPointer(second, two.symbol('where')!), two.symbol('counter')!);

  // The first result is as it was.
  t.deepEqual(
    {
      base: one.base,
      entry: one.entry,
      counter: one.symbol('counter'),
      hook: one.symbol('hook'),
      init: [...one.init],
      exports: JSON.stringify(one.exports()),
    },
    snapshot,
  );
  t.is(readPointer(first, whereAddress), snapshot.counter!);
  t.true(Object.isFrozen(one) && Object.isFrozen(one.init));
});

// A table of pointers into code and data on both sides of where the base's low word wraps, and
// PC-relative references across the same boundary: 64-bit fields carry into their high word.
const POINTERS = `
static char before[64] = { 1 };
char pad[0x3000];
static char after[64] = { 2 };
char *const table[] = { before, before + 63, after, after + 1, (char *)pad - 8, (char *)0 + 5 };
char *reach(int i) { return i ? after : before; }
int main(void) { return reach(0)[0] + table[2][0]; }
`;

test('pointers written at a base whose low word wraps inside the allocation carry into the high word', async (t) => {
  const dir = tempDir(t);
  const object = compile(dir, 'pointers.c', POINTERS, ['-O1', '-fPIC']);
  const linked = await linkObjects([object], { pageSize: 4096, lookup: async (names) => names.map(() => 0) });
  const { layout } = linked;
  // Plain memory standing in for an allocation: relocate() writes only into what it is given.
  const memory = layout.segments.map((s) => new Uint8Array(s.pageRoundedSize));
  layout.segments.forEach((seg, i) => {
    for (const p of seg.sections) if (p.section.content) memory[i]!.set(p.section.content, p.offset);
  });
  const read64 = (address: number, base: number): number => {
    const offset = address - base;
    const i = layout.segments.findIndex((s) => offset >= s.offset && offset < s.offset + s.pageRoundedSize);
    const view = new DataView(memory[i]!.buffer);
    const at = offset - layout.segments[i]!.offset;
    return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  };
  // Low words just under 2^32 and just under 2^31: every segment after the first lies past the wrap.
  for (const base of [0x7f12_ffff_f000, 0x7f12_7fff_f000, 0x5555_0000_0000]) {
    const program = linked.relocate(base, memory, layout);
    const table = program.symbol('table')!;
    const pad = program.symbol('pad')!;
    const before = read64(table, base);
    const after = read64(table + 16, base);
    t.is(read64(table + 8, base), before + 63, `base ${base.toString(16)}`);
    t.is(read64(table + 24, base), after + 1);
    t.is(read64(table + 32, base), pad - 8);
    t.is(read64(table + 40, base), 5);
    t.true(before > base && before < base + layout.size && after > base && after < base + layout.size);
    // The data does lie past the wrap: of the low word (first base), of its sign bit (second).
    if (base === 0x7f12_ffff_f000) t.is(Math.floor(after / 2 ** 32), Math.floor(base / 2 ** 32) + 1);
    if (base === 0x7f12_7fff_f000) t.true(after % 2 ** 32 >= 2 ** 31);
  }
});
