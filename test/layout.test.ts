import test from 'ava';
import { layoutGraph } from '../graph/layout.js';
import { allocGroup, allocGroupId, R, W, X } from '../graph/alloc-group.js';
import type { Section } from '../graph/link-graph.js';

const PAGE = 4096;
const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

test('segments follow LLVM order by AllocGroup id: R--, RW-, R-X, then finalize groups', (t) => {
  const sections: Section[] = [
    { name: 'fin-code', group: allocGroup(R | X, 'finalize'), alignment: 16, size: 10, content: bytes(10) },
    { name: '.text', group: allocGroup(R | X), alignment: 16, size: 100, content: bytes(100) },
    { name: '.data', group: allocGroup(R | W), alignment: 8, size: 30, content: bytes(30) },
    { name: '.rodata', group: allocGroup(R), alignment: 4, size: 5000, content: bytes(5000) },
    { name: 'fin-data', group: allocGroup(R | W, 'finalize'), alignment: 8, size: 7 },
  ];
  const layout = layoutGraph({ name: 'g', sections }, PAGE);
  t.deepEqual(
    layout.segments.map((s) => allocGroupId(s.group)),
    [1, 3, 5, 11, 13],
  );
  t.deepEqual(
    layout.segments.map((s) => s.offset),
    [0, 8192, 12288, 16384, 20480],
  );
  // .rodata spills over one page into two.
  t.is(layout.segments[0]!.pageRoundedSize, 8192);
  t.is(layout.size, 24576);
  t.is(layout.size, layout.segments.reduce((a, s) => a + s.pageRoundedSize, 0));
});

test('inside a segment content sections come first, then zero-fill, each at its alignment', (t) => {
  const rw = allocGroup(R | W);
  const sections: Section[] = [
    { name: '.bss', group: rw, alignment: 64, size: 100 },
    { name: '.data', group: rw, alignment: 8, size: 3, content: bytes(3) },
    { name: '.tbss', group: rw, alignment: 16, size: 5 },
    { name: '.data2', group: rw, alignment: 32, size: 40, content: bytes(40) },
  ];
  const [seg] = layoutGraph({ name: 'g', sections }, PAGE).segments;
  t.deepEqual(
    seg!.sections.map((p) => [p.section.name, p.offset]),
    [
      ['.data', 0],
      ['.data2', 32],
      ['.bss', 128],
      ['.tbss', 240],
    ],
  );
  t.is(seg!.contentSize, 72);
  t.is(seg!.zeroFillSize, 245 - 72);
  t.is(seg!.alignment, 64);
  t.is(seg!.pageRoundedSize, PAGE);
  for (const p of seg!.sections) t.is(p.offset % p.section.alignment, 0);
});

test('every segment starts on a page boundary and empty sections take no space', (t) => {
  const sections: Section[] = [
    { name: '.text', group: allocGroup(R | X), alignment: 1, size: 1, content: bytes(1) },
    { name: '.empty', group: allocGroup(R), alignment: 4096, size: 0, content: new Uint8Array(0) },
    { name: '.data', group: allocGroup(R | W), alignment: 4096, size: 4097, content: bytes(4097) },
  ];
  const layout = layoutGraph({ name: 'g', sections }, PAGE);
  t.is(layout.segments.length, 2);
  for (const s of layout.segments) t.is(s.offset % PAGE, 0);
  t.deepEqual(
    layout.segments.map((s) => [s.offset, s.pageRoundedSize]),
    [
      [0, 8192],
      [8192, 4096],
    ],
  );
});

test('an alignment above the page size is an error with a code', (t) => {
  const err = t.throws(() =>
    layoutGraph({ name: 'big', sections: [{ name: '.text', group: allocGroup(R | X), alignment: 8192, size: 8, content: bytes(8) }] }, PAGE),
  );
  t.is((err as { code?: string }).code, 'ERR_ALIGNMENT_ABOVE_PAGE_SIZE');
  t.regex(err!.message, /8192.*4096/);
});
