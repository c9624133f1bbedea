import { SpsReader, SpsWriter, decode, type WireExpected } from './sps.js';

/**
 * jitmem's run-program service, beside LLVM's run_as_main: runs a linked program the way a
 * process runs its own (initialisers, main, atexit handlers, finalisers) on a thread with an
 * 8 MiB stack, and says how it ended, including a crash with its faulting address, which
 * run_as_main cannot carry. The program's exit, atexit and __cxa_atexit bind to the runtime
 * functions the executor advertises under PROGRAM_RUNTIME_SYMBOLS.
 *
 * Wire form:
 *   args:   (SPSExecutorAddr main, SPSSequence<SPSString> argv,
 *            SPSSequence<SPSExecutorAddr> init, SPSSequence<SPSExecutorAddr> fini)
 *   result: SPSExpected<SPSTuple<int64 status, uint8 outcome, int32 signal,
 *                                SPSExecutorAddr faultAddress, SPSExecutorAddr pc>>
 *   outcome: 0 main returned, 1 exit() was called, 2 the program crashed.
 */

export const RUN_PROGRAM_SYMBOL = 'jitmem_run_program_wrapper';

/**
 * (SPSExecutorAddr start, SPSExecutorAddr end) -> SPSError: from now on, the executor places
 * new reservations (both memory services) inside [start, end); (0, 0) lifts the constraint.
 * A program whose code must lie near some data, or in the low 2 GiB, needs it.
 */
export const RESERVE_WINDOW_SYMBOL = 'jitmem_set_reserve_window_wrapper';

/** The names the executor advertises for the program runtime, by the libc name each stands in for. */
export const PROGRAM_RUNTIME_SYMBOLS: Readonly<Record<'exit' | 'atexit' | '__cxa_atexit' | 'dlopen' | 'dlclose', string>> = {
  exit: 'jitmem_program_exit',
  atexit: 'jitmem_program_atexit',
  __cxa_atexit: 'jitmem_program_cxa_atexit',
  dlopen: 'jitmem_program_dlopen',
  dlclose: 'jitmem_program_dlclose',
};

/**
 * (SPSExecutorAddr handle) -> SPSError: closes a library the dylib service opened (the export
 * library of a program that has ended), so that what the next program loads cannot bind to it.
 */
export const DYLIB_CLOSE_SYMBOL = 'jitmem_dylib_close_wrapper';

export interface RunProgramRequest {
  readonly main: number;
  readonly argv: readonly string[];
  readonly init: readonly number[];
  readonly fini: readonly number[];
}

export type ProgramOutcome = 'returned' | 'exited' | 'crashed';

export interface RunProgramResult {
  readonly status: number;
  readonly outcome: ProgramOutcome;
  readonly signal: number;
  readonly faultAddress: number;
  readonly pc: number;
}

const OUTCOMES: readonly ProgramOutcome[] = ['returned', 'exited', 'crashed'];

export function encodeRunProgramRequest(w: SpsWriter, r: RunProgramRequest): SpsWriter {
  return w
    .addr(r.main)
    .sequence(r.argv, (w, s) => w.string(s))
    .sequence(r.init, (w, a) => w.addr(a))
    .sequence(r.fini, (w, a) => w.addr(a));
}

export function decodeRunProgramRequest(bytes: Uint8Array): RunProgramRequest {
  return decode(bytes, 'run_program arguments', (r) => ({
    main: r.addr(),
    argv: r.sequence(8, (r) => r.string()),
    init: r.sequence(8, (r) => r.addr()),
    fini: r.sequence(8, (r) => r.addr()),
  }));
}

export function encodeRunProgramResult(w: SpsWriter, result: WireExpected<RunProgramResult>): SpsWriter {
  if (!result.ok) return w.bool(false).string(result.error);
  const v = result.value;
  return w.bool(true).i64(v.status).u8(OUTCOMES.indexOf(v.outcome)).i32(v.signal).addr(v.faultAddress).addr(v.pc);
}

export function readRunProgramResult(r: SpsReader): WireExpected<RunProgramResult> {
  return r.expected((r) => {
    const status = Number(r.i64Big());
    const code = r.u8();
    const outcome = OUTCOMES[code];
    if (outcome === undefined) throw r.malformed(`run_program result: outcome ${code} is not 0, 1 or 2`);
    return { status, outcome, signal: r.i32(), faultAddress: r.addr(), pc: r.addr() };
  });
}
