import { constants as osConstants } from 'node:os';
import * as native from '../native/index.js';
import { JitmemError, hasCode } from '../core/errors.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { remoteError } from '../protocol/remote-error.js';
import {
  DYLIB_CLOSE_SYMBOL,
  PROGRAM_RUNTIME_SYMBOLS,
  RUN_PROGRAM_SYMBOL,
  encodeRunProgramRequest,
  readRunProgramResult,
  type ProgramOutcome,
} from '../protocol/run-program.js';
import { Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { decodeResult, expectAddr, expectSuccess, type ExecutorSession } from '../session/executor-session.js';
import { globalScopeOf, type GlobalScopeSymbols } from './global-scope-symbols.js';

/**
 * Where a linked program runs and finds what it does not define: this process (the
 * in-process mapper's executor), or an executor process behind a session, jitmem's own or
 * LLVM's llvm-jitlink-executor.
 */

export interface ProgramRunResult {
  /** main's return value, exit()'s argument, the executor's exit status, or 128 + signal for a crash. */
  readonly status: number;
  readonly outcome: ProgramOutcome;
  /** For a crash: the signal number. */
  readonly signal?: number;
  /** For a crash, when the executor could tell: the faulting address and the instruction. */
  readonly faultAddress?: number;
  readonly pc?: number;
  /** True when the executor process ended with the program (LLVM's executor on exit(), a crash it could not catch). */
  readonly executorEnded?: boolean;
}

export interface EhFrameActions {
  readonly register: number;
  readonly deregister: number;
}

export interface ProgramTarget {
  /** 'inprocess', 'jitmem' or 'llvm'. */
  readonly kind: 'inprocess' | 'jitmem' | 'llvm';
  readonly pageSize: number;
  /** Opens a shared library in the executor (RTLD_GLOBAL): later lookups find its symbols. */
  preload(path: string): Promise<void>;
  /**
   * Opens the export library of a program that loads libraries itself (RTLD_GLOBAL, so that
   * they find the program's symbols). `exports` are its symbols: once the program is gone,
   * retireExports(exports) closes the library (the runtime has closed what the program
   * opened, so it is unloaded and the next program's libraries bind to their own program);
   * where it cannot be closed (LLVM's executor), later lookups ignore its symbols.
   */
  loadExports(path: string, exports: ReadonlyMap<string, number>): Promise<void>;
  retireExports(exports: ReadonlyMap<string, number>): Promise<void>;
  /** Addresses of `names` in the executor (0 when not found): one batched lookup. */
  lookup(names: readonly string[]): Promise<number[]>;
  /** Executor functions that stand in for exit, atexit, __cxa_atexit, dlopen and dlclose (none for LLVM's executor). */
  runtimeSymbols(): ReadonlyMap<string, number>;
  /** The EH-frame registration alloc actions, when the executor has them. */
  ehFrameActions(): EhFrameActions | undefined;
  /** Opens a library of the program's own (its TLS library) in the executor; closeLibrary gives it back. */
  openLibrary(path: string): Promise<number>;
  /** Addresses of `names` in the library `handle` (0 when not found). */
  symbolsIn(handle: number, names: readonly string[]): Promise<number[]>;
  /** Closes a library openLibrary opened; false where the executor cannot (LLVM's). */
  closeLibrary(handle: number): Promise<boolean>;
  /** Calls `fn` in the executor as int32_t fn(int32_t). */
  callInt32(fn: number, arg: number): Promise<number>;
  /** Runs init functions, main with `argv` (argv[0] is the program name), exit handlers and fini functions. */
  run(
    main: number,
    argv: readonly string[],
    init: readonly number[],
    fini: readonly number[],
  ): Promise<ProgramRunResult>;
}

function preloadError(path: string, err: unknown): JitmemError {
  return new JitmemError(
    'ERR_PRELOAD_FAILED',
    `cannot open the library ${JSON.stringify(path)} in the executor: ${(err as Error).message}`,
    { path },
    { cause: err },
  );
}

/** 0 for a symbol that only an earlier, finished program's export library provides. */
function withoutRetired(retired: ReadonlyMap<string, number>, name: string, address: number): number {
  return address !== 0 && retired.get(name) === address ? 0 : address;
}

function signalNumber(name: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[name] ?? 0;
}

/** The executor is this process: dlopen/dlsym here, the addon's runtime and EH-frame actions. */
export class InProcessTarget implements ProgramTarget {
  readonly kind = 'inprocess' as const;
  readonly pageSize = native.pageSize();
  private processHandle: number | undefined;

  /** This process's global scope, shared with every other in-process target (global-scope-symbols.ts). */
  private readonly scope = globalScopeOf(process);

  async preload(path: string): Promise<void> {
    try {
      await this.scope.openForGood(path, () => native.dlopen(path));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  private readonly retired = new Map<string, number>();
  private readonly exportHandles = new Map<ReadonlyMap<string, number>, number>();

  async loadExports(path: string, exports: ReadonlyMap<string, number>): Promise<void> {
    try {
      this.exportHandles.set(exports, await this.scope.openClosable(() => native.dlopen(path)));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  async retireExports(exports: ReadonlyMap<string, number>): Promise<void> {
    const handle = this.exportHandles.get(exports);
    this.exportHandles.delete(exports);
    if (handle === undefined) return;
    try {
      native.dlclose(handle);
    } catch {
      for (const [name, address] of exports) this.retired.set(name, address);
    } finally {
      this.scope.closed();
    }
  }

  async openLibrary(path: string): Promise<number> {
    try {
      return await this.scope.openClosable(() => native.dlopen(path));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  async symbolsIn(handle: number, names: readonly string[]): Promise<number[]> {
    return names.map((name) => native.dlsym(handle, name));
  }

  async closeLibrary(handle: number): Promise<boolean> {
    native.dlclose(handle);
    this.scope.closed();
    return true;
  }

  async callInt32(fn: number, arg: number): Promise<number> {
    return native.callInt32(fn, arg);
  }

  async lookup(names: readonly string[]): Promise<number[]> {
    return this.scope.lookup(names, async (missing) => {
      const process = (this.processHandle ??= native.dlopen(''));
      return missing.map((name) => withoutRetired(this.retired, name, native.dlsym(process, name)));
    });
  }

  runtimeSymbols(): ReadonlyMap<string, number> {
    return new Map(Object.entries(native.programRuntime()));
  }

  ehFrameActions(): EhFrameActions {
    const a = native.actionAddresses();
    return { register: a.registerEHFrame, deregister: a.deregisterEHFrame };
  }

  async run(
    main: number,
    argv: readonly string[],
    init: readonly number[],
    fini: readonly number[],
  ): Promise<ProgramRunResult> {
    const restore = this.inheritableStdio();
    try {
      const r = await this.scope.during(() => native.runProgram(main, argv, init, fini));
      return r.outcome === 'crashed' ? { ...r, status: 128 + r.signal } : { status: r.status, outcome: r.outcome };
    } finally {
      restore();
    }
  }

  /**
   * Node marks its stdin, stdout and stderr close-on-exec; a program expects the processes it
   * starts (itself again, a shell) to inherit them, as they would from a native program. Clears
   * FD_CLOEXEC on 0-2 for the run (through libc's fcntl) and returns what puts it back.
   */
  private inheritableStdio(): () => void {
    const process = (this.processHandle ??= native.dlopen(''));
    const fcntl = native.dlsym(process, 'fcntl');
    if (fcntl === 0) return () => undefined; // no libc fcntl to call: nothing was changed
    const before = [0, 1, 2].map((fd) => Number(native.call(fcntl, fd, F_GETFD)));
    before.forEach((flags, fd) => {
      if (flags > 0 && flags & FD_CLOEXEC) native.call(fcntl, fd, F_SETFD, flags & ~FD_CLOEXEC);
    });
    return () =>
      before.forEach((flags, fd) => {
        if (flags > 0 && flags & FD_CLOEXEC) native.call(fcntl, fd, F_SETFD, flags);
      });
  }
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

function writer(): SpsWriter {
  return new SpsWriter(64, HEADER_SIZE);
}

/** An executor process behind a session: its dylib service, run-program service or run_as_* calls. */
export class SessionTarget implements ProgramTarget {
  private processHandle: Promise<number> | undefined;
  /** The executor's global scope, shared with every other target over the session (global-scope-symbols.ts). */
  private readonly scope: GlobalScopeSymbols;

  constructor(readonly session: ExecutorSession) {
    this.scope = globalScopeOf(session);
  }

  get kind(): 'jitmem' | 'llvm' {
    return this.session.isJitmem ? 'jitmem' : 'llvm';
  }

  get pageSize(): number {
    return this.session.pageSize;
  }

  private async open(path: string): Promise<number> {
    const bytes = await this.session.call(
      Sym.dylibOpen,
      writer().addr(this.session.symbol(Sym.dylibInstance)).string(path).u64(0),
    );
    return expectAddr(bytes, path === '' ? 'open (the process)' : `open ${path}`);
  }

  async preload(path: string): Promise<void> {
    try {
      await this.scope.openForGood(path, () => this.open(path));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  private readonly retired = new Map<string, number>();
  private readonly exportHandles = new Map<ReadonlyMap<string, number>, number>();

  async loadExports(path: string, exports: ReadonlyMap<string, number>): Promise<void> {
    try {
      this.exportHandles.set(exports, await this.scope.openClosable(() => this.open(path)));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  async retireExports(exports: ReadonlyMap<string, number>): Promise<void> {
    const handle = this.exportHandles.get(exports);
    this.exportHandles.delete(exports);
    try {
      if (handle !== undefined && this.session.hasSymbol(DYLIB_CLOSE_SYMBOL)) {
        try {
          expectSuccess(await this.session.call(DYLIB_CLOSE_SYMBOL, writer().addr(handle)), 'dylib_close');
          return;
        } catch {
          // Not closed: its symbols stay in the executor's global scope; ignore them from now on.
        }
      }
      for (const [name, address] of exports) this.retired.set(name, address);
    } finally {
      // Closed, or its symbols ignored from now on: either way no lookup can answer with them.
      if (handle !== undefined) this.scope.closed();
    }
  }

  async openLibrary(path: string): Promise<number> {
    try {
      return await this.scope.openClosable(() => this.open(path));
    } catch (err) {
      throw preloadError(path, err);
    }
  }

  async symbolsIn(handle: number, names: readonly string[]): Promise<number[]> {
    return this.resolve(handle, names);
  }

  async closeLibrary(handle: number): Promise<boolean> {
    if (!this.session.hasSymbol(DYLIB_CLOSE_SYMBOL)) return false;
    expectSuccess(await this.session.call(DYLIB_CLOSE_SYMBOL, writer().addr(handle)), 'dylib_close');
    this.scope.closed();
    return true;
  }

  async callInt32(fn: number, arg: number): Promise<number> {
    return this.session.runAsInt(fn, arg);
  }

  private async resolve(handle: number, names: readonly string[]): Promise<number[]> {
    const bytes = await this.session.call(
      Sym.dylibResolve,
      writer()
        .addr(handle)
        .lookupSet(names.map((name) => ({ name, required: false }))),
    );
    const r = decodeResult(bytes, 'resolve', (r) =>
      r.expected((r) => r.sequence(1, (r) => r.optional((r) => r.symbolDef()))),
    );
    if (!r.ok) throw remoteError('resolve', r.error);
    if (r.value.length !== names.length) {
      throw new JitmemError(
        'ERR_SPS_MALFORMED',
        `resolve answered ${r.value.length} symbols for ${names.length} names`,
        {},
      );
    }
    return r.value.map((d) => d?.addr ?? 0);
  }

  async lookup(names: readonly string[]): Promise<number[]> {
    return this.scope.lookup(names, async (missing) => {
      // One resolve in the process's global scope, which holds the executable, its libraries
      // and every library opened RTLD_GLOBAL (--preload), in that order, as the dynamic linker
      // would search them.
      const process = await (this.processHandle ??= this.open(''));
      const found = await this.resolve(process, missing);
      return this.retired.size === 0 ? found : found.map((a, i) => withoutRetired(this.retired, missing[i]!, a));
    });
  }

  runtimeSymbols(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const [libcName, name] of Object.entries(PROGRAM_RUNTIME_SYMBOLS)) {
      const addr = this.session.symbols.get(name);
      if (addr !== undefined) out.set(libcName, addr);
    }
    return out;
  }

  ehFrameActions(): EhFrameActions | undefined {
    const register = this.session.symbols.get(Sym.registerEHFrame);
    const deregister = this.session.symbols.get(Sym.deregisterEHFrame);
    return register !== undefined && deregister !== undefined ? { register, deregister } : undefined;
  }

  async run(
    main: number,
    argv: readonly string[],
    init: readonly number[],
    fini: readonly number[],
  ): Promise<ProgramRunResult> {
    return this.scope.during(() => this.runProgram(main, argv, init, fini));
  }

  private async runProgram(
    main: number,
    argv: readonly string[],
    init: readonly number[],
    fini: readonly number[],
  ): Promise<ProgramRunResult> {
    try {
      if (this.session.hasSymbol(RUN_PROGRAM_SYMBOL)) {
        const bytes = await this.session.call(
          RUN_PROGRAM_SYMBOL,
          encodeRunProgramRequest(writer(), { main, argv, init, fini }),
        );
        const r = decodeResult(bytes, 'run_program', readRunProgramResult);
        if (!r.ok) throw remoteError('run_program', r.error);
        const v = r.value;
        return v.outcome === 'crashed' ? { ...v, status: 128 + v.signal } : { status: v.status, outcome: v.outcome };
      }
      // LLVM's executor has run_as_* only: the initialisers and finalisers are calls of their
      // own, and exit() ends the executor process.
      for (const fn of init) await this.session.runAsVoid(fn);
      const status = await this.session.runAsMain(main, argv);
      for (const fn of fini) await this.session.runAsVoid(fn);
      // Its stdio buffers are flushed only when the executor exits, and handlers the program
      // left with its libc's __cxa_atexit may fail then, with the program's memory gone:
      // fflush(NULL) now, so that the output is out whatever happens at exit.
      const [fflush] = await this.lookup(['fflush']);
      if (fflush) await this.session.runAsInt(fflush, 0);
      return { status, outcome: 'returned' };
    } catch (err) {
      if (!hasCode(err, 'ERR_EXECUTOR_LOST')) throw err;
      const exit = await this.session.exited();
      if (exit?.signal) {
        const signal = signalNumber(exit.signal);
        return { status: 128 + signal, outcome: 'crashed', signal, executorEnded: true };
      }
      if (exit && exit.code !== null) return { status: exit.code, outcome: 'exited', executorEnded: true };
      throw err;
    }
  }
}
