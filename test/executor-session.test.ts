import test from 'ava';
import { PassThrough } from 'node:stream';
import { ExecutorSession } from '../session/executor-session.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { decode } from '../protocol/sps.js';
import { PROCESS_COST_COUNTER_NAMES } from '../core/cost-counters.js';
import { Channel } from '../protocol/channel.js';
import { LLVM22_BOOTSTRAP_SYMBOLS, encodeSetup } from '../protocol/setup.js';
import { processExists } from './helpers/executor-process.js';
import { R, X } from '../graph/alloc-group.js';

/** The controller's session object: start, Setup, symbols, calls both ways, a clean end. */

test('a spawned jitmem executor advertises the 34 LLVM 22 names plus jitmem services, and close leaves no process', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.kill());
  t.is(s.pageSize, 4096);
  t.regex(s.targetTriple, /-linux-gnu$/);
  for (const name of LLVM22_BOOTSTRAP_SYMBOLS) t.true(s.hasSymbol(name), name);
  t.true(s.isJitmem);
  // Service tokens are distinct addresses; alloc actions are real functions elsewhere.
  const addrs = [...s.symbols.values()];
  t.is(new Set(addrs).size, addrs.length);
  await s.noop();
  await s.close();
  t.deepEqual(await s.exited(), { code: 0, signal: null });
  t.false(processExists(s.pid!));
});

test('lookup resolves symbols in the executor process', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.close());
  const [strlen, missing] = await s.lookup(['strlen', 'no_such_symbol_anywhere']);
  t.true(strlen! > 0);
  t.is(missing, 0);
});

test('a missing symbol, a missing executor binary and an executor that dies before Setup are typed errors', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.close());
  t.throws(() => s.symbol('nope'), { code: 'ERR_MISSING_SYMBOL', message: /"nope"/ });
  await t.throwsAsync(s.call('nope', new Uint8Array(0)), { code: 'ERR_MISSING_SYMBOL' });
  await t.throwsAsync(ExecutorSession.spawn({ kind: 'llvm', llvmExecutor: '/nonexistent/llvm-jitlink-executor' }), {
    code: 'ERR_EXECUTOR_SPAWN_FAILED',
    message: /\/nonexistent\/llvm-jitlink-executor/,
  });
  const err = await t.throwsAsync(ExecutorSession.spawn({ args: ['--bogus-flag'] }), { code: 'ERR_EXECUTOR_LOST' });
  t.regex(err!.message, /exited before sending Setup: .*unknown option "--bogus-flag"/);
});

test('calls from the executor reach the handler registered for their tag (JIT dispatch, docs/wire-protocol.md §5.7)', async (t) => {
  const c2e = new PassThrough();
  const e2c = new PassThrough();
  // A stand-in executor speaking the protocol: its Setup, then a call to the controller.
  const executor = new Channel(c2e, e2c, { role: 'executor' });
  executor.sendSetup(
    encodeSetup({
      targetTriple: 'x86_64-pc-linux-gnu',
      pageSize: 4096,
      bootstrapMap: new Map(),
      symbols: new Map([['x', 0x1000]]),
    }).finish(),
  );
  const session = await ExecutorSession.over(e2c, c2e);
  session.handle(0xabcd0000, (_tag, payload) => {
    t.is(Buffer.from(payload).toString(), 'ARGS!');
    return Uint8Array.of(0x2a);
  });
  const reply = await executor.call(0xabcd0000, new TextEncoder().encode('ARGS!'));
  t.deepEqual([...reply], [0x2a]);
  // A tag nobody handles ends the session: the protocol has no way to refuse one call.
  await t.throwsAsync(executor.call(0x5555, new Uint8Array(0)), { code: 'ERR_CHANNEL_CLOSED' });
  t.is((await session.closed).error?.code, 'ERR_UNKNOWN_TAG');
});

/**
 * x86-64 for int32_t f(int32_t): calls dispatch_fn(ctx, tag, data, 5) and returns
 * (result size << 8) | first result byte.
 */
function dispatchingCode(dispatchFn: number, ctx: number, tag: number, data: number): Uint8Array {
  const imm = (v: number): number[] => [...new Uint8Array(new BigUint64Array([BigInt(v)]).buffer)];
  return Uint8Array.from([
    0x53, // push rbx (aligns the stack for the call)
    0x48,
    0xbf,
    ...imm(ctx), // movabs rdi, ctx
    0x48,
    0xbe,
    ...imm(tag), // movabs rsi, tag
    0x48,
    0xba,
    ...imm(data), // movabs rdx, data
    0xb9,
    0x05,
    0x00,
    0x00,
    0x00, // mov ecx, 5
    0x48,
    0xb8,
    ...imm(dispatchFn), // movabs rax, dispatch_fn
    0xff,
    0xd0, // call rax
    0x0f,
    0xb6,
    0xc0, // movzx eax, al
    0xc1,
    0xe2,
    0x08, // shl edx, 8
    0x09,
    0xd0, // or eax, edx
    0x5b, // pop rbx
    0xc3, // ret
  ]);
}

test("JIT'd code calls its controller through dispatch_fn and gets the answer; the executor serves other calls meanwhile", async (t) => {
  if (process.arch !== 'x64') {
    t.log(`SKIPPED: the dispatching code is x86-64 machine code; this is ${process.arch}`);
    t.pass();
    return;
  }
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.close());
  const mapper = new RpcCopyMapper(s);
  const { start } = await mapper.reserve(2 * 4096);
  const data = start + 4096;
  mapper.prepare(data, 5).set(new TextEncoder().encode('ARGS!'));
  const code = dispatchingCode(s.symbol(Sym.dispatchFn), s.symbol(Sym.dispatchCtx), 0xabcd0000, data);
  mapper.prepare(start, code.length).set(code);
  const key = await mapper.initialize({
    mappingBase: start,
    segments: [
      { offset: 0, contentSize: code.length, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } },
      { offset: 4096, contentSize: 5, zeroFillSize: 0, group: { prot: R, lifetime: 'standard' } },
    ],
    actions: [],
  });
  let seenWhileRunning: Uint8Array[] = [];
  let refusal: unknown;
  s.handle(0xabcd0000, async (_tag, payload) => {
    t.is(Buffer.from(payload).toString(), 'ARGS!');
    // The code is blocked in dispatch, yet the executor answers other calls...
    seenWhileRunning = await s.checksum([{ start: data, end: data + 5 }]);
    // ...but refuses to take away memory the code may be using.
    refusal = await mapper.deinitialize([key]).catch((e: unknown) => e);
    return Uint8Array.of(0x2a);
  });
  t.is(await s.runAsInt(key, 0), (1 << 8) | 0x2a);
  t.is(seenWhileRunning.length, 1);
  t.is((refusal as { code?: string }).code, 'ERR_CODE_RUNNING');
  // Once the code has returned, the same deinitialize goes through.
  await mapper.deinitialize([key]);
  await mapper.close();
});


/** The writes the executor has made to its channel: the cost counters' last value (no report shows it). */
async function executorWrites(s: ExecutorSession): Promise<number> {
  const values = decode(await s.call(JitmemSym.costCounters, new Uint8Array(0)), 'cost_counters', (r) =>
    r.sequence(8, (r) => r.u64()),
  );
  if (values.length !== PROCESS_COST_COUNTER_NAMES.length + 1) throw new Error(`${values.length} cost counters`);
  return values[values.length - 1]!;
}

test('the executor answers calls that arrive together with one write, not one write per answer', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.close());
  await s.noop();
  // Each reading is a call answered with a write of its own (the last before the executor waits).
  const before = await executorWrites(s);
  // 200 calls sent in one turn: the channel writes the first at once and the other 199 together,
  // so the executor finds them in a few reads and answers each read's calls in one write.
  await Promise.all(Array.from({ length: 200 }, () => s.noop()));
  const writes = (await executorWrites(s)) - before - 1;
  t.true(writes >= 1 && writes <= 10, `${writes} writes for 200 answers`);
  // Answers still leave when no more input comes: a lone call is answered, with one write.
  const lone = await executorWrites(s);
  await s.noop();
  t.is((await executorWrites(s)) - lone - 1, 1);
});
