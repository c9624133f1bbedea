import test from 'ava';
import { createHash, randomFillSync } from 'node:crypto';
import { HEADER_SIZE, FrameParser, OpCode, writeHeader } from '../protocol/frame.js';
import { SpsWriter, decode, decodeFinalizeRequestPieces, type WireFinalizeRequest } from '../protocol/sps.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { RX, RW } from './helpers/graphs.js';
import { openTarget } from './helpers/mapper-targets.js';
import { SeededRandom } from '../workloads/patterns/seeded-random.js';

/**
 * RPC copy at one copy per side: the controller sends content from its staging pages with a
 * gather write (the frame is pieces: header and metadata around views of the content), and the
 * executor decodes a large finalize request from the chunks it arrived in and copies the content
 * from them straight into target memory.
 */

function seededBytes(seed: number, n: number): Uint8Array {
  const random = new SeededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = random.below(256);
  return out;
}

function request(): WireFinalizeRequest {
  return {
    segments: [
      { group: 5, addr: 0x7000_0000_0000, size: 300_000, content: seededBytes(1, 250_000) },
      { group: 3, addr: 0x7000_0004_a000, size: 8192, content: new Uint8Array(0) },
      { group: 1, addr: 0x7000_0005_0000, size: 70_000, content: seededBytes(2, 70_000) },
    ],
    actions: [
      { finalize: { fn: 0x1234, args: Uint8Array.of(1, 2, 3) }, dealloc: { fn: 0x5678, args: new Uint8Array(0) } },
    ],
  };
}

function concat(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

/** Byte equality without ava's deep diff, which is slow on large arrays. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Cuts bytes into chunks at seeded places, some of them a byte or two long (inside a field). */
function chunked(bytes: Uint8Array, seed: number): Uint8Array[] {
  const random = new SeededRandom(seed);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = random.coin() ? 1 + random.below(3) : 1 + random.below(40_000);
    out.push(bytes.subarray(at, Math.min(bytes.length, at + n)));
    at += n;
  }
  return out;
}

test('a gathered writer sends content by reference: its pieces are the frame byte for byte, the content views among them', (t) => {
  const fr = request();
  const copied = new SpsWriter(64, HEADER_SIZE).addr(0xabc).finalizeRequest(fr);
  const gathered = new SpsWriter(64, HEADER_SIZE).addr(0xabc).finalizeRequest(fr, true);
  t.true(gathered.gathered);
  t.is(gathered.length, copied.length);
  const pieces = gathered.finishPieces();
  // The content goes out from where it is, not from a copy.
  t.true(pieces.includes(fr.segments[0]!.content!));
  t.true(pieces.includes(fr.segments[2]!.content!));
  t.true(same(concat(pieces), copied.finishWithHeadroom()));
  t.throws(() => gathered.finishWithHeadroom(), { code: 'ERR_INTERNAL' });
});

test('the executor side decodes a finalize request from any chunking, content as views of the chunks', (t) => {
  const fr = request();
  const payload = new SpsWriter(64).addr(0xabc).finalizeRequest(fr).finish();
  const expected = decode(payload, 'initialize arguments', (r) => [r.addr(), r.finalizeRequest()] as const);
  for (let seed = 1; seed <= 40; seed++) {
    const pieces = chunked(payload, seed);
    const [instance, got] = decodeFinalizeRequestPieces(pieces, 'initialize arguments');
    t.is(instance, expected[0]);
    t.deepEqual(got.actions, expected[1].actions);
    t.deepEqual(
      got.segments.map((s) => ({ group: s.group, addr: s.addr, size: s.size })),
      expected[1].segments.map((s) => ({ group: s.group, addr: s.addr, size: s.size })),
    );
    for (const [i, s] of got.segments.entries()) {
      t.is(s.content, undefined);
      t.true(same(concat(s.contentPieces!), expected[1].segments[i]!.content!));
      // Views of the chunks themselves: no piece owns a buffer of its own.
      for (const p of s.contentPieces!) t.true(pieces.some((c) => c.buffer === p.buffer));
    }
  }
  for (const cut of [7, 20, 300, payload.length - 1]) {
    t.throws(() => decodeFinalizeRequestPieces(chunked(payload.subarray(0, cut), 3), 'initialize arguments'), {
      code: 'ERR_SPS_MALFORMED',
    });
  }
});

test('the frame parser hands a large payload that spans chunks out in pieces when asked, and assembles it on demand', (t) => {
  const payload = seededBytes(9, 200_000);
  const frame = new Uint8Array(HEADER_SIZE + payload.length);
  frame.set(payload, HEADER_SIZE);
  writeHeader(frame, OpCode.CallWrapper, 7, 0x1000);
  const parser = new FrameParser(1 << 20, 64 * 1024);
  const frames = chunked(frame, 5).flatMap((c) => parser.push(c));
  t.is(frames.length, 1);
  const f = frames[0]!;
  t.true(f.pieces !== undefined && f.pieces.length > 1);
  t.true(same(concat(f.pieces!), payload));
  t.true(same(f.payload, payload));
  // Small frames, and parsers not asked to gather, assemble as before.
  const plain = new FrameParser(1 << 20);
  const again = chunked(frame, 5).flatMap((c) => plain.push(c));
  t.is(again[0]!.pieces, undefined);
  t.true(same(again[0]!.payload, payload));
});

test('rpc-copy: megabytes of content arrive byte for byte through the gather write and the chunked read, and staging views are detached once answered', async (t) => {
  const target = await openTarget('rpc-copy');
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 16 << 20 });
  const text = seededBytes(11, 3 << 20);
  const data = seededBytes(12, 1 << 20);
  for (let round = 0; round < 3; round++) {
    const alloc = await manager.allocate({
      name: `big${round}`,
      sections: [
        { name: '.text', group: RX, alignment: 16, size: text.length, content: text },
        { name: '.data', group: RW, alignment: 16, size: data.length, content: data },
        { name: '.bss', group: RW, alignment: 16, size: 5000 },
      ],
    });
    alloc.writeContent();
    const staging = alloc.segments.map((s) => s.workingMemory);
    const sentBefore = target.session!.counters().bytesSent;
    const fin = await alloc.finalize();
    // One frame carries the content once (plus headers and metadata).
    const sent = target.session!.counters().bytesSent - sentBefore;
    t.true(sent >= text.length + data.length && sent < text.length + data.length + 4096, `sent ${sent}`);
    t.true(staging.every((v) => v.length === 0));
    const [textHash, dataHash] = await target.digest([
      { start: fin.sectionAddress('.text'), length: text.length },
      { start: fin.sectionAddress('.data'), length: data.length },
    ]);
    t.is(textHash, createHash('sha256').update(text).digest('hex'));
    t.is(dataHash, createHash('sha256').update(data).digest('hex'));
    await manager.deallocate([fin]);
  }
});

test('rpc-copy: payloads that shrink, grow and pass the size the executor keeps a read buffer for (64 MiB) arrive byte for byte, and zero-fill stays zero', async (t) => {
  const target = await openTarget('rpc-copy');
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 128 << 20 });
  // The executor reads every payload into one buffer it keeps (neither zeroed nor given back)
  // up to 64 MiB, and a larger one into a buffer of its own: each size after a larger one reads
  // over what that left, and the 65 MiB one takes the other path.
  for (const [i, size] of [4 << 20, 1 << 20, 65 << 20, 300_000, 8 << 20].entries()) {
    const content = randomFillSync(new Uint8Array(size));
    const alloc = await manager.allocate({
      name: `payload${i}`,
      sections: [
        { name: '.data', group: RW, alignment: 16, size, content },
        { name: '.bss', group: RW, alignment: 16, size: 70_000 },
      ],
    });
    alloc.writeContent();
    const fin = await alloc.finalize();
    const [dataHash, bssHash] = await target.digest([
      { start: fin.sectionAddress('.data'), length: size },
      { start: fin.sectionAddress('.bss'), length: 70_000 },
    ]);
    t.is(dataHash, createHash('sha256').update(content).digest('hex'), `payload ${i} (${size} bytes)`);
    t.is(bssHash, createHash('sha256').update(new Uint8Array(70_000)).digest('hex'), `zero-fill after payload ${i}`);
    await manager.deallocate([fin]);
  }
});
