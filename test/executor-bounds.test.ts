import test from 'ava';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { decodeResult } from '../session/executor-session.js';
import { INC_CODE, RW, RX } from './helpers/graphs.js';
import { R, W, X } from '../graph/alloc-group.js';

/**
 * Bounds are checked before any byte is written (LLVM 22 writes first and corrupts its neighbours:
 * docs/wire-protocol.md §5.1 pitfall), and deinitialize makes a range reusable.
 */

const PAGE = 4096;
const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

async function spawn(t: { teardown(fn: () => unknown): void }): Promise<ExecutorSession> {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.close());
  return s;
}

async function reserveRaw(s: ExecutorSession, bytes: number): Promise<number> {
  return expectAddr(
    await s.call(Sym.memMgrReserve, new SpsWriter().addr(s.symbol(Sym.memMgrInstance)).u64(bytes)),
    'reserve',
  );
}

test('an initialize whose segment runs past its reservation is refused and no byte around it changes', async (t) => {
  const s = await spawn(t);
  // Two reservations: the kernel usually places them next to each other, so an overrun of the
  // first would land in the second.
  const a = await reserveRaw(s, 4 * PAGE);
  const b = await reserveRaw(s, 4 * PAGE);
  await s.writeBuffers([
    { addr: a, bytes: pattern(4 * PAGE, 1) },
    { addr: b, bytes: pattern(4 * PAGE, 2) },
  ]);
  const ranges = [
    { start: a, end: a + 4 * PAGE },
    { start: b, end: b + 4 * PAGE },
  ];
  const before = await s.checksum(ranges);
  const fr = new SpsWriter().addr(s.symbol(Sym.memMgrInstance)).finalizeRequest({
    segments: [
      { group: RW.prot, addr: a, size: PAGE, content: new Uint8Array(PAGE).fill(0x11) },
      // Starts inside the reservation, ends two pages past its end.
      { group: RW.prot, addr: a + 2 * PAGE, size: 4 * PAGE, content: new Uint8Array(4 * PAGE).fill(0xcc) },
    ],
    actions: [],
  });
  const result = await s.call(Sym.memMgrInitialize, fr);
  const e = t.throws(() => expectAddr(result, 'initialize'), { code: 'ERR_OUT_OF_RESERVATION' });
  t.regex(e!.message, /runs 8192 bytes past the end of its reservation/);
  t.deepEqual(await s.checksum(ranges), before);
  // Nothing was half-done either: the first segment's page is still writable and unchanged.
  t.deepEqual((await s.readBuffers([{ start: a, end: a + 16 }]))[0], pattern(16, 1));
});

test('content larger than its segment, misaligned segments and overlapping regions are refused before any write', async (t) => {
  const s = await spawn(t);
  const a = await reserveRaw(s, 4 * PAGE);
  await s.writeBuffers([{ addr: a, bytes: pattern(4 * PAGE, 3) }]);
  const before = await s.checksum([{ start: a, end: a + 4 * PAGE }]);
  const inst = s.symbol(Sym.memMgrInstance);
  const init = async (segments: Array<{ group: number; addr: number; size: number; content: Uint8Array }>) =>
    s.call(Sym.memMgrInitialize, new SpsWriter().addr(inst).finalizeRequest({ segments, actions: [] }));
  const cases: Array<[Promise<Uint8Array>, string]> = [
    [init([{ group: R | W, addr: a, size: 16, content: new Uint8Array(32) }]), 'ERR_CONTENT_TOO_LARGE'],
    [init([{ group: R | W, addr: a + 8, size: 16, content: new Uint8Array(4) }]), 'ERR_UNALIGNED_SEGMENT'],
    [init([{ group: R | W, addr: a + 0x100000000, size: 16, content: new Uint8Array(4) }]), 'ERR_OUT_OF_RESERVATION'],
    [
      init([
        { group: R | W, addr: a, size: 2 * PAGE, content: new Uint8Array(4) },
        { group: R | X, addr: a + PAGE, size: PAGE, content: new Uint8Array(4) },
      ]),
      'ERR_OVERLAPPING_SEGMENTS',
    ],
  ];
  for (const [call, code] of cases) {
    const bytes = await call;
    t.throws(() => expectAddr(bytes, 'initialize'), { code }, code);
  }
  t.deepEqual(await s.checksum([{ start: a, end: a + 4 * PAGE }]), before);
  // A live region blocks an overlapping one, and is left as it was.
  t.is(
    expectAddr(await init([{ group: R | W, addr: a, size: PAGE, content: new Uint8Array(4).fill(7) }]), 'initialize'),
    a,
  );
  const mid = await s.checksum([{ start: a, end: a + 4 * PAGE }]);
  const overlap = await init([{ group: R | W, addr: a, size: 2 * PAGE, content: new Uint8Array(4) }]);
  t.throws(() => expectAddr(overlap, 'initialize'), {
    code: 'ERR_REGION_OVERLAP',
    message: /overlaps previous region/,
  });
  t.deepEqual(await s.checksum([{ start: a, end: a + 4 * PAGE }]), mid);
});

for (const [name, make] of [
  ['rpc-copy', (s: ExecutorSession) => new RpcCopyMapper(s)],
  ['shared', (s: ExecutorSession) => new SharedMemoryMapper(s)],
] as const) {
  test(`${name}: the mapper itself refuses a segment past its reservation without sending it`, async (t) => {
    const s = await spawn(t);
    const mapper = make(s);
    const { start } = await mapper.reserve(2 * PAGE);
    const wm = mapper.prepare(start, 4);
    wm.set(INC_CODE);
    const calls = s.counters().calls;
    await t.throwsAsync(
      mapper.initialize({
        mappingBase: start,
        segments: [{ offset: PAGE, contentSize: 4, zeroFillSize: 2 * PAGE, group: RW }],
        actions: [],
      }),
      { code: 'ERR_OUT_OF_RESERVATION' },
    );
    t.is(s.counters().calls, calls);
    t.throws(() => mapper.prepare(start + PAGE, 2 * PAGE), { code: 'ERR_OUT_OF_RESERVATION' });
    await mapper.close();
  });

  test(`${name}: a range initialized R-X, deinitialized and initialized again with new code runs the new code`, async (t) => {
    const s = await spawn(t);
    const mapper = make(s);
    const { start } = await mapper.reserve(PAGE);
    for (const delta of [1, 2, 3]) {
      mapper.prepare(start, 4).set([0x8d, 0x47, delta, 0xc3]);
      const key = await mapper.initialize({
        mappingBase: start,
        segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: RX }],
        actions: [],
      });
      t.is(await s.runAsInt(key, 10), 10 + delta);
      await mapper.deinitialize([key]);
    }
    await mapper.close();
  });
}

test("run-as and memory access outside the executor's own memory end the session instead of faulting", async (t) => {
  const s = await spawn(t);
  const a = await reserveRaw(s, PAGE);
  // Data pages are not code: run_as_int refuses to jump there.
  await t.throwsAsync(s.runAsInt(a, 1), { code: 'ERR_EXECUTOR_LOST' });
  // The executor ended it: the socket's EOF, or, on a loaded machine, the child's exit seen first
  // (the session then closes the channel itself without waiting for the EOF); never a hangup.
  t.true(['eof', 'closed'].includes((await s.closed).reason), (await s.closed).reason);
  t.deepEqual(await s.exited(), { code: 1, signal: null });
  t.regex(s.stderr, /run_as_int_function: function .* needs --x access/);
});

test('release of an unknown base and deinitialize of an unknown key are errors that leave the session usable', async (t) => {
  const s = await spawn(t);
  const inst = s.symbol(Sym.memMgrInstance);
  const rel = await s.call(
    Sym.memMgrRelease,
    new SpsWriter().addr(inst).sequence([0x1000], (w, b) => w.addr(b)),
  );
  t.throws(() => expectSuccess(rel, 'release'), {
    code: 'ERR_UNKNOWN_RESERVATION',
    message: /0x1000 is not part of any reserved address range/,
  });
  const de = await s.call(
    Sym.memMgrDeinitialize,
    new SpsWriter().addr(inst).sequence([0x2000], (w, b) => w.addr(b)),
  );
  t.throws(() => expectSuccess(de, 'deinitialize'), { code: 'ERR_UNKNOWN_KEY' });
  t.is(
    decodeResult(await s.call(Sym.memMgrReserve, new SpsWriter().addr(inst).u64(0)), 'reserve', (r) =>
      r.expected((r) => r.addr()),
    ).ok,
    true,
  );
});

test('an EH-frame registration whose records run past the section is refused instead of handed to the unwinder', async (t) => {
  const s = await spawn(t);
  const a = await reserveRaw(s, 2 * PAGE);
  const inst = s.symbol(Sym.memMgrInstance);
  const register = s.symbol(Sym.registerEHFrame);
  // A "record" that claims 4 KiB inside a 16-byte section.
  const garbage = new Uint8Array(16);
  new DataView(garbage.buffer).setUint32(0, 0x1000, true);
  const range = new SpsWriter()
    .addr(a)
    .addr(a + 16)
    .finish()
    .slice();
  const out = await s.call(
    Sym.memMgrInitialize,
    new SpsWriter().addr(inst).finalizeRequest({
      segments: [{ group: R, addr: a, size: 16, content: garbage }],
      actions: [{ finalize: { fn: register, args: range }, dealloc: null }],
    }),
  );
  const err = t.throws(() => expectAddr(out, 'initialize'), { code: 'ERR_INVALID_EH_FRAME' });
  t.regex(
    err!.message,
    /record at 0x[0-9a-f]+ \(offset 0 of .*\): its length 4096 runs 4084 bytes past the end of the section/,
  );
  // Refused before anything stuck: the page is writable again and the session goes on.
  await s.writeBuffers([{ addr: a, bytes: Uint8Array.of(1) }]);
  t.deepEqual([...(await s.readBuffers([{ start: a, end: a + 1 }]))[0]!], [1]);
});
