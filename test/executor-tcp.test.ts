import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import { Channel } from '../protocol/channel.js';
import { Sym, decodeSetup } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { INC_CODE, incGraph } from './helpers/graphs.js';
import { CLI, EXECUTOR } from './helpers/executor-process.js';
import { sha256Hex } from './helpers/mapper-targets.js';
import { R, X } from '../graph/alloc-group.js';

/** `jitmem executor --listen`: the RPC-copy mapper over TCP, and what shared memory says when it cannot work. */

interface Listening {
  child: ChildProcess;
  port: number;
  /** The one-time token the executor printed (none with --no-auth). */
  token: string | undefined;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

function listenExecutor(command: string, args: string[]): Promise<Listening> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on 127\.0\.0\.1:(\d+)\n(?:token ([0-9a-f]{64})\n)?/.exec(out);
      if (m && (m[2] !== undefined || args.includes('--no-auth')))
        resolve({ child, port: Number(m[1]), token: m[2], exit, stderr: () => err });
    });
    void exit.then(() => reject(new Error(`executor exited before listening: ${out} ${err}`)));
  });
}

test('the RPC-copy mapper runs code and lands data in `jitmem executor --listen 127.0.0.1:0`', async (t) => {
  const ex = await listenExecutor(EXECUTOR, ['--listen', '127.0.0.1:0']);
  t.teardown(() => ex.child.kill('SIGKILL'));
  const session = await ExecutorSession.connect('127.0.0.1', ex.port, { token: ex.token });
  const mapper = new RpcCopyMapper(session);
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  for (let i = 0; i < 100; i++) {
    const alloc = await manager.allocate(incGraph());
    alloc.writeContent();
    const fin = await alloc.finalize();
    t.is(await session.runAsInt(fin.sectionAddress('.text'), i), i + 1);
    const [code, data] = await session.checksum([
      { start: fin.sectionAddress('.text'), end: fin.sectionAddress('.text') + 4 },
      { start: fin.sectionAddress('.data'), end: fin.sectionAddress('.data') + 24 },
    ]);
    t.is(Buffer.from(code!).toString('hex'), sha256Hex(INC_CODE));
    t.is(Buffer.from(data!).toString('hex'), sha256Hex(new Uint8Array(24).fill(0xab)));
    await manager.deallocate([fin]);
  }
  await manager.close();
  await mapper.close();
  await session.close();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('--listen refuses a non-loopback host unless --allow-remote is given', async (t) => {
  const r = spawnSync(process.execPath, [CLI, 'executor', '--listen', '0.0.0.0:0'], { encoding: 'utf8' });
  t.is(r.status, 2);
  t.regex(r.stderr, /--listen 0\.0\.0\.0: not a loopback address.*--allow-remote \[ERR_REMOTE_NOT_ALLOWED\]/);
  const bad = spawnSync(process.execPath, [CLI, 'executor', '--listen', 'nohost'], { encoding: 'utf8' });
  t.is(bad.status, 2);
  t.regex(bad.stderr, /--listen expects HOST:PORT .* got "nohost" \[ERR_INVALID_ENDPOINT\]/);
});

test('a shared-memory mapper whose executor is on "another host" refuses, says why, and suggests RPC copy', async (t) => {
  // An executor in a mount namespace of its own, with a /dev/shm of its own: its shm objects
  // exist, but not on this side, exactly as for an executor on another machine.
  const probe = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs tmpfs /dev/shm'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.log(
      `SKIPPED: cannot give an executor a /dev/shm of its own here (unshare -m needs root): ${probe.stderr.trim()}`,
    );
    t.pass();
    return;
  }
  const ex = await listenExecutor('unshare', [
    '-m',
    'sh',
    '-c',
    `mount -t tmpfs tmpfs /dev/shm && exec "${EXECUTOR}" --listen 127.0.0.1:0`,
  ]);
  t.teardown(() => ex.child.kill('SIGKILL'));
  const session = await ExecutorSession.connect('127.0.0.1', ex.port, { token: ex.token });
  const mapper = new SharedMemoryMapper(session);
  const err = await t.throwsAsync(mapper.reserve(1 << 20), { code: 'ERR_SHM_UNREACHABLE' });
  t.regex(err!.message, /shared-memory object "\/jitmem_\d+_1_[0-9a-f]{16}" cannot be opened here \(ENOENT\)/);
  t.regex(err!.message, /another machine/);
  t.regex(err!.message, /Use the RPC-copy mapper \(RpcCopyMapper\) instead/);
  // The session is still good, and RPC copy works over it.
  const rpc = new RpcCopyMapper(session);
  const { start } = await rpc.reserve(4096);
  rpc.prepare(start, 4).set(INC_CODE);
  const key = await rpc.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } }],
    actions: [],
  });
  t.is(await session.runAsInt(key, 6), 7);
  await rpc.close();
  await session.close();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('`jitmem executor --connect HOST:PORT` dials a controller that listens', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const child = spawn(EXECUTOR, ['--connect', `127.0.0.1:${port}`], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const socket = await accepted;
  const session = await ExecutorSession.over(socket, socket, {}, socket);
  const mapper = new RpcCopyMapper(session);
  const { start } = await mapper.reserve(4096);
  mapper.prepare(start, 4).set(INC_CODE);
  const key = await mapper.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } }],
    actions: [],
  });
  t.is(await session.runAsInt(key, 99), 100);
  await mapper.close();
  await session.close();
  t.deepEqual(await exit, { code: 0, signal: null });
});

const MAIN_RETURNS_7 = Uint8Array.of(0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3); // mov eax, 7; ret

test('over TCP a session that uses only LLVM services is closed by the executor once idle after main returned (docs/wire-protocol.md §3.2)', async (t) => {
  // As llvm-jitlink drives it: no token.
  const ex = await listenExecutor(EXECUTOR, ['--listen', '127.0.0.1:0', '--no-auth']);
  t.teardown(() => ex.child.kill('SIGKILL'));
  const socket = net.connect(ex.port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  t.teardown(() => socket.destroy());
  // What llvm-jitlink 22 does, at the protocol level: reserve, initialize, run main, release, then wait.
  const channel = new Channel(socket, socket, { role: 'controller' });
  const sym = decodeSetup(await channel.setup).symbols;
  const inst = sym.get(Sym.memMgrInstance)!;
  const base = expectAddr(
    await channel.call(sym.get(Sym.memMgrReserve)!, new SpsWriter().addr(inst).u64(4096)),
    'reserve',
  );
  const fr = new SpsWriter()
    .addr(inst)
    .finalizeRequest({ segments: [{ group: R | X, addr: base, size: 4096, content: MAIN_RETURNS_7 }], actions: [] });
  t.is(expectAddr(await channel.call(sym.get(Sym.memMgrInitialize)!, fr), 'initialize'), base);
  const status = await channel.call(sym.get(Sym.runAsMain)!, new SpsWriter().addr(base).u64(0));
  t.is(new DataView(status.buffer, status.byteOffset).getBigInt64(0, true), 7n);
  expectSuccess(
    await channel.call(
      sym.get(Sym.memMgrRelease)!,
      new SpsWriter().addr(inst).sequence([base], (w, b) => w.addr(b)),
    ),
    'release',
  );
  // We never close: the executor must.
  t.deepEqual(await channel.closed, { reason: 'eof' });
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('over TCP a jitmem controller is not cut off when it pauses after main returned', async (t) => {
  const ex = await listenExecutor(EXECUTOR, ['--listen', '127.0.0.1:0']);
  t.teardown(() => ex.child.kill('SIGKILL'));
  const session = await ExecutorSession.connect('127.0.0.1', ex.port, { token: ex.token });
  const mapper = new RpcCopyMapper(session);
  const { start } = await mapper.reserve(4096);
  mapper.prepare(start, MAIN_RETURNS_7.length).set(MAIN_RETURNS_7);
  const key = await mapper.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 6, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } }],
    actions: [],
  });
  t.is(await session.runAsMain(key, []), 7);
  await mapper.deinitialize([key]);
  await new Promise((r) => setTimeout(r, 500));
  t.true(session.isOpen);
  await session.noop();
  await mapper.close();
  await session.close();
  t.deepEqual(await ex.exit, { code: 0, signal: null });
});

test('`--listen unix:PATH` serves over a Unix socket and removes the socket file when done', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-unix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'executor.sock');
  const child = spawn(EXECUTOR, ['--listen', `unix:${socketPath}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  const line = await new Promise<string>((resolve) =>
    child.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(s)),
  );
  t.is(line, `listening on unix:${socketPath}\n`);
  const session = await ExecutorSession.connectUnix(socketPath);
  const mapper = new RpcCopyMapper(session);
  const { start } = await mapper.reserve(4096);
  mapper.prepare(start, 4).set(INC_CODE);
  const key = await mapper.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 4, zeroFillSize: 0, group: { prot: R | X, lifetime: 'standard' } }],
    actions: [],
  });
  t.is(await session.runAsInt(key, 1), 2);
  t.false(existsSync(socketPath), 'one session per executor: it stops listening once a controller is connected');
  await mapper.close();
  await session.close();
  t.deepEqual(await exit, { code: 0, signal: null });
});
