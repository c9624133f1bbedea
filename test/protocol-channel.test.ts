import test from 'ava';
import net from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { Channel, type CallHandler } from '../protocol/channel.js';
import { FrameParser, HEADER_SIZE, OpCode, encodeFrame } from '../protocol/frame.js';
import { SpsWriter, sps } from '../protocol/sps.js';

/** Two channels joined by a pair of in-memory byte streams. */
function pair(executorHandler?: CallHandler, controllerHandler?: CallHandler, maxFrameSize?: number) {
  const c2e = new PassThrough();
  const e2c = new PassThrough();
  const controller = new Channel(e2c, c2e, { role: 'controller', handler: controllerHandler, lostCode: 'ERR_EXECUTOR_LOST', maxFrameSize });
  const executor = new Channel(c2e, e2c, { role: 'executor', handler: executorHandler, maxFrameSize });
  return { controller, executor, c2e, e2c };
}

const u32 = (n: number): Uint8Array => sps((w) => w.u32(n));
const readU32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(0, true);

test('pipelined calls are matched by sequence number even when answered out of order', async (t) => {
  const gates: Array<() => void> = [];
  const { controller, executor } = pair(async (_tag, payload) => {
    const n = readU32(payload);
    // Even calls wait until the odd ones have been answered.
    if (n % 2 === 0) await new Promise<void>((resolve) => gates.push(resolve));
    return u32(n * 10);
  });
  executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
  await controller.setup;
  const calls = Array.from({ length: 20 }, (_, i) => controller.call(0x1000, u32(i)));
  const odd = await Promise.all(calls.filter((_, i) => i % 2 === 1));
  t.deepEqual(odd.map(readU32), [10, 30, 50, 70, 90, 110, 130, 150, 170, 190]);
  gates.reverse().forEach((g) => g());
  t.deepEqual((await Promise.all(calls)).map(readU32), Array.from({ length: 20 }, (_, i) => i * 10));
  controller.close();
});

test('calls go both ways: the executor calls its controller, each side numbering its own calls from 0', async (t) => {
  const seen: number[] = [];
  const { controller, executor } = pair(
    (_tag, p) => p,
    (tag, p, seq) => {
      seen.push(seq);
      return u32(readU32(p) + tag);
    },
  );
  executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
  await controller.setup;
  t.is(readU32(await executor.call(5, u32(1))), 6);
  t.is(readU32(await executor.call(5, u32(2))), 7);
  t.deepEqual(seen, [0, 1]);
  t.is(readU32(await controller.call(9, u32(3))), 3);
  controller.close();
});

test('a Hangup ends the session on both sides and pending calls reject with the lost code', async (t) => {
  const { controller, executor } = pair(() => new Promise<Uint8Array>(() => {}));
  executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
  await controller.setup;
  const pending = controller.call(1, u32(0));
  await new Promise((r) => setImmediate(r));
  executor.hangup();
  await t.throwsAsync(pending, { code: 'ERR_EXECUTOR_LOST', message: /hung up/ });
  t.is((await controller.closed).reason, 'hangup');
  await t.throwsAsync(controller.call(1, u32(0)), { code: 'ERR_EXECUTOR_LOST' });
});

test('a frame above the configured limit ends the session with ERR_FRAME_TOO_LARGE before its payload arrives', async (t) => {
  const { controller, executor, c2e } = pair((_t, p) => p, undefined, 4096);
  executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
  await controller.setup;
  // Only the header of an 8 KiB frame: the refusal must not wait for the rest.
  c2e.write(encodeFrame(OpCode.CallWrapper, 0, 1, new Uint8Array(8192)).subarray(0, 32));
  const end = await executor.closed;
  t.is(end.reason, 'protocol-error');
  t.is(end.error!.code, 'ERR_FRAME_TOO_LARGE');
  t.regex(end.error!.message, /8224 is above the limit of 4096/);
});

test('a Result for an unknown sequence number and a Result with a tag are protocol errors', async (t) => {
  for (const [frame, code] of [
    [encodeFrame(OpCode.Result, 77, 0, u32(1)), 'ERR_UNKNOWN_SEQUENCE_NUMBER'],
    [encodeFrame(OpCode.Result, 0, 0x1234, u32(1)), 'ERR_UNEXPECTED_TAG'],
  ] as const) {
    const { controller, executor, e2c } = pair(() => new Promise<Uint8Array>(() => {}));
    executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
    await controller.setup;
    const pending = controller.call(1, u32(0));
    e2c.write(frame);
    await t.throwsAsync(pending, { code: 'ERR_EXECUTOR_LOST' });
    const end = await controller.closed;
    t.is(end.error?.code, code);
  }
});

test('EOF in the middle of a frame is reported; EOF between frames is a clean end', async (t) => {
  {
    const { executor, c2e } = pair((_t, p) => p);
    c2e.end(encodeFrame(OpCode.CallWrapper, 0, 1, u32(0)).subarray(0, 20));
    const end = await executor.closed;
    t.is(end.error?.code, 'ERR_UNEXPECTED_EOF');
    t.regex(end.error!.message, /20 bytes of an incomplete frame/);
  }
  {
    const { executor, c2e } = pair((_t, p) => p);
    c2e.end();
    t.deepEqual(await executor.closed, { reason: 'eof' });
  }
});

test('a controller that sends Setup, and a call to a tag with no handler, end the executor session', async (t) => {
  {
    const { executor, c2e } = pair((_t, p) => p);
    c2e.write(encodeFrame(OpCode.Setup, 0, 0, new Uint8Array(0)));
    t.is((await executor.closed).error?.code, 'ERR_UNEXPECTED_SETUP');
  }
  {
    const { executor, c2e } = pair(() => undefined);
    c2e.write(encodeFrame(OpCode.CallWrapper, 3, 0xdead, new Uint8Array(0)));
    const end = await executor.closed;
    t.is(end.error?.code, 'ERR_UNKNOWN_TAG');
    t.regex(end.error!.message, /0xdead/);
  }
});

test('over a real socket a large payload arrives intact', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  const serverSide = await accepted;
  server.close();
  const executor = new Channel(serverSide, serverSide, { role: 'executor', handler: (_t, p) => sps((w) => w.u64(p.length).raw(p.subarray(p.length - 4))) });
  const controller = new Channel(client, client, { role: 'controller' });
  executor.sendSetup(sps((w) => w.string('t').u64(4096).u64(0).u64(0)));
  await controller.setup;
  const big = new Uint8Array(5 << 20);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  big.set([1, 2, 3, 4], big.length - 4);
  const out = await controller.call(7, big);
  t.is(new DataView(out.buffer, out.byteOffset).getUint32(0, true), 5 << 20);
  t.deepEqual([...out.subarray(8)], [1, 2, 3, 4]);
  controller.close();
  t.deepEqual(await executor.closed, { reason: 'eof' });
  client.destroy();
  serverSide.destroy();
});

/** A byte sink that keeps what it is given, and how: the chunks of each write or writev. */
class WriteRecorder extends Writable {
  readonly batches: number[] = [];
  readonly bytes: Uint8Array[] = [];
  override _write(chunk: Uint8Array, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.batches.push(1);
    this.bytes.push(chunk);
    done();
  }
  override _writev(chunks: Array<{ chunk: Uint8Array }>, done: (err?: Error | null) => void): void {
    this.batches.push(chunks.length);
    for (const c of chunks) this.bytes.push(c.chunk);
    done();
  }
}

const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test("a turn's first frame leaves at once, the frames after it in that turn together at its end, in the order sent", async (t) => {
  const sink = new WriteRecorder();
  const controller = new Channel(new PassThrough(), sink, { role: 'controller' });
  controller.call(0x10, u32(1)).catch(() => undefined);
  // Written before the caller's turn is over: a sequential call's request does not wait for it.
  t.deepEqual(sink.batches, [1]);
  controller.call(0x10, u32(2)).catch(() => undefined);
  controller.call(0x10, u32(3)).catch(() => undefined);
  t.deepEqual(sink.batches, [1]);
  await endOfTurn();
  t.deepEqual(sink.batches, [1, 2]);
  // The next turn starts over: its first frame at once again.
  controller.call(0x10, u32(4)).catch(() => undefined);
  t.deepEqual(sink.batches, [1, 2, 1]);
  await endOfTurn();
  // A gathered frame first in its turn: its pieces at once, in one writev.
  const content = Uint8Array.of(9, 8, 7, 6, 5);
  const gathered = new SpsWriter(64, HEADER_SIZE).u32(5).bytesByReference(content).u32(6);
  controller.call(0x20, gathered).catch(() => undefined);
  t.deepEqual(sink.batches, [1, 2, 1, 3]);
  await endOfTurn();
  t.deepEqual(sink.batches, [1, 2, 1, 3]);
  const frames = new FrameParser(1 << 20).push(Buffer.concat(sink.bytes));
  t.deepEqual(
    frames.map((f) => [f.seq, f.tag]),
    [
      [0, 0x10],
      [1, 0x10],
      [2, 0x10],
      [3, 0x10],
      [4, 0x20],
    ],
  );
  t.deepEqual(frames.slice(0, 4).map((f) => readU32(f.payload!)), [1, 2, 3, 4]);
  t.deepEqual([...frames[4]!.payload!], [5, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 8, 7, 6, 5, 6, 0, 0, 0]);
  controller.close();
});
