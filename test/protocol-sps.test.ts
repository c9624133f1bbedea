import test from 'ava';
import { SpsReader, SpsWriter, decode, sharedMemoryFinalizeRequestSize, sps } from '../protocol/sps.js';
import { FrameParser, OpCode, encodeFrame, writeHeaderAt } from '../protocol/frame.js';
import { LLVM22_BOOTSTRAP_SYMBOLS, decodeSetup, encodeSetup } from '../protocol/setup.js';

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('the reserve call of docs/wire-protocol.md §2.2 encodes to the same 48 bytes, and its result decodes', (t) => {
  const instance = 0x5630_5050_fc60;
  const payload = sps((w) => w.addr(instance).u64(0x10000));
  const frame = encodeFrame(OpCode.CallWrapper, 0, 0x5630_4de1_83a0, payload);
  t.is(
    hexOf(frame),
    '3000000000000000' +
      '0300000000000000' +
      '0000000000000000' +
      'a083e14d30560000' +
      '60fc505030560000' +
      '0000010000000000',
  );
  const result = Buffer.from('0100' + '80a993767f0000', 'hex');
  const r = decode(result, 'reserve result', (r) => r.expected((r) => r.addr()));
  t.deepEqual(r, { ok: true, value: 0x7f76_93a9_8000 });
});

test('a success Hangup is 33 bytes with the single payload byte 00', (t) => {
  const frame = encodeFrame(
    OpCode.Hangup,
    0,
    0,
    sps((w) => w.error(null)),
  );
  t.is(frame.length, 33);
  t.is(hexOf(frame), '2100000000000000' + '0100000000000000' + '00'.repeat(16) + '00');
});

test('every SPS type of docs/wire-protocol.md §2 round-trips byte for byte', (t) => {
  const w = new SpsWriter(8);
  w.bool(true)
    .u8(0xfe)
    .u16(0xbeef)
    .u32(0xdeadbeef)
    .i32(-2)
    .u64(2 ** 53 - 1)
    .u64(0xffff_ffff_ffff_ffffn)
    .i64(-7n);
  w.addrRange({ start: 0x1000, end: 0x2000 })
    .string('héllo')
    .bytes(Uint8Array.of(1, 2, 3));
  w.optional(5, (w, v) => w.u32(v)).optional(null, (w, v: number) => w.u32(v));
  w.error(null).error('boom');
  w.expected({ ok: true, value: 0x42 }, (w, v) => w.addr(v)).expected({ ok: false, error: 'nope' }, (w, v: number) =>
    w.addr(v),
  );
  w.wrapperCall(null).wrapperCall({ fn: 0x7000, args: Uint8Array.of(9, 9) });
  w.allocActionCallPair({ finalize: { fn: 0x10, args: Uint8Array.of(1) }, dealloc: null });
  w.remoteAllocGroup(5 | 8).symbolDef({ addr: 0x1234, flags: 0x10, targetFlags: 0 });
  w.lookupSet([{ name: 'printf', required: false }]);
  w.finalizeRequest({ segments: [{ group: 5, addr: 0x3000, size: 0x3a, content: Uint8Array.of(0xc3) }], actions: [] });
  w.sharedMemoryFinalizeRequest({
    segments: [{ group: 3, addr: 0x4000, size: 0x1b0 }],
    actions: [{ finalize: null, dealloc: { fn: 0x20, args: new Uint8Array(0) } }],
  });
  w.sequence([1, 2, 3], (w, v) => w.u16(v));
  w.i8(-3)
    .i16(-300)
    .map(
      new Map([['k', 1]]),
      (w, k) => w.string(k),
      (w, v) => w.u32(v),
    );

  const r = new SpsReader(w.finish());
  t.is(r.bool(), true);
  t.is(r.u8(), 0xfe);
  t.is(r.u16(), 0xbeef);
  t.is(r.u32(), 0xdeadbeef);
  t.is(r.i32(), -2);
  t.is(r.u64(), 2 ** 53 - 1);
  t.is(r.u64Big(), 0xffff_ffff_ffff_ffffn);
  t.is(r.i64Big(), -7n);
  t.deepEqual(r.addrRange(), { start: 0x1000, end: 0x2000 });
  t.is(r.string(), 'héllo');
  t.deepEqual([...r.bytesView()], [1, 2, 3]);
  t.is(
    r.optional((r) => r.u32()),
    5,
  );
  t.is(
    r.optional((r) => r.u32()),
    null,
  );
  t.is(r.error(), null);
  t.is(r.error(), 'boom');
  t.deepEqual(
    r.expected((r) => r.addr()),
    { ok: true, value: 0x42 },
  );
  t.deepEqual(
    r.expected((r) => r.addr()),
    { ok: false, error: 'nope' },
  );
  t.is(r.wrapperCall(), null);
  const call = r.wrapperCall()!;
  t.is(call.fn, 0x7000);
  t.deepEqual([...call.args], [9, 9]);
  const pair = r.allocActionCallPair();
  t.is(pair.finalize!.fn, 0x10);
  t.is(pair.dealloc, null);
  t.is(r.remoteAllocGroup(), 13);
  t.deepEqual(r.symbolDef(), { addr: 0x1234, flags: 0x10, targetFlags: 0 });
  t.deepEqual(r.lookupSet(), [{ name: 'printf', required: false }]);
  const fr = r.finalizeRequest();
  t.is(fr.segments[0]!.addr, 0x3000);
  t.deepEqual([...fr.segments[0]!.content!], [0xc3]);
  const sfr = r.sharedMemoryFinalizeRequest();
  t.deepEqual(sfr.segments, [{ group: 3, addr: 0x4000, size: 0x1b0 }]);
  t.is(sfr.actions[0]!.dealloc!.fn, 0x20);
  t.deepEqual(
    r.sequence(2, (r) => r.u16()),
    [1, 2, 3],
  );
  t.is(r.i8(), -3);
  t.is(r.i16(), -300);
  t.deepEqual(
    [
      ...r.map(
        12,
        (r) => r.string(),
        (r) => r.u32(),
      ),
    ],
    [['k', 1]],
  );
  t.notThrows(() => r.end());
});

test('a null wrapper call is 16 zero bytes; an SPSError failure is 01, u64 length, text', (t) => {
  t.is(hexOf(sps((w) => w.wrapperCall(null))), '00'.repeat(16));
  t.is(hexOf(sps((w) => w.error('ab'))), '01' + '0200000000000000' + '6162');
});

test('truncated input is ERR_SPS_MALFORMED naming the byte offset', (t) => {
  const bytes = sps((w) => w.u64(1).u32(7));
  const err = t.throws(() => decode(bytes.subarray(0, 10), 'test data', (r) => [r.u64(), r.u32()]), {
    code: 'ERR_SPS_MALFORMED',
  });
  t.regex(err!.message, /offset 8/);
  t.is((err as unknown as { details: { offset: number } }).details.offset, 8);
});

test('a bool other than 0 or 1 is malformed', (t) => {
  const err = t.throws(() => decode(Uint8Array.of(2), 'flag', (r) => r.bool()), { code: 'ERR_SPS_MALFORMED' });
  t.regex(err!.message, /must be 0 or 1; got 2/);
});

test('an over-long count is refused before anything is allocated', (t) => {
  // 2^40 elements claimed, 3 bytes present: refused by arithmetic, not by running out of memory.
  const bytes = sps((w) => w.u64(2 ** 40).raw(Uint8Array.of(1, 2, 3)));
  const err = t.throws(() => decode(bytes, 'sequence', (r) => r.sequence(8, (r) => r.u64())), {
    code: 'ERR_SPS_MALFORMED',
  });
  t.regex(err!.message, /sequence of 1099511627776 elements/);
  t.throws(
    () =>
      decode(
        sps((w) => w.u64(0xffff_ffff_ffff_ffffn)),
        'string',
        (r) => r.string(),
      ),
    { code: 'ERR_SPS_MALFORMED' },
  );
});

test('trailing bytes after the expected value are malformed', (t) => {
  t.throws(() => decode(Uint8Array.of(0, 0), 'SPSError', (r) => r.error()), {
    code: 'ERR_SPS_MALFORMED',
    message: /1 unexpected trailing bytes/,
  });
});

test('byte views from the reader are zero-copy windows on the input', (t) => {
  const bytes = sps((w) => w.bytes(new Uint8Array(100).fill(7)));
  const v = decode(bytes, 'buffer', (r) => r.bytesView());
  t.is(v.buffer, bytes.buffer);
  t.is(v.byteOffset, bytes.byteOffset + 8);
});

test('Setup round-trips the 34 LLVM 22 names; duplicates and bad page sizes are refused', (t) => {
  t.is(LLVM22_BOOTSTRAP_SYMBOLS.length, 34);
  const symbols = new Map(LLVM22_BOOTSTRAP_SYMBOLS.map((n, i) => [n, 0x10000 + i * 16]));
  const payload = encodeSetup({
    targetTriple: 'x86_64-pc-linux-gnu',
    pageSize: 4096,
    bootstrapMap: new Map(),
    symbols,
  }).finish();
  t.is(hexOf(payload.subarray(0, 8)), '1300000000000000');
  const info = decodeSetup(payload);
  t.is(info.targetTriple, 'x86_64-pc-linux-gnu');
  t.is(info.pageSize, 4096);
  t.deepEqual([...info.symbols], [...symbols]);

  const dup = sps((w) => w.string('t').u64(4096).u64(0).u64(2).string('a').addr(1).string('a').addr(2));
  t.throws(() => decodeSetup(dup), { code: 'ERR_SPS_MALFORMED', message: /duplicate map key "a"/ });
  const badPage = sps((w) => w.string('t').u64(3000).u64(0).u64(0));
  t.throws(() => decodeSetup(badPage), { code: 'ERR_SPS_MALFORMED', message: /page size 3000/ });
});

test('the frame parser takes frames split at any byte and hands out single-chunk payloads without copying', (t) => {
  const f1 = encodeFrame(OpCode.CallWrapper, 1, 0x1000, Uint8Array.of(1, 2, 3));
  const f2 = encodeFrame(OpCode.Result, 2, 0, new Uint8Array(50).fill(9));
  const all = new Uint8Array([...f1, ...f2]);
  for (let cut = 0; cut <= all.length; cut++) {
    const p = new FrameParser(1 << 20);
    const frames = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
    t.is(frames.length, 2);
    t.deepEqual([...frames[0]!.payload], [1, 2, 3]);
    t.is(frames[1]!.seq, 2);
    t.true(p.atBoundary);
  }
  const p = new FrameParser(1 << 20);
  const [one] = p.push(f2);
  t.is(one!.payload.buffer, f2.buffer);
});

test('the frame parser refuses sizes below 32 and above its limit, and unknown opcodes, with typed errors', (t) => {
  const header = (size: number, op = 3): Uint8Array => {
    const h = encodeFrame(op, 0, 0);
    new DataView(h.buffer).setBigUint64(0, BigInt(size), true);
    return h;
  };
  t.throws(() => new FrameParser(1024).push(header(31)), { code: 'ERR_FRAME_TOO_SMALL', message: /frame size 31/ });
  t.throws(() => new FrameParser(1024).push(header(1025)), {
    code: 'ERR_FRAME_TOO_LARGE',
    message: /1025 is above the limit of 1024/,
  });
  t.throws(() => new FrameParser(1024).push(encodeFrame(4, 0, 0)), {
    code: 'ERR_UNKNOWN_OPCODE',
    message: /unknown opcode 4/,
  });
});

test('small writers share a pool: each keeps its own bytes, a full or detached pool is replaced, a large writer has its own buffer', (t) => {
  // Two thousand small writers fill several 64 KiB pools; each must still hold what it wrote.
  const finished = Array.from({ length: 2000 }, (_, i) => new SpsWriter(40, 32).u64(i).u64(2 ** 53 - 1 - i));
  finished.forEach((w, i) => {
    const frame = w.finishWithHeadroom();
    t.is(frame.length, 48);
    t.is(hexOf(frame.subarray(32)), hexOf(sps((x) => x.u64(i).u64(2 ** 53 - 1 - i))));
  });
  // Small writers share one buffer; one above the pooled size has a buffer of its own.
  const [a, b] = [new SpsWriter(8).u64(1).finish(), new SpsWriter(8).u64(2).finish()];
  t.is(a.buffer, b.buffer);
  t.not(b.byteOffset, a.byteOffset);
  t.is(new SpsWriter(4096).u64(3).finish().buffer.byteLength, 4096);
  // A writer that outgrows its slot moves to a buffer of its own with everything written so far.
  const grown = new SpsWriter(8).u64(1).u64(2).u64(3);
  t.is(hexOf(grown.finish()), '010000000000000002000000000000000300000000000000');
  // A finished writer's buffer that someone detaches takes the pool with it: the next writer gets another.
  const detached = new SpsWriter(8).u64(5).finish();
  const pool = detached.buffer as ArrayBuffer;
  structuredClone(pool, { transfer: [pool] });
  t.is(detached.length, 0);
  t.is(hexOf(new SpsWriter(8).u64(7).finish()), '0700000000000000');
  // The header goes in through the writer's own view, at its slot.
  const w = new SpsWriter(16, 32).u64(9);
  const frame = w.finishWithHeadroom();
  writeHeaderAt(w.dataView, w.dataViewOffset, OpCode.CallWrapper, 3, 0x1234, frame.length);
  t.is(
    hexOf(frame),
    hexOf(
      encodeFrame(
        OpCode.CallWrapper,
        3,
        0x1234,
        sps((x) => x.u64(9)),
      ),
    ),
  );
});

test('u64 writes every safe integer exactly and refuses what is not one', (t) => {
  for (const v of [0, 1, 0xffff_ffff, 2 ** 32, 2 ** 32 + 1, 0x7f76_93a9_8000, 2 ** 53 - 1]) {
    const r = new SpsReader(sps((w) => w.u64(v)));
    t.is(r.u64(), v);
  }
  t.is(hexOf(sps((w) => w.u64(2n ** 64n - 1n))), 'ffffffffffffffff');
  for (const bad of [-1, 0.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY])
    t.throws(() => new SpsWriter(8).u64(bad), { code: 'ERR_SPS_VALUE' });
});

test('sharedMemoryFinalizeRequestSize is the length of what sharedMemoryFinalizeRequest writes', (t) => {
  const call = (args: number[]) => ({ fn: 0x7f0000001000, args: Uint8Array.from(args) });
  const segments = [
    { group: 5, addr: 0x7f0000000000, size: 4096 },
    { group: 3, addr: 0x7f0000001000, size: 8192 },
  ];
  for (const actions of [
    [],
    [{ finalize: call([1, 2, 3]), dealloc: null }],
    [
      { finalize: call([]), dealloc: call([9, 9, 9, 9, 9]) },
      { finalize: null, dealloc: null },
    ],
  ]) {
    for (const n of [0, 1, 2]) {
      const fr = { segments: segments.slice(0, n), actions };
      const w = new SpsWriter(8).sharedMemoryFinalizeRequest(fr);
      t.is(w.length, sharedMemoryFinalizeRequestSize(n, actions), `${n} segments, ${actions.length} actions`);
    }
  }
});
