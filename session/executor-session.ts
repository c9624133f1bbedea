import { readdirSync } from 'node:fs';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as native from '../native/index.js';
import { SpawnedProcess } from '../native/spawned-process.js';
import { JitmemError } from '../core/errors.js';
import { PROCESS_COST_COUNTER_NAMES, processCostCounters, type ProcessCostCounters } from '../core/cost-counters.js';
import { Channel, type CallHandler, type ChannelEnd } from '../protocol/channel.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { remoteError } from '../protocol/remote-error.js';
import { AUTH_MAGIC, answerChallenge, checkToken, readExactly } from '../protocol/auth.js';
import { JitmemSym, Sym, decodeSetup, type SetupInfo } from '../protocol/setup.js';
import { SpsReader, SpsWriter, decode, type WireAddrRange } from '../protocol/sps.js';
import { DEFAULT_LLVM_EXECUTOR } from './llvm-executor-path.js';

/**
 * The controller's end of one executor (LLVM's ExecutorProcessControl): spawns `jitmem-executor` (or LLVM's
 * llvm-jitlink-executor) as a child joined by two file descriptors, or connects over TCP;
 * reads Setup; keeps the bootstrap symbol table; makes calls by symbol name. When the executor
 * dies, every pending and later call rejects with ERR_EXECUTOR_LOST.
 */

export interface SpawnOptions {
  /** 'jitmem' (default) runs the native `jitmem-executor`; 'llvm' runs llvm-jitlink-executor. */
  readonly kind?: 'jitmem' | 'llvm';
  /** The llvm-jitlink-executor binary (kind 'llvm'). */
  readonly llvmExecutor?: string;
  /** Extra arguments for the executor. */
  readonly args?: readonly string[];
  readonly maxFrameSize?: number;
  /** Where the child's stdout and stderr go: collected (default) or this process's own. */
  readonly stdio?: 'collect' | 'inherit';
  /** The child's stdin: none (default) or this process's own (a program run in it reads the user's input). */
  readonly stdin?: 'ignore' | 'inherit';
}

export interface ConnectOptions {
  readonly maxFrameSize?: number;
  /**
   * The token `jitmem executor --listen HOST:PORT` printed: the answer to its challenge. Without
   * one, an executor that asks for it is an ERR_AUTH_REQUIRED error.
   */
  readonly token?: string;
}

/** How long the controller waits for the executor's first bytes (its challenge or its Setup). */
const FIRST_BYTES_TIMEOUT_MS = 60_000;

export { DEFAULT_LLVM_EXECUTOR };

/**
 * Content travels to the executor in bursts of megabytes (RPC copy's finalize requests). With
 * the default ~200 KiB socket buffer a burst needs dozens of writer/reader wake-ups, each a
 * cross-CPU round trip when the two processes run on different CPUs; 8 MiB takes a whole
 * CPython load in one go.
 */
const SEND_BUFFER_BYTES = 8 << 20;

function enlargeSendBuffer(stream: Writable): void {
  // libuv keeps the descriptor on the stream's handle; a stream without one (not a socket)
  // keeps the kernel's default buffer, which is only slower.
  const fd = (stream as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return;
  try {
    native.setSendBuffer(fd, SEND_BUFFER_BYTES);
  } catch {
    // Not a socket, or the kernel refused: the default buffer works, just with more wake-ups.
  }
}

/** How much of the child's output is kept for messages and tests. */
const OUTPUT_LIMIT = 1 << 20;

export class ExecutorSession {
  readonly setupInfo: SetupInfo;
  private exitStatus: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  private stdoutText = '';
  private stderrText = '';
  private closing = false;

  private constructor(
    private readonly channel: Channel,
    setupInfo: SetupInfo,
    /** The spawned executor, when this session started it. */
    readonly child: SpawnedProcess | null,
    private readonly socket: net.Socket | null,
    /** Handlers for calls the executor makes to us (JIT dispatch), by tag. */
    private readonly handlers: Map<number, CallHandler>,
  ) {
    this.setupInfo = setupInfo;
    if (child) {
      // After the exit and after the child's output has been read to the end, so whoever awaits
      // the exit status also sees all of stdout and stderr.
      this.exitStatus = child.closed.then(({ exitStatus: code, signal }) => ({ code, signal }));
      // If the executor died without a chance to clean up (SIGKILL), its shm names are ours to remove.
      void this.exitStatus.then(({ signal }) => {
        if (signal !== null) removeShmNamesOf(child.pid);
      });
    }
  }

  /** Spawns an executor child and waits for its Setup. */
  static async spawn(options: SpawnOptions = {}): Promise<ExecutorSession> {
    const kind = options.kind ?? 'jitmem';
    const [command, args] =
      kind === 'llvm'
        ? [options.llvmExecutor ?? DEFAULT_LLVM_EXECUTOR, ['filedescs=3,4', ...(options.args ?? [])]]
        : [native.executorBinary(), ['--fds', '3,4', ...(options.args ?? [])]];
    const collect = (options.stdio ?? 'collect') === 'collect';
    let child: SpawnedProcess;
    try {
      // posix_spawn, not child_process: a fork() of this process costs more the more it holds
      // (9 ms from a controller of 200 MB against 1.7 ms; native/src/spawn.cc).
      child = new SpawnedProcess(
        command,
        args,
        collect ? [1, 2, 3, 4] : [3, 4],
        [...(options.stdin === 'inherit' ? [0] : []), ...(collect ? [] : [1, 2])],
      );
    } catch (err) {
      throw new JitmemError(
        'ERR_EXECUTOR_SPAWN_FAILED',
        `cannot start the executor ${command}: ${(err as Error).message}`,
        { command },
        { cause: err },
      );
    }
    const toChild = child.pipe(3);
    const fromChild = child.pipe(4);
    enlargeSendBuffer(toChild);
    const handlers = new Map<number, CallHandler>();
    const channel = new Channel(fromChild, toChild, {
      role: 'controller',
      maxFrameSize: options.maxFrameSize,
      lostCode: 'ERR_EXECUTOR_LOST',
      peerName: 'executor',
      handler: dispatchTo(handlers),
    });
    let session: ExecutorSession | undefined;
    const out: string[] = [];
    const err: string[] = [];
    if (collect) {
      child
        .pipe(1)
        .setEncoding('utf8')
        .on('data', (s: string) => (session ? (session.stdoutText = keep(session.stdoutText + s)) : out.push(s)));
      child
        .pipe(2)
        .setEncoding('utf8')
        .on('data', (s: string) => (session ? (session.stderrText = keep(session.stderrText + s)) : err.push(s)));
    }
    // A child that dies takes its pipes with it, but say so at once rather than wait for EOF.
    void child.exited.then(
      () => setImmediate(() => channel.close()),
      () => channel.close(),
    );
    try {
      const payload = await channel.setup;
      session = new ExecutorSession(channel, decodeSetup(payload), child, null, handlers);
      session.stdoutText = out.join('');
      session.stderrText = err.join('');
      return session;
    } catch (e) {
      channel.close();
      child.kill('SIGKILL');
      // Its last words on stderr say why; they may still be on their way.
      await Promise.race([child.closed.catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
      const detail = err.join('').trim();
      if (e instanceof JitmemError && e.code === 'ERR_EXECUTOR_LOST') {
        throw new JitmemError(
          'ERR_EXECUTOR_LOST',
          `the executor ${command} exited before sending Setup${detail ? `: ${detail}` : ''}`,
          { command },
        );
      }
      throw e;
    }
  }

  /** Connects to an executor listening on host:port (e.g. `jitmem executor --listen`). */
  static async connect(host: string, port: number, options: ConnectOptions = {}): Promise<ExecutorSession> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('connect', () => resolve(s));
      s.once('error', (err) =>
        reject(
          new JitmemError(
            'ERR_CONNECT_FAILED',
            `cannot connect to the executor at ${host}:${port}: ${err.message}`,
            { host, port },
            { cause: err },
          ),
        ),
      );
    });
    socket.setNoDelay(true);
    try {
      if (options.token !== undefined) {
        await answerChallenge(socket, checkToken(options.token, 'ExecutorSession.connect'));
      } else {
        // Setup or a challenge: both start with 8 bytes that say which.
        const first = await readExactly(
          socket,
          AUTH_MAGIC.length,
          FIRST_BYTES_TIMEOUT_MS,
          `the first bytes of the executor at ${host}:${port}`,
        );
        socket.unshift(first);
        if (first.equals(AUTH_MAGIC)) {
          throw new JitmemError(
            'ERR_AUTH_REQUIRED',
            `the executor at ${host}:${port} asks for its token: pass the 'token' line 'jitmem executor --listen' printed as { token } (or start it with --no-auth)`,
            { host, port },
          );
        }
      }
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return ExecutorSession.over(socket, socket, options, socket);
  }

  /** Connects to an executor listening on a Unix socket (`jitmem executor --listen unix:PATH`). */
  static async connectUnix(path: string, options: ConnectOptions = {}): Promise<ExecutorSession> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ path });
      s.once('connect', () => resolve(s));
      s.once('error', (err) =>
        reject(
          new JitmemError(
            'ERR_CONNECT_FAILED',
            `cannot connect to the executor at unix:${path}: ${err.message}`,
            { path },
            { cause: err },
          ),
        ),
      );
    });
    // Whoever listens there gets this process's calls and code: only an executor of this user.
    // The kernel recorded its credentials when it listened (SO_PEERCRED).
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    let uid: number | undefined;
    try {
      uid = typeof fd === 'number' && fd >= 0 ? native.peerCredentials(fd).uid : undefined;
    } catch {
      uid = undefined;
    }
    if (uid !== process.getuid!()) {
      socket.destroy();
      throw new JitmemError(
        'ERR_EXECUTOR_NOT_TRUSTED',
        uid === undefined
          ? `cannot tell who listens on unix:${path} (no peer credentials); refusing to send it any call`
          : `the process listening on unix:${path} runs as uid ${uid}, not as this user (uid ${process.getuid!()}): it is not this user's executor, and it gets no call`,
        { path, uid },
      );
    }
    return ExecutorSession.over(socket, socket, options, socket);
  }

  /** A session over streams someone else opened (the executor speaks first). */
  static async over(
    input: Readable,
    output: Writable,
    options: ConnectOptions = {},
    socket: net.Socket | null = null,
  ): Promise<ExecutorSession> {
    const handlers = new Map<number, CallHandler>();
    const channel = new Channel(input, output, {
      role: 'controller',
      maxFrameSize: options.maxFrameSize,
      lostCode: 'ERR_EXECUTOR_LOST',
      peerName: 'executor',
      handler: dispatchTo(handlers),
    });
    try {
      const session = new ExecutorSession(channel, decodeSetup(await channel.setup), null, socket, handlers);
      // Over TCP a jitmem executor closes sessions that look like llvm-jitlink 22's once they go
      // idle (docs/wire-protocol.md §3.2); one call to a jitmem service tells it we close our
      // sessions ourselves.
      if (session.isJitmem) await session.noop();
      return session;
    } catch (e) {
      channel.close();
      socket?.destroy();
      throw e;
    }
  }

  get pageSize(): number {
    return this.setupInfo.pageSize;
  }

  get targetTriple(): string {
    return this.setupInfo.targetTriple;
  }

  get symbols(): ReadonlyMap<string, number> {
    return this.setupInfo.symbols;
  }

  /** The child's pid, when this session spawned it. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** What the child wrote to stdout so far (collected mode). */
  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get isOpen(): boolean {
    return this.channel.isOpen;
  }

  /** Resolves when the session is over, with why. */
  get closed(): Promise<ChannelEnd> {
    return this.channel.closed;
  }

  /** True when the executor is a jitmem executor (it advertises jitmem's own services). */
  get isJitmem(): boolean {
    return this.setupInfo.symbols.has(JitmemSym.checksum);
  }

  /** Calls made and bytes moved over this session so far (headers included). */
  counters(): { calls: number; bytesSent: number; bytesReceived: number } {
    const c = this.channel.counters();
    return { calls: c.callsMade, bytesSent: c.bytesSent, bytesReceived: c.bytesReceived };
  }

  hasSymbol(name: string): boolean {
    return this.setupInfo.symbols.has(name);
  }

  /** The executor address of a bootstrap symbol. */
  symbol(name: string): number {
    const addr = this.setupInfo.symbols.get(name);
    if (addr === undefined) {
      throw new JitmemError(
        'ERR_MISSING_SYMBOL',
        `the executor does not provide ${JSON.stringify(name)} (it advertised ${this.setupInfo.symbols.size} bootstrap symbols)`,
        {
          name,
        },
      );
    }
    return addr;
  }

  /**
   * Answers the executor's calls to `tag` (JIT'd code calling back into the controller,
   * docs/wire-protocol.md §5.7). A call to a tag with no handler ends the session, as the protocol
   * has no other way to refuse it.
   */
  handle(tag: number, handler: CallHandler): void {
    this.handlers.set(tag, handler);
  }

  /** Calls the wrapper function `name` with SPS-encoded arguments; resolves with the result bytes. */
  call(name: string, args: Uint8Array | SpsWriter): Promise<Uint8Array> {
    let tag: number;
    try {
      tag = this.symbol(name);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.channel.call(tag, args);
  }

  /** Calls a wrapper function by executor address. */
  callAddress(tag: number, args: Uint8Array | SpsWriter): Promise<Uint8Array> {
    return this.channel.call(tag, args);
  }

  /** Calls `fn` in the executor as int32_t fn(int32_t). */
  async runAsInt(fn: number, arg: number): Promise<number> {
    const out = await this.call(Sym.runAsInt, writer().addr(fn).i32(arg));
    return decodeResult(out, 'run_as_int_function', (r) => r.i32());
  }

  /** Calls `fn` in the executor as int32_t fn(void). */
  async runAsVoid(fn: number): Promise<number> {
    const out = await this.call(Sym.runAsVoid, writer().addr(fn));
    return decodeResult(out, 'run_as_void_function', (r) => r.i32());
  }

  /** Calls `fn` in the executor as main(argc, argv) with exactly `args` as argv. */
  async runAsMain(fn: number, args: readonly string[] = []): Promise<number> {
    const out = await this.call(
      Sym.runAsMain,
      writer()
        .addr(fn)
        .sequence(args, (w, s) => w.string(s)),
    );
    return Number(decodeResult(out, 'run_as_main', (r) => r.i64Big()));
  }

  /** sha256 of each executor range, computed in the executor (jitmem executors only). */
  async checksum(ranges: readonly WireAddrRange[]): Promise<Uint8Array[]> {
    const out = await this.call(
      JitmemSym.checksum,
      writer().sequence(ranges, (w, r) => w.addrRange(r)),
    );
    const result = decodeResult(out, 'checksum', (r) => r.expected((r) => r.sequence(8, (r) => r.bytesView().slice())));
    if (!result.ok) throw remoteError('checksum', result.error);
    return result.value;
  }

  /** Copies executor memory out (read_buffers; any executor). */
  async readBuffers(ranges: readonly WireAddrRange[]): Promise<Uint8Array[]> {
    const out = await this.call(
      Sym.readBuffers,
      writer().sequence(ranges, (w, r) => w.addrRange(r)),
    );
    return decodeResult(out, 'read_buffers', (r) => r.sequence(8, (r) => r.bytesView().slice()));
  }

  /** Writes bytes into executor memory (write_buffers; any executor). */
  async writeBuffers(writes: ReadonlyArray<{ addr: number; bytes: Uint8Array }>): Promise<void> {
    const out = await this.call(
      Sym.writeBuffers,
      writer().sequence(writes, (w, x) => w.addr(x.addr).bytes(x.bytes)),
    );
    if (out.length !== 0)
      throw new JitmemError(
        'ERR_SPS_MALFORMED',
        `write_buffers returned ${out.length} bytes where an empty result was expected`,
      );
  }

  /** Resolves symbols in the executor's own process (open "" + resolve), 0 for those not found. */
  async lookup(names: readonly string[]): Promise<number[]> {
    const opened = decodeResult(
      await this.call(Sym.dylibOpen, writer().addr(this.symbol(Sym.dylibInstance)).string('').u64(0)),
      'open',
      (r) => r.expected((r) => r.addr()),
    );
    if (!opened.ok) throw remoteError('open', opened.error);
    const resolved = decodeResult(
      await this.call(
        Sym.dylibResolve,
        writer()
          .addr(opened.value)
          .lookupSet(names.map((name) => ({ name, required: false }))),
      ),
      'resolve',
      (r) => r.expected((r) => r.sequence(1, (r) => r.optional((r) => r.symbolDef()))),
    );
    if (!resolved.ok) throw remoteError('resolve', resolved.error);
    return resolved.value.map((d) => d?.addr ?? 0);
  }

  /** A no-op round trip (jitmem executors only): for latency measurements. */
  async noop(): Promise<void> {
    await this.call(JitmemSym.noop, new Uint8Array(0));
  }

  /** Whether the executor reports its cost counters (a jitmem executor does; LLVM's does not). */
  get hasCostCounters(): boolean {
    return this.setupInfo.symbols.has(JitmemSym.costCounters);
  }

  /**
   * The executor's cost counters (cumulative, its own process): calls handled, wire bytes, bytes
   * copied, mmap/mprotect/munmap, shm objects, I-cache flushes, minor faults, voluntary switches,
   * nanoseconds in handlers. The call itself is counted too, on both sides.
   */
  async executorCostCounters(): Promise<ProcessCostCounters> {
    const out = await this.call(JitmemSym.costCounters, new Uint8Array(0));
    const values = decode(out, 'cost_counters', (r) => r.sequence(8, (r) => r.u64()));
    // handlerNs, the last, came after the others: an executor without it reports 0 there.
    if (values.length < PROCESS_COST_COUNTER_NAMES.length - 1) {
      throw new JitmemError(
        'ERR_SPS_MALFORMED',
        `the executor sent ${values.length} cost counters; expected ${PROCESS_COST_COUNTER_NAMES.length}`,
        { count: values.length },
      );
    }
    const counters = {} as ProcessCostCounters;
    PROCESS_COST_COUNTER_NAMES.forEach((name, i) => (counters[name] = values[i] ?? 0));
    return counters;
  }

  /** This (the controller's) process's cost counters, with the calls made and bytes of this session's channel. */
  controllerCostCounters(): ProcessCostCounters {
    const c = this.channel.counters();
    return processCostCounters({ roundTrips: c.callsMade, bytesOut: c.bytesSent, bytesIn: c.bytesReceived });
  }

  /**
   * Ends the session: Hangup (or just close, for executors that want that), then waits for a
   * spawned child to exit, killing it if it has not within `timeoutMs`. Never leaves a child.
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closing) {
      await this.exitStatus;
      return;
    }
    this.closing = true;
    this.channel.hangup();
    if (this.socket) {
      const socket = this.socket;
      // The executor closes its end once it has read the Hangup; wait for that, not longer than the timeout.
      await new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        const timer = setTimeout(resolve, timeoutMs);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end();
      });
    }
    if (this.child && this.exitStatus) {
      const child = this.child;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const r = await Promise.race([this.exitStatus, timedOut]);
      clearTimeout(timer);
      if (r === 'timeout') {
        child.kill('SIGKILL');
        await this.exitStatus;
      }
    }
    this.socket?.destroy();
  }

  /** Kills a spawned executor outright (tests, and callers that gave up on it). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }

  /** The child's exit status, once it has exited (spawned sessions only). */
  async exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    return this.exitStatus ? await this.exitStatus : null;
  }
}

function dispatchTo(handlers: ReadonlyMap<number, CallHandler>): CallHandler {
  return (tag, payload, seq) => handlers.get(tag)?.(tag, payload, seq);
}

function keep(s: string): string {
  return s.length > OUTPUT_LIMIT ? s.slice(s.length - OUTPUT_LIMIT) : s;
}

function writer(): SpsWriter {
  return new SpsWriter(64, HEADER_SIZE);
}

/**
 * Decodes a result; an empty result is LLVM's out-of-band error, whose message the wire drops
 * (docs/wire-protocol.md §2.1).
 */
export function decodeResult<T>(bytes: Uint8Array, what: string, read: (r: SpsReader) => T): T {
  if (bytes.length === 0) {
    throw new JitmemError(
      'ERR_REMOTE_CALL_FAILED',
      `${what} failed in the executor with an out-of-band error (an empty result; the executor's message is not sent on the wire)`,
      {
        what,
      },
    );
  }
  return decode(bytes, `result of ${what}`, read);
}

const TWO_32 = 2 ** 32;

/** Decodes an SPSExpected<addr> result, throwing the executor's error. */
export function expectAddr(bytes: Uint8Array, what: string): number {
  // The answer of every initialize and reserve: 01 then a u64 below 2^53, read in place. A
  // reader (a DataView, closures, a result object) costs more than the rest of the call's
  // decoding; anything else, failures included, takes the checked path.
  if (bytes.length === 9 && bytes[0] === 1 && bytes[8] === 0 && bytes[7]! < 0x20) {
    const lo = (bytes[1]! | (bytes[2]! << 8) | (bytes[3]! << 16) | (bytes[4]! << 24)) >>> 0;
    const hi = bytes[5]! | (bytes[6]! << 8) | (bytes[7]! << 16);
    return hi * TWO_32 + lo;
  }
  const r = decodeResult(bytes, what, (r) => r.expected((r) => r.addr()));
  if (!r.ok) throw remoteError(what, r.error);
  return r.value;
}

/** Decodes an SPSError result, throwing the executor's error. */
export function expectSuccess(bytes: Uint8Array, what: string): void {
  // Success is the single byte 00 (every deinitialize's answer); anything else is decoded.
  if (bytes.length === 1 && bytes[0] === 0) return;
  const message = decodeResult(bytes, what, (r) => r.error());
  if (message !== null) throw remoteError(what, message);
}

/** Removes shm objects a killed jitmem executor with this pid left behind. */
function removeShmNamesOf(pid: number): void {
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch {
    return;
  }
  const prefix = `jitmem_${pid}_`;
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    try {
      native.shmUnlink('/' + n);
    } catch {
      // Already gone.
    }
  }
}
