import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import * as native from '../native/index.js';
import { JitmemError, hex } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import { PROCESS_COST_COUNTER_NAMES, processCostCounters } from '../core/cost-counters.js';
import { Channel, type CallResult, type ChannelEnd } from '../protocol/channel.js';
import { DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE } from '../protocol/frame.js';
import { JitmemSym, Sym, encodeSetup, processTriple } from '../protocol/setup.js';
import { SpsWriter, SymbolFlags, decode, decodeFinalizeRequestPieces, type WireFinalizeRequest } from '../protocol/sps.js';
import { ExecutorActionSite } from './actions.js';
import { EHFrameRegistry } from './eh-frame-registry.js';
import { AddressSpace, PROT_R, PROT_W, PROT_X, type Reservation } from './address-space.js';
import { MemoryManagerService, SharedMemoryService, releaseReservation, unlinkName } from './memory-services.js';
import { RemoteError } from './remote-error.js';
import { executorShmName } from '../protocol/shm-names.js';
import { DYLIB_CLOSE_SYMBOL, PROGRAM_RUNTIME_SYMBOLS, RESERVE_WINDOW_SYMBOL, RUN_PROGRAM_SYMBOL, decodeRunProgramRequest, encodeRunProgramResult } from '../protocol/run-program.js';

/**
 * The executor: owns target memory and serves one controller over one channel (DESIGN §5).
 * Service "addresses" are tokens inside a PROT_NONE page of our own, so they look like and are
 * unique addresses but can never run; alloc-action symbols and the dispatch function are real
 * C functions of the addon, because those are called by address.
 *
 * Run-as calls execute JIT'd code on a pool thread, so the executor keeps answering while the
 * code runs (LLVM runs every call on a thread of its own) and the code can call back into the
 * controller through dispatch_fn. Meanwhile nothing that could pull memory from under the code
 * (deinitialize, release, patchCode) is done: those calls are refused with ERR_CODE_RUNNING.
 */

export interface ExecutorOptions {
  /** Refuse frames above this size (bytes). */
  readonly maxFrameSize?: number;
  /**
   * Close the connection once the session has gone idle after run_as_main returned and a
   * deallocation was answered: llvm-jitlink 22 over TCP never closes its end (spec §3.3).
   */
  readonly closeWhenIdle?: boolean;
  /** How long "idle" is, in ms. */
  readonly idleMs?: number;
  /**
   * Stop reading calls while more than this many bytes of results wait unsent (a controller
   * that does not read them); default DEFAULT_MAX_UNSENT_BYTES.
   */
  readonly maxUnsentBytes?: number;
  /** Prefix of shared-memory names (default "/jitmem_"); the pid, a counter and a random part follow. */
  readonly shmPrefix?: string;
}

type Handler = (args: Uint8Array) => CallResult | Promise<CallResult>;

/** Results a controller may leave unread before the executor stops reading its calls. */
export const DEFAULT_MAX_UNSENT_BYTES = 64 * 1024 * 1024;

/** Hashing is synchronous: this bounds how long one checksum call can hold the executor. */
const MAX_CHECKSUM_BYTES = 1 << 30;

/** Payloads from this size on that arrive in several chunks are decoded from the chunks (no assembly copy). */
const GATHER_FROM = 64 * 1024;

export class Executor {
  readonly space: AddressSpace;
  private readonly actions: ExecutorActionSite;
  /** EH frames registered with this process's unwinder on the controller's behalf. */
  readonly frames: EHFrameRegistry;
  private readonly memoryManager: MemoryManagerService;
  private readonly sharedMemory: SharedMemoryService;
  private readonly tokenPage: number;
  private readonly tokens = new Map<string, number>();
  private readonly handlers = new Map<number, Handler>();
  /** Handlers that take a large payload in the pieces it arrived in (see GATHER_FROM). */
  private readonly gatheredHandlers = new Map<number, (pieces: readonly Uint8Array[]) => CallResult | Promise<CallResult>>();
  private readonly dylibHandles = new Set<number>();
  /** Addresses resolve handed out: run-as may call them even though they are not in our memory. */
  private readonly resolvedFunctions = new Set<number>();
  private channel: Channel | null = null;
  private shutDown = false;
  private mainReturned = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private jitmemController = false;
  private running = 0;
  private readonly jitmemTags = new Set<number>();

  private get maxFrameSize(): number {
    return this.options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  }

  constructor(private readonly options: ExecutorOptions = {}) {
    this.space = new AddressSpace(native.pageSize());
    this.frames = new EHFrameRegistry(this.space);
    this.actions = new ExecutorActionSite(this.space, this.frames);
    this.memoryManager = new MemoryManagerService(this.space, this.actions);
    this.sharedMemory = new SharedMemoryService(this.space, this.actions, (counter) => executorShmName(process.pid, counter, options.shmPrefix));
    this.tokenPage = native.reserve(this.space.pageSize, 0);
    this.registerServices();
  }

  /** The bootstrap symbol table sent in Setup; `dispatchFn` is where JIT'd code calls the controller. */
  symbols(dispatchFn: number): Map<string, number> {
    const acts = native.actionAddresses();
    const out = new Map(this.tokens);
    out.set(Sym.registerEHFrame, acts.registerEHFrame);
    out.set(Sym.deregisterEHFrame, acts.deregisterEHFrame);
    out.set(JitmemSym.traceAction, acts.trace);
    out.set(JitmemSym.failAction, acts.fail);
    out.set(Sym.dispatchFn, dispatchFn);
    const runtime = native.programRuntime();
    for (const [libcName, name] of Object.entries(PROGRAM_RUNTIME_SYMBOLS)) out.set(name, runtime[libcName as keyof typeof runtime]);
    return out;
  }

  /** Serves one session; resolves when it is over and everything has been cleaned up. */
  async serve(input: Readable, output: Writable): Promise<ChannelEnd> {
    const channel = new Channel(input, output, {
      role: 'executor',
      maxFrameSize: this.options.maxFrameSize,
      maxUnsentBytes: this.options.maxUnsentBytes ?? DEFAULT_MAX_UNSENT_BYTES,
      handler: (tag, payload) => this.handle(tag, payload),
      // Large finalize requests (RPC copy's content) are read from the chunks they arrived in
      // straight into target memory, not assembled into one frame first.
      gatherFrom: GATHER_FROM,
      gatheredHandler: (tag, pieces) => (this.gatheredHandlers.has(tag) ? this.handle(tag, pieces) : null),
      peerName: 'controller',
      lostCode: 'ERR_CONTROLLER_LOST',
    });
    this.channel = channel;
    const dispatchFn = native.dispatchStart((tag, args, request) => {
      // JIT'd code (on a pool thread, inside a run-as call) calls its controller and waits.
      channel.call(tag, args.slice()).then(
        (result) => native.dispatchReply(request, result),
        (err: unknown) => native.dispatchReply(request, null, `jit_dispatch to ${hex(tag)} failed: ${(err as Error).message}`),
      );
    });
    channel.sendSetup(encodeSetup({ targetTriple: processTriple(), pageSize: this.space.pageSize, bootstrapMap: new Map(), symbols: this.symbols(dispatchFn) }).finish());
    const end = await channel.closed;
    native.dispatchStop();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.shutdown();
    return end;
  }

  /** Run-as calls whose code is still running on a pool thread. */
  get codeRunning(): number {
    return this.running;
  }

  /** Memory that running code may use must stay as it is until the code returns. */
  private requireNoCodeRunning(what: string): void {
    if (this.running > 0) {
      throw new RemoteError('ERR_CODE_RUNNING', `${what} refused: ${this.running} run-as call(s) are still executing JIT'd code, which may use this memory; retry once they have returned`);
    }
  }

  /** Runs JIT'd code on a pool thread, keeping the memory it may use in place meanwhile. */
  private async runCode<T>(start: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await start();
    } finally {
      this.running--;
    }
  }

  /**
   * Runs every pending dealloc action, unmaps every reservation and unlinks every shm name.
   * Safe to call more than once, and from a signal handler.
   */
  shutdown(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    const all = [...this.space.all()];
    if (this.running > 0) {
      // Code is still running on a pool thread: unmapping its memory would fault it. The
      // process is about to exit, which ends that thread and frees the memory; only names in
      // /dev/shm would outlive it.
      for (const r of all) unlinkName(r);
      return;
    }
    for (let i = all.length - 1; i >= 0; i--) releaseReservation(this.space, this.actions, all[i]!);
    this.frames.releaseAll();
    try {
      native.unmap(this.tokenPage, this.space.pageSize);
    } catch {
      // Exiting anyway.
    }
  }

  private handle(tag: number, payload: Uint8Array | readonly Uint8Array[]): CallResult | Promise<CallResult> {
    const h = Array.isArray(payload) ? this.gatheredHandlers.get(tag) : this.handlers.get(tag);
    if (!h) return undefined;
    // A controller that uses jitmem's own services is a jitmem controller, which closes its
    // sessions itself: the llvm-jitlink workaround must not cut it off between two calls.
    if (this.jitmemTags.has(tag)) this.jitmemController = true;
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    return (h as (args: Uint8Array | readonly Uint8Array[]) => CallResult | Promise<CallResult>)(payload);
  }

  private token(name: string): number {
    let t = this.tokens.get(name);
    if (t === undefined) {
      t = this.tokenPage + 16 * this.tokens.size;
      this.tokens.set(name, t);
    }
    return t;
  }

  private on(name: string, handler: Handler): void {
    this.handlers.set(this.token(name), handler);
  }

  private checkInstance(name: string, addr: number): void {
    if (addr !== this.tokens.get(name)) {
      throw new RemoteError('ERR_UNKNOWN_INSTANCE', `${hex(addr)} is not the address of ${name}`);
    }
  }

  /** After run_as_main has returned and the program's memory was given back, close once idle (spec §3.3). */
  private deallocationAnswered(): void {
    if (!this.options.closeWhenIdle || !this.mainReturned || this.jitmemController) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const ch = this.channel;
      if (ch && ch.isOpen && ch.handlersRunning === 0) ch.close();
    }, this.options.idleMs ?? 100);
  }

  private registerServices(): void {
    for (const name of [Sym.dispatchCtx, Sym.memMgrInstance, Sym.shmInstance, Sym.dylibInstance]) this.token(name);
    this.actions.ignored.add(this.token(Sym.registerJITLoaderGDB));

    // --- SimpleExecutorMemoryManager (spec §5.1) ---
    this.on(Sym.memMgrReserve, (a) => {
      const [inst, size] = decode(a, 'reserve arguments', (r) => [r.addr(), r.u64('the size')] as const);
      return expectedAddr(() => {
        this.checkInstance(Sym.memMgrInstance, inst);
        return this.memoryManager.reserve(size);
      });
    });
    const initialize = ([inst, fr]: readonly [number, WireFinalizeRequest]) =>
      expectedAddr(() => {
        this.checkInstance(Sym.memMgrInstance, inst);
        return this.memoryManager.initialize(fr);
      });
    this.on(Sym.memMgrInitialize, (a) => initialize(decode(a, 'initialize arguments', (r) => [r.addr(), r.finalizeRequest()] as const)));
    this.gatheredHandlers.set(this.token(Sym.memMgrInitialize), (pieces) => initialize(decodeFinalizeRequestPieces(pieces, 'initialize arguments')));

    // --- ExecutorSharedMemoryMapperService (spec §5.2) ---
    this.on(Sym.shmReserve, (a) => {
      const [inst, size] = decode(a, 'Reserve arguments', (r) => [r.addr(), r.u64('the size')] as const);
      return expected(
        () => {
          this.checkInstance(Sym.shmInstance, inst);
          return this.sharedMemory.reserve(size);
        },
        (w, v) => w.addr(v.base).string(v.name),
      );
    });
    this.on(Sym.shmInitialize, (a) => {
      const [inst, base, fr] = decode(a, 'Initialize arguments', (r) => [r.addr(), r.addr(), r.sharedMemoryFinalizeRequest()] as const);
      return expectedAddr(() => {
        this.checkInstance(Sym.shmInstance, inst);
        return this.sharedMemory.initialize(base, fr);
      });
    });

    // Deinitialize and release of both services: a list of addresses; code must not be running.
    const teardowns: Array<[symbol: string, instance: string, op: string, run: (addrs: number[]) => void]> = [
      [Sym.memMgrDeinitialize, Sym.memMgrInstance, 'deinitialize', (keys) => this.memoryManager.deinitialize(keys)],
      [Sym.memMgrRelease, Sym.memMgrInstance, 'release', (bases) => this.memoryManager.release(bases)],
      [Sym.shmDeinitialize, Sym.shmInstance, 'Deinitialize', (keys) => this.sharedMemory.deinitialize(keys)],
      [Sym.shmRelease, Sym.shmInstance, 'Release', (bases) => this.sharedMemory.release(bases)],
    ];
    for (const [symbol, instance, op, run] of teardowns) {
      this.on(symbol, (a) => {
        const [inst, addrs] = decode(a, `${op} arguments`, (r) => [r.addr(), r.sequence(8, (r) => r.addr())] as const);
        const out = spsError(() => {
          this.checkInstance(instance, inst);
          this.requireNoCodeRunning(op);
          run(addrs);
        });
        this.deallocationAnswered();
        return out;
      });
    }

    // --- SimpleExecutorDylibManager (spec §5.3) ---
    this.on(Sym.dylibOpen, (a) => {
      const [inst, path, mode] = decode(a, 'open arguments', (r) => [r.addr(), r.string(), r.u64Big()] as const);
      return expectedAddr(() => {
        this.checkInstance(Sym.dylibInstance, inst);
        if (mode !== 0n) throw new RemoteError('ERR_UNSUPPORTED_MODE', 'open: non-zero mode bits not yet supported');
        let handle: number;
        try {
          handle = native.dlopen(path);
        } catch (err) {
          throw new RemoteError('ERR_DLOPEN', (err as Error).message);
        }
        this.dylibHandles.add(handle);
        return handle;
      });
    });
    this.on(Sym.dylibResolve, (a) => {
      const [handle, set] = decode(a, 'resolve arguments', (r) => [r.addr(), r.lookupSet()] as const);
      return expected(
        () => {
          if (!this.dylibHandles.has(handle)) throw new RemoteError('ERR_UNKNOWN_HANDLE', `${hex(handle)} is not a handle returned by open`);
          return set.map(({ name, required }) => {
            const addr = name === '' ? 0 : native.dlsym(handle, name);
            if (addr !== 0) this.resolvedFunctions.add(addr);
            // LLVM 22's logic, kept for compatibility: a missing required symbol is None.
            if (addr === 0 && (required || name === '')) return null;
            return { addr, flags: SymbolFlags.Exported, targetFlags: 0 };
          });
        },
        (w, defs) => w.sequence(defs, (w, d) => w.optional(d, (w, d) => w.symbolDef(d))),
      );
    });

    // --- Memory access (spec §5.4). These results carry no error, so a bad address ends the session. ---
    const widths: Array<[write: string, read: string, n: number, what: string]> = [
      [Sym.writeUInt8s, Sym.readUInt8s, 1, ''],
      [Sym.writeUInt16s, Sym.readUInt16s, 2, ''],
      [Sym.writeUInt32s, Sym.readUInt32s, 4, ''],
      [Sym.writeUInt64s, Sym.readUInt64s, 8, ''],
      [Sym.writePointers, Sym.readPointers, 8, 'pointer'],
    ];
    for (const [writeName, readName, n, what] of widths) {
      this.on(writeName, (a) => {
        const items = decode(a, `${writeName} arguments`, (r) => r.sequence(8 + n, (r) => [r.addr(), r.raw(n)] as const));
        for (const [addr] of items) this.space.requireAccess(addr, n, PROT_W, what ? `${what} write` : `write of ${n} bytes`);
        for (const [addr, bytes] of items) native.copyIn(addr, bytes);
        return new Uint8Array(0);
      });
      this.on(readName, (a) => {
        const addrs = decode(a, `${readName} arguments`, (r) => r.sequence(8, (r) => r.addr()));
        for (const addr of addrs) this.space.requireAccess(addr, n, PROT_R, what ? `${what} read` : `read of ${n} bytes`);
        const w = new SpsWriter(8 + addrs.length * n, HEADER_SIZE).u64(addrs.length);
        const tmp = new Uint8Array(n);
        for (const addr of addrs) {
          native.copyOut(addr, tmp);
          w.raw(tmp);
        }
        return w;
      });
    }
    this.on(Sym.writeBuffers, (a) => {
      const items = decode(a, 'write_buffers arguments', (r) => r.sequence(16, (r) => [r.addr(), r.bytesView()] as const));
      for (const [addr, bytes] of items) this.space.requireAccess(addr, bytes.length, PROT_W, 'buffer write');
      for (const [addr, bytes] of items) if (bytes.length > 0) native.copyIn(addr, bytes);
      return new Uint8Array(0);
    });
    this.on(Sym.readBuffers, (a) => {
      const ranges = decode(a, 'read_buffers arguments', (r) => r.sequence(16, (r) => r.addrRange()));
      let total = 8;
      for (const { start, end } of ranges) {
        if (end < start) throw new RemoteError('ERR_INVALID_RANGE', `read_buffers: range [${hex(start)}, ${hex(end)}) ends before it starts`);
        this.space.requireAccess(start, end - start, PROT_R, 'buffer read');
        total += 8 + end - start;
      }
      // The answer must fit in one frame; a larger read would only build a frame nobody can take.
      if (total + HEADER_SIZE > this.maxFrameSize) {
        throw new RemoteError('ERR_RANGE_TOO_LARGE', `read_buffers: ${total} bytes of ranges do not fit in one frame (limit ${this.maxFrameSize} bytes); read them in parts`);
      }
      const w = new SpsWriter(total, HEADER_SIZE).u64(ranges.length);
      for (const { start, end } of ranges) {
        w.u64(end - start);
        if (end > start) w.raw(this.snapshot(start, end - start));
      }
      return w;
    });
    this.on(Sym.readStrings, (a) => {
      const addrs = decode(a, 'read_strings arguments', (r) => r.sequence(8, (r) => r.addr()));
      const w = new SpsWriter(64, HEADER_SIZE).u64(addrs.length);
      for (const addr of addrs) w.bytes(this.readCString(addr));
      return w;
    });

    // --- Running code (spec §5.5). ---
    this.on(Sym.runAsMain, async (a) => {
      const [fn, args] = decode(a, 'run_as_main arguments', (r) => [r.addr(), r.sequence(8, (r) => r.string())] as const);
      this.requireCallable(fn, 'run_as_main');
      const status = await this.runCode(() => native.callMainAsync(fn, args));
      this.mainReturned = true;
      return new SpsWriter(8, HEADER_SIZE).i64(status);
    });
    this.on(Sym.runAsVoid, async (a) => {
      const fn = decode(a, 'run_as_void_function arguments', (r) => r.addr());
      this.requireCallable(fn, 'run_as_void_function');
      return new SpsWriter(4, HEADER_SIZE).i32(await this.runCode(() => native.callVoidAsync(fn)));
    });
    this.on(Sym.runAsInt, async (a) => {
      const [fn, arg] = decode(a, 'run_as_int_function arguments', (r) => [r.addr(), r.i32()] as const);
      this.requireCallable(fn, 'run_as_int_function');
      return new SpsWriter(4, HEADER_SIZE).i32(await this.runCode(() => native.callInt32Async(fn, arg)));
    });

    // --- jitmem's own services. ---
    this.on(RUN_PROGRAM_SYMBOL, async (a) => {
      const request = decodeRunProgramRequest(a);
      const w = new SpsWriter(64, HEADER_SIZE);
      try {
        for (const fn of [request.main, ...request.init, ...request.fini]) this.requireCallable(fn, 'run_program');
        const result = await this.runCode(() => native.runProgram(request.main, request.argv, request.init, request.fini));
        this.mainReturned = true;
        return encodeRunProgramResult(w, { ok: true, value: result });
      } catch (err) {
        return encodeRunProgramResult(w, { ok: false, error: errorMessage(err) });
      }
    });
    this.jitmemTags.add(this.token(RUN_PROGRAM_SYMBOL));
    this.on(DYLIB_CLOSE_SYMBOL, (a) => {
      const handle = decode(a, 'dylib_close arguments', (r) => r.addr());
      return spsError(() => {
        if (!this.dylibHandles.has(handle)) throw new RemoteError('ERR_UNKNOWN_HANDLE', `${hex(handle)} is not a handle returned by open`);
        try {
          native.dlclose(handle);
        } catch (err) {
          throw new RemoteError('ERR_DLCLOSE', (err as Error).message);
        }
      });
    });
    this.jitmemTags.add(this.token(DYLIB_CLOSE_SYMBOL));
    this.on(RESERVE_WINDOW_SYMBOL, (a) => {
      const [start, end] = decode(a, 'set_reserve_window arguments', (r) => [r.addr(), r.addr()] as const);
      return spsError(() => {
        if (start === 0 && end === 0) this.space.reserveWindow = null;
        else if (end <= start) throw new RemoteError('ERR_INVALID_WINDOW', `set_reserve_window: [${hex(start)}, ${hex(end)}) is empty`);
        else this.space.reserveWindow = { start, end };
      });
    });
    this.jitmemTags.add(this.token(RESERVE_WINDOW_SYMBOL));
    this.on(JitmemSym.checksum, (a) => {
      const ranges = decode(a, 'checksum arguments', (r) => r.sequence(16, (r) => r.addrRange()));
      let totalBytes = 0;
      return expected(
        () =>
          ranges.map(({ start, end }) => {
            totalBytes += Math.max(0, end - start);
            if (totalBytes > MAX_CHECKSUM_BYTES) {
              throw new RemoteError('ERR_RANGE_TOO_LARGE', `checksum: the ranges add up to more than ${MAX_CHECKSUM_BYTES} bytes; ask for them in parts`);
            }
            if (end < start) throw new RemoteError('ERR_INVALID_RANGE', `checksum: range [${hex(start)}, ${hex(end)}) ends before it starts`);
            this.space.requireAccess(start, end - start, PROT_R, 'checksum range');

            const h = createHash('sha256');
            if (end > start) {
              const v = native.view(start, end - start);
              try {
                h.update(v);
              } finally {
                native.detach(v);
              }
            }
            return h.digest();
          }),
        (w, digests) => w.sequence(digests, (w, d) => w.bytes(d)),
      );
    });
    this.on(JitmemSym.patchCode, (a) => {
      const patches = decode(a, 'patch_code arguments', (r) => r.sequence(16, (r) => ({ address: r.addr(), bytes: r.bytesView() })));
      return spsError(() => this.patchCode(patches));
    });
    this.on(JitmemSym.codeBarrier, (a) => {
      const ranges = decode(a, 'code_barrier arguments', (r) => r.sequence(16, (r) => r.addrRange()));
      return spsError(() => {
        // Every range is checked before anything is flushed.
        for (const { start, end } of ranges) {
          if (end < start) throw new RemoteError('ERR_INVALID_RANGE', `code_barrier: range [${hex(start)}, ${hex(end)}) ends before it starts`);
          this.segmentAt(start, end - start, 'code_barrier');
        }
        for (const { start, end } of ranges) native.flushICache(start, end - start);
        // Threads running JIT'd code right now fetch the new bytes from their next instruction
        // on; a thread that is not running any goes through a context switch before it does.
        native.syncCore();
      });
    });
    this.on(JitmemSym.noop, (a) => {
      decode(a, 'noop arguments', () => undefined);
      return new Uint8Array(0);
    });
    this.on(JitmemSym.costCounters, (a) => {
      decode(a, 'cost_counters arguments', () => undefined);
      const c = this.channel!.counters();
      const counters = processCostCounters({ roundTrips: c.callsHandled, bytesOut: c.bytesSent, bytesIn: c.bytesReceived });
      return new SpsWriter().sequence(PROCESS_COST_COUNTER_NAMES, (w, name) => w.u64(counters[name])).finish();
    });
    this.on(JitmemSym.unwindProbe, (a) => {
      decode(a, 'unwind_probe arguments', () => undefined);
      return spsError(() => {
        native.unwindProbe();
      });
    });
    for (const name of Object.values(JitmemSym)) {
      const t = this.tokens.get(name);
      if (t !== undefined) this.jitmemTags.add(t);
    }
  }

  /** The initialized segment (page-rounded) that holds all of [addr, addr+size). */
  private segmentAt(addr: number, size: number, what: string): { reservation: Reservation; start: number; end: number; prot: number } {
    const reservation = this.space.requireRange(addr, size, what);
    const page = this.space.pageSize;
    for (const region of reservation.regions.values()) {
      for (const s of region.segments) {
        const end = alignUp(s.addr + s.size, page);
        if (s.size === 0 || addr < s.addr || addr >= end) continue;
        if (addr + size > end) {
          throw new RemoteError('ERR_PATCH_OUT_OF_SEGMENT', `${what}: [${hex(addr)}, ${hex(addr + size)}) runs past its segment [${hex(s.addr)}, ${hex(end)})`);
        }
        return { reservation, start: s.addr, end, prot: s.prot };
      }
    }
    throw new RemoteError('ERR_NOT_INITIALIZED', `${what}: ${hex(addr)} is not inside an initialized segment`);
  }

  /**
   * Rewrites bytes of initialized segments, a batch at a time: every patch is checked first,
   * then each segment touched gets one write window (RW for the copies, then its protection
   * back and the I-cache flushed).
   */
  private patchCode(patches: ReadonlyArray<{ address: number; bytes: Uint8Array }>): void {
    if (patches.length === 0) throw new RemoteError('ERR_INVALID_PATCH', 'patchCode needs at least one patch');
    this.requireNoCodeRunning('patchCode');
    const groups = new Map<number, { prot: number; patches: Array<{ address: number; bytes: Uint8Array }> }>();
    for (const p of patches) {
      if (p.bytes.length === 0) throw new RemoteError('ERR_INVALID_PATCH', `patchCode at ${hex(p.address)} needs at least one byte to write`);
      const seg = this.segmentAt(p.address, p.bytes.length, 'patchCode');
      if (this.frames.overlaps(p.address, p.address + p.bytes.length)) {
        throw new RemoteError('ERR_PATCH_REFUSED', `patchCode of [${hex(p.address)}, ${hex(p.address + p.bytes.length)}) would rewrite a registered EH frame, which the unwinder reads at any time`);
      }
      const g = groups.get(seg.start);
      if (g) g.patches.push(p);
      else groups.set(seg.start, { prot: seg.prot, patches: [p] });
    }
    for (const g of groups.values()) native.patchInPlace(g.patches, g.prot);
  }

  private requireCallable(fn: number, what: string): void {
    if (this.resolvedFunctions.has(fn)) return;
    this.space.requireAccess(fn, 1, PROT_X, `${what}: function`);
  }

  private snapshot(addr: number, size: number): Uint8Array {
    const out = new Uint8Array(size);
    native.copyOut(addr, out);
    return out;
  }

  private readCString(addr: number): Uint8Array {
    const page = this.space.pageSize;
    let at = addr;
    // Extend page by page until a NUL turns up; never past what we may read.
    for (;;) {
      const chunkEnd = at - (at % page) + page;
      this.space.requireAccess(at, chunkEnd - at, PROT_R, `read_strings: string at ${hex(addr)}`);
      const v = native.view(at, chunkEnd - at);
      const nul = v.indexOf(0);
      native.detach(v);
      if (nul >= 0) return this.snapshot(addr, at + nul - addr);
      at = chunkEnd;
    }
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof RemoteError) return err.wireMessage;
  if (err instanceof JitmemError) return `${err.message} [${err.code}]`;
  const e = err as { message?: string; code?: string };
  return e.code ? `${e.message} [${/^ERR_/.test(e.code) ? e.code : 'ERR_SYSTEM'}]` : String(e.message ?? err);
}

function expected<T>(run: () => T, encode: (w: SpsWriter, v: T) => void): SpsWriter {
  const w = new SpsWriter(64, HEADER_SIZE);
  let value: T;
  try {
    value = run();
  } catch (err) {
    return w.bool(false).string(errorMessage(err));
  }
  w.bool(true);
  encode(w, value);
  return w;
}

function expectedAddr(run: () => number): SpsWriter {
  return expected(run, (w, v) => w.addr(v));
}

function spsError(run: () => void): SpsWriter {
  const w = new SpsWriter(16, HEADER_SIZE);
  try {
    run();
  } catch (err) {
    return w.error(errorMessage(err));
  }
  return w.error(null);
}
