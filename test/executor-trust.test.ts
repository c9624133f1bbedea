import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as native from '../native/index.js';
import { ExecutorSession } from '../session/executor-session.js';
import { Channel } from '../protocol/channel.js';
import { Sym, encodeSetup, processTriple } from '../protocol/setup.js';
import { SpsReader, SpsWriter } from '../protocol/sps.js';
import { CHALLENGE_BYTES } from '../protocol/auth.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { INC_CODE } from './helpers/graphs.js';
import { EXECUTOR, processExists } from './helpers/executor-process.js';
import { R, X } from '../graph/alloc-group.js';

/**
 * The controller trusts nothing the other end says, and the executor lets in only the one who
 * started it: a shm name that is not the executor's is neither opened nor unlinked; a TCP
 * connection without the token is dropped while the executor waits for the right one; a Unix
 * socket is 0600 in a 0700 directory, and one left by a killed executor does not block the next.
 */

// --- a shm name the controller must refuse (test 2) -------------------------------------------

/** A fake executor: Setup with the shared-memory service, and Reserve answered with `name`. */
function fakeExecutor(name: string): Promise<{ port: number; released: number[]; close(): void }> {
  const released: number[] = [];
  const server = net.createServer((socket) => {
    const symbols = new Map<string, number>([
      [Sym.shmInstance, 0x1000],
      [Sym.shmReserve, 0x1010],
      [Sym.shmInitialize, 0x1020],
      [Sym.shmDeinitialize, 0x1030],
      [Sym.shmRelease, 0x1040],
    ]);
    const channel = new Channel(socket, socket, {
      role: 'executor',
      handler: (tag, payload) => {
        if (tag === 0x1010) return new SpsWriter().bool(true).addr(0x7000_0000_0000).string(name);
        if (tag === 0x1040) {
          const r = new SpsReader(payload);
          r.addr();
          released.push(...r.sequence(8, (r) => r.addr()));
          return new SpsWriter().error(null);
        }
        return undefined;
      },
    });
    channel.sendSetup(
      encodeSetup({
        targetTriple: processTriple(),
        pageSize: native.pageSize(),
        bootstrapMap: new Map(),
        symbols,
      }).finish(),
    );
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: (server.address() as net.AddressInfo).port, released, close: () => server.close() }),
    ),
  );
}

for (const [label, name] of [
  ['a name of the user’s own', `/user-data-${process.pid}`],
  ['a jitmem name without its random part', `/jitmem_${process.pid}_1`],
  ['a jitmem name with another pid’s random part too short', `/jitmem_${process.pid}_1_abcdef`],
] as const) {
  test(`a controller refuses Reserve answered with ${label}, and that object survives`, async (t) => {
    // The user's object the fake executor names: it must still be there afterwards.
    const fd = native.shmCreate(name, 4096);
    native.closeFd(fd);
    t.teardown(() => {
      try {
        native.shmUnlink(name);
      } catch {
        // gone already: the assertion below says so
      }
    });
    const fake = await fakeExecutor(name);
    t.teardown(() => fake.close());
    const session = await ExecutorSession.connect('127.0.0.1', fake.port);
    t.teardown(() => session.close());
    const mapper = new SharedMemoryMapper(session);
    const err = await t.throwsAsync(mapper.reserve(4096), { code: 'ERR_SHM_NAME_REFUSED' });
    t.regex(err!.message, /neither opened nor unlinked/);
    t.true(existsSync(`/dev/shm${name}`), 'the foreign object still exists');
    t.deepEqual(fake.released, [0x7000_0000_0000], 'the executor is asked to give its reservation back');
  });
}

test('a spawned executor’s names carry its pid and a random part, and the controller accepts only those', async (t) => {
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const bytes = await session.call(Sym.shmReserve, new SpsWriter().addr(session.symbol(Sym.shmInstance)).u64(4096));
  const e = new SpsReader(bytes).expected((r) => ({ base: r.addr(), name: r.string() }));
  t.true(e.ok);
  if (!e.ok) return;
  t.regex(e.value.name, new RegExp(`^/jitmem_${session.pid}_\\d+_[0-9a-f]{16}$`));
  const mapper = new SharedMemoryMapper(session);
  const { start } = await mapper.reserve(4096);
  t.true(start > 0);
  await mapper.close();
});

// --- TCP: the token (test 3) --------------------------------------------------------------

interface Listening {
  child: ChildProcess;
  port: number;
  token: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function listenTcp(extra: string[] = []): Promise<Listening> {
  const child = spawn(EXECUTOR, ['--listen', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on 127\.0\.0\.1:(\d+)\ntoken ([0-9a-f]{64})\n/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), token: m[2]!, exit });
    });
    void exit.then(() => reject(new Error(`executor exited before listening: ${out}`)));
  });
}

/** Connects, reads the challenge, answers `answer`; resolves with what came back before the executor closed. */
async function answerWith(port: number, answer: Uint8Array | null): Promise<{ challenge: number; after: number }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let got = 0;
  let challenge = 0;
  await new Promise<void>((resolve) => {
    socket.on('data', (b: Buffer) => {
      if (challenge < CHALLENGE_BYTES) {
        const take = Math.min(b.length, CHALLENGE_BYTES - challenge);
        challenge += take;
        got += b.length - take;
        if (challenge === CHALLENGE_BYTES && answer) socket.write(answer);
      } else {
        got += b.length;
      }
    });
    socket.once('close', () => resolve());
    if (!answer) setTimeout(() => socket.destroy(), 300);
  });
  return { challenge, after: got };
}

test('over TCP a connection without the token is dropped, and the executor keeps listening for the one with it', async (t) => {
  const ex = await listenTcp();
  t.teardown(() => ex.child.kill('SIGKILL'));
  // A wrong answer: the executor closes the connection and sends no Setup.
  t.deepEqual(await answerWith(ex.port, new Uint8Array(32).fill(7)), { challenge: CHALLENGE_BYTES, after: 0 });
  // A controller that was not told the token: a typed error, not a garbled frame.
  await t.throwsAsync(ExecutorSession.connect('127.0.0.1', ex.port), { code: 'ERR_AUTH_REQUIRED' });
  // A wrong token through the real controller.
  await t.throwsAsync(ExecutorSession.connect('127.0.0.1', ex.port, { token: 'ab'.repeat(32) }), {
    code: 'ERR_EXECUTOR_LOST',
  });
  // The right one still gets in, and gets a working session.
  const session = await ExecutorSession.connect('127.0.0.1', ex.port, { token: ex.token });
  const mapper = new RpcCopyMapper(session);
  const { start } = await mapper.reserve(4096);
  mapper.prepare(start, 4).set(INC_CODE);
  const key = await mapper.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } }],
    actions: [],
  });
  t.is(await session.runAsInt(key, 41), 42);
  await mapper.close();
  await session.close();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('--no-auth (for llvm-jitlink) prints no token and sends Setup first', async (t) => {
  const child = spawn(EXECUTOR, ['--listen', '127.0.0.1:0', '--no-auth'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve) =>
    child.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(s)),
  );
  const m = /^listening on 127\.0\.0\.1:(\d+)\n$/.exec(line);
  t.truthy(m, line);
  const session = await ExecutorSession.connect('127.0.0.1', Number(m![1]));
  t.true(session.isJitmem);
  await session.close();
});

// --- Unix sockets (test 3) ------------------------------------------------------------------

function listenUnix(socketPath: string): {
  child: ChildProcess;
  line: Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
} {
  const child = spawn(EXECUTOR, ['--listen', `unix:${socketPath}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  const line = new Promise<string>((resolve) => {
    child.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(s));
    void exit.then(() => resolve(''));
  });
  return { child, line, exit, stderr: () => err };
}

test('a Unix socket is 0600, and one left by a SIGKILLed executor does not stop the next', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-trust-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'run', 'executor.sock');
  const first = listenUnix(socketPath);
  t.teardown(() => first.child.kill('SIGKILL'));
  t.is(await first.line, `listening on unix:${socketPath}\n`);
  t.is(statSync(socketPath).mode & 0o777, 0o600);
  t.is(statSync(path.dirname(socketPath)).mode & 0o777, 0o700, 'a directory the executor made is 0700');
  // A second executor on the same path while the first listens: refused, the first untouched.
  const second = listenUnix(socketPath);
  t.deepEqual(await second.exit, { code: 2, signal: null });
  t.regex(second.stderr(), /another executor is listening on .*executor\.sock \[ERR_LISTEN_FAILED\]/);
  first.child.kill('SIGKILL');
  await first.exit;
  t.true(existsSync(socketPath), 'SIGKILL leaves the socket file');
  const third = listenUnix(socketPath);
  t.teardown(() => third.child.kill('SIGKILL'));
  t.is(await third.line, `listening on unix:${socketPath}\n`);
  const session = await ExecutorSession.connectUnix(socketPath);
  t.true(session.isJitmem);
  await session.close();
  t.deepEqual(await third.exit, { code: 0, signal: null });
  t.false(processExists(third.child.pid!));
});

test('--listen unix:PATH never replaces a file that is not a socket', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-trust-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'precious.txt');
  writeFileSync(file, 'keep me');
  const ex = listenUnix(file);
  t.deepEqual(await ex.exit, { code: 2, signal: null });
  t.regex(ex.stderr(), /precious\.txt exists and is not a socket.*\[ERR_LISTEN_FAILED\]/);
  t.is(statSync(file).size, 7);
});

// --- shm names nobody can take first (item 8) ------------------------------------------------

test('Reserve takes another name when its name was taken first, and never touches the squatter’s object', async (t) => {
  // The random part of the names is fixed for this executor, so that the test can take the
  // names first, as someone who guessed them would.
  const random = '0123456789abcdef';
  const child = spawn(EXECUTOR, ['--fds', '3,4'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, JITMEM_EXECUTOR_SHM_RANDOM: random },
  });
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const pid = child.pid!;
  const nameOf = (counter: number): string => `/jitmem_${pid}_${counter}_${random}`;
  // The first two names, and later the eight after the third: made before the executor could.
  const taken = [nameOf(1), nameOf(2)];
  for (const name of taken) native.closeFd(native.shmCreate(name, 4096));
  const all = [...taken];
  t.teardown(() => all.forEach((n) => existsSync(`/dev/shm${n}`) && native.shmUnlink(n)));
  const session = await ExecutorSession.over(child.stdio[4] as never, child.stdio[3] as never);
  const reserve = async (): Promise<
    { ok: true; value: { base: number; name: string } } | { ok: false; error: string }
  > =>
    new SpsReader(
      await session.call(Sym.shmReserve, new SpsWriter().addr(session.symbol(Sym.shmInstance)).u64(4096)),
    ).expected((r) => ({ base: r.addr(), name: r.string() }));
  const first = await reserve();
  t.true(first.ok);
  if (!first.ok) return;
  t.is(first.value.name, nameOf(3));
  t.true(
    taken.every((n) => existsSync(`/dev/shm${n}`)),
    'the squatter’s objects are untouched',
  );
  // Every name it tries is taken: it gives up after eight, with a typed error.
  for (let counter = 4; counter < 12; counter++) {
    native.closeFd(native.shmCreate(nameOf(counter), 4096));
    all.push(nameOf(counter));
  }
  const second = await reserve();
  t.false(second.ok);
  if (!second.ok) t.regex(second.error, /8 names tried.*\[ERR_SHM_CREATE_FAILED\]$/);
  await session.close();
  t.is(await exited, 0);
  t.false(existsSync(`/dev/shm${nameOf(3)}`), 'its own name is gone with the session');
  t.true(
    all.every((n) => existsSync(`/dev/shm${n}`)),
    'the squatter’s objects are untouched',
  );
});
