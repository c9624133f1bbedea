import test from 'ava';
import { OpCode, encodeFrame } from '../protocol/frame.js';
import { JitmemSym, Sym, decodeSetup } from '../protocol/setup.js';
import { SpsReader, SpsWriter } from '../protocol/sps.js';
import { processExists, spawnRawExecutor } from './helpers/executor-process.js';

/**
 * Every malformed frame ends that session with a message on stderr and exit status 1: never a
 * signal, never a hang.
 */

function header(size: bigint, opcode: bigint, seq = 0n, tag = 0n): Uint8Array {
  const h = new Uint8Array(32);
  const dv = new DataView(h.buffer);
  dv.setBigUint64(0, size, true);
  dv.setBigUint64(8, opcode, true);
  dv.setBigUint64(16, seq, true);
  dv.setBigUint64(24, tag, true);
  return h;
}

type Case = {
  name: string;
  /** Bytes to send once Setup has arrived; the symbol table gives real tags. */
  bytes: (symbols: ReadonlyMap<string, number>) => Uint8Array;
  /** End our side after sending. */
  end?: boolean;
  code: string;
  message: RegExp;
};

const cases: Case[] = [
  {
    name: 'a truncated header',
    bytes: () => header(64n, 3n).subarray(0, 20),
    end: true,
    code: 'ERR_UNEXPECTED_EOF',
    message: /unexpected end-of-file .*\(20 bytes/,
  },
  {
    name: 'a truncated payload',
    bytes: (s) => encodeFrame(OpCode.CallWrapper, 0, s.get(Sym.memMgrReserve)!, new Uint8Array(16)).subarray(0, 40),
    end: true,
    code: 'ERR_UNEXPECTED_EOF',
    message: /8 bytes of an incomplete frame/,
  },
  {
    name: 'a size below 32',
    bytes: () => header(16n, 3n),
    code: 'ERR_FRAME_TOO_SMALL',
    message: /frame size 16 is below/,
  },
  { name: 'a size of zero', bytes: () => header(0n, 0n), code: 'ERR_FRAME_TOO_SMALL', message: /frame size 0/ },
  {
    name: 'a size above the limit',
    bytes: () => header(1n << 20n, 3n),
    code: 'ERR_FRAME_TOO_LARGE',
    message: /1048576 is above the limit of 65536/,
  },
  {
    name: 'a size of 2^64-1',
    bytes: () => header(0xffff_ffff_ffff_ffffn, 3n),
    code: 'ERR_FRAME_TOO_LARGE',
    message: /0xffffffffffffffff is above the limit/,
  },
  { name: 'an unknown opcode', bytes: () => header(32n, 9n), code: 'ERR_UNKNOWN_OPCODE', message: /unknown opcode 9/ },
  {
    name: 'an unknown tag',
    bytes: () => encodeFrame(OpCode.CallWrapper, 0, 0x1234, new Uint8Array(4)),
    code: 'ERR_UNKNOWN_TAG',
    message: /unknown tag 0x1234/,
  },
  {
    name: 'a tag beyond 2^53',
    bytes: () => header(32n, 3n, 0n, 0xdead_beef_dead_beefn),
    code: 'ERR_UNKNOWN_TAG',
    message: /0xdeadbeefdeadbeef/,
  },
  {
    name: 'malformed SPS arguments',
    bytes: (s) => encodeFrame(OpCode.CallWrapper, 0, s.get(Sym.memMgrReserve)!, Uint8Array.of(1, 2, 3, 4, 5)),
    code: 'ERR_SPS_MALFORMED',
    message: /malformed reserve arguments at byte offset 0/,
  },
  {
    name: 'an over-long sequence count',
    bytes: (s) => {
      const p = new Uint8Array(16);
      new DataView(p.buffer).setBigUint64(8, 1n << 50n, true);
      return encodeFrame(OpCode.CallWrapper, 0, s.get(Sym.readBuffers)!, p.subarray(8));
    },
    code: 'ERR_SPS_MALFORMED',
    message: /sequence of 1125899906842624 elements/,
  },
  {
    name: 'a bool that is neither 0 nor 1',
    bytes: (s) => {
      // resolve(handle, [("a", required = 7)])
      const p = new Uint8Array(8 + 8 + 8 + 1 + 1);
      const dv = new DataView(p.buffer);
      dv.setBigUint64(8, 1n, true);
      dv.setBigUint64(16, 1n, true);
      p[24] = 0x61;
      p[25] = 7;
      return encodeFrame(OpCode.CallWrapper, 0, s.get(Sym.dylibResolve)!, p);
    },
    code: 'ERR_SPS_MALFORMED',
    message: /resolve arguments at byte offset 25: a bool must be 0 or 1; got 7/,
  },
  {
    name: 'an empty argument buffer',
    bytes: (s) => encodeFrame(OpCode.CallWrapper, 0, s.get(Sym.memMgrInitialize)!, new Uint8Array(0)),
    code: 'ERR_SPS_MALFORMED',
    message: /initialize arguments at byte offset 0/,
  },
  {
    name: 'a read_buffers range that ends before it starts',
    bytes: (s) =>
      encodeFrame(
        OpCode.CallWrapper,
        0,
        s.get(Sym.readBuffers)!,
        new SpsWriter().sequence([0], (w) => w.addrRange({ start: 0x2000, end: 0x1000 })).finish(),
      ),
    code: 'ERR_INVALID_RANGE',
    message: /read_buffers: range \[0x2000, 0x1000\) ends before it starts/,
  },
  {
    name: 'a result for an unknown sequence number',
    bytes: () => encodeFrame(OpCode.Result, 99, 0, new Uint8Array(1)),
    code: 'ERR_UNKNOWN_SEQUENCE_NUMBER',
    message: /no call for sequence number 99/,
  },
  {
    name: 'a Setup from the controller',
    bytes: () => encodeFrame(OpCode.Setup, 0, 0, new Uint8Array(0)),
    code: 'ERR_UNEXPECTED_SETUP',
    message: /unexpected Setup opcode/,
  },
];

for (const c of cases) {
  test(`${c.name} ends the session with a message and status 1`, async (t) => {
    const ex = spawnRawExecutor(['--max-frame-size', '65536']);
    t.teardown(() => ex.child.kill('SIGKILL'));
    const setup = await ex.nextFrame();
    t.is(setup?.opcode, OpCode.Setup);
    const symbols = decodeSetup(setup!.payload).symbols;
    ex.toExecutor.write(c.bytes(symbols));
    if (c.end) ex.toExecutor.end();
    t.deepEqual(await ex.exit, { code: 1, signal: null });
    t.regex(ex.stderr(), new RegExp(`jitmem executor: session ended: .*\\[${c.code}\\]`));
    t.regex(ex.stderr(), c.message);
    t.false(processExists(ex.child.pid!));
  });
}

test('EOF exactly between frames is a clean end: status 0 and no message', async (t) => {
  const ex = spawnRawExecutor();
  t.teardown(() => ex.child.kill('SIGKILL'));
  const symbols = decodeSetup((await ex.nextFrame())!.payload).symbols;
  const reserve = new Uint8Array(16);
  new DataView(reserve.buffer).setBigUint64(0, BigInt(symbols.get(Sym.memMgrInstance)!), true);
  new DataView(reserve.buffer).setBigUint64(8, 65536n, true);
  ex.toExecutor.write(encodeFrame(OpCode.CallWrapper, 0, symbols.get(Sym.memMgrReserve)!, reserve));
  const result = await ex.nextFrame();
  t.is(result?.opcode, OpCode.Result);
  t.is(result?.payload[0], 1);
  ex.toExecutor.end();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
  t.is(ex.stderr(), '');
});

test('a Hangup ends the session with status 0, whatever its payload says', async (t) => {
  const ex = spawnRawExecutor();
  t.teardown(() => ex.child.kill('SIGKILL'));
  await ex.nextFrame();
  ex.toExecutor.write(encodeFrame(OpCode.Hangup, 0, 0, Uint8Array.of(1, 1, 0, 0, 0, 0, 0, 0, 0, 0x41)));
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('a checksum or code barrier range that ends before it starts is refused in its answer; the session goes on', async (t) => {
  const ex = spawnRawExecutor();
  t.teardown(() => ex.child.kill('SIGKILL'));
  const symbols = decodeSetup((await ex.nextFrame())!.payload).symbols;
  const backwards = new SpsWriter().sequence([0], (w) => w.addrRange({ start: 0x5000, end: 0x4000 })).finish();
  ex.toExecutor.write(encodeFrame(OpCode.CallWrapper, 1, symbols.get(JitmemSym.checksum)!, backwards));
  const sum = await ex.nextFrame();
  t.is(sum?.seq, 1);
  const refused = new SpsReader(sum!.payload).expected((r) => r.u64());
  t.false(refused.ok);
  if (!refused.ok) {
    t.regex(refused.error, /ERR_INVALID_RANGE/);
    t.regex(refused.error, /checksum: range \[0x5000, 0x4000\) ends before it starts/);
  }
  ex.toExecutor.write(encodeFrame(OpCode.CallWrapper, 2, symbols.get(JitmemSym.codeBarrier)!, backwards));
  const barrier = await ex.nextFrame();
  t.is(barrier?.seq, 2);
  const error = new SpsReader(barrier!.payload).error();
  t.regex(error ?? '', /ERR_INVALID_RANGE/);
  t.regex(error ?? '', /code_barrier: range \[0x5000, 0x4000\) ends before it starts/);
  ex.toExecutor.end();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
  t.is(ex.stderr(), '');
});
