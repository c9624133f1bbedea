import { hex } from '../core/errors.js';
import { SpsReader } from './sps.js';

/**
 * The one runner of alloc actions, wherever they run (this process for the in-process mapper,
 * the executor for the remote ones): finalize calls in list order; if one fails, the dealloc
 * calls of those that already ran are run in reverse and the failure is reported; otherwise
 * the dealloc calls are returned to be run, in reverse, at deinitialize. Each action returns
 * an SPSError. Where the sides differ (which calls they accept, how an error is reported) is
 * the ActionCallSite they pass in.
 */

/**
 * A wrapper-function call that runs in the executor: the function's executor address and its
 * SPS-encoded argument bytes (SPSWrapperFunctionCall). The function returns an SPSError. A call
 * whose fn is 0 is "none" and is skipped.
 */
export interface WrapperCall {
  readonly fn: number;
  readonly args: Uint8Array;
}

/** A finalize action and its dealloc twin (SPSAllocActionCallPair); either may be null. */
export interface AllocActionCallPair {
  readonly finalize: WrapperCall | null;
  readonly dealloc: WrapperCall | null;
}

/** How one side calls an action and reports its failure. */
export interface ActionCallSite {
  /** Calls to accept and do nothing for (the executor's token-only actions). */
  skip?(call: WrapperCall): boolean;
  /** Refuses a call before it is made, by throwing; the error goes on as it is. */
  check?(call: WrapperCall, what: string): void;
  /** Invokes the wrapper function and returns its raw result bytes. */
  invoke(call: WrapperCall): Uint8Array;
  /** The error a failing action is reported with. */
  failure(message: string, call: WrapperCall): Error;
}

/** Pairs as they go on the wire: a call to address 0 is sent as the null call. */
export function toWireActions(actions: readonly AllocActionCallPair[]): AllocActionCallPair[] {
  return actions.map((a) => ({
    finalize: isCall(a.finalize) ? a.finalize : null,
    dealloc: isCall(a.dealloc) ? a.dealloc : null,
  }));
}

function isCall(call: WrapperCall | null): call is WrapperCall {
  return call !== null && call.fn !== 0;
}

function runOne(call: WrapperCall, site: ActionCallSite, what: string): void {
  if (site.skip?.(call)) return;
  site.check?.(call, what);
  let out: Uint8Array;
  try {
    out = site.invoke(call);
  } catch (err) {
    throw site.failure(`${what} at ${hex(call.fn)} failed: ${(err as Error).message}`, call);
  }
  if (out.length === 0)
    throw site.failure(`${what} at ${hex(call.fn)} returned an empty result where an SPSError was expected`, call);
  let message: string | null;
  try {
    message = new SpsReader(out, `result of ${what}`).error();
  } catch (err) {
    throw site.failure(`${what} at ${hex(call.fn)} returned a malformed SPSError: ${(err as Error).message}`, call);
  }
  if (message !== null) throw site.failure(`${what} at ${hex(call.fn)} failed: ${message}`, call);
}

/**
 * Runs the finalize halves in order and returns the dealloc halves of those that ran. When one
 * fails, the dealloc halves collected so far run (in reverse) before its error is thrown.
 */
export function runFinalizeActions(actions: readonly AllocActionCallPair[], site: ActionCallSite): WrapperCall[] {
  const deallocs: WrapperCall[] = [];
  for (const [i, pair] of actions.entries()) {
    if (isCall(pair.finalize)) {
      try {
        runOne(pair.finalize, site, `finalize action ${i}`);
      } catch (err) {
        const undo = runDeallocActions(deallocs, site);
        if (undo.length === 0) throw err;
        throw site.failure(
          `${(err as Error).message}; undoing the earlier actions failed too: ${undo.map((e) => (e as Error).message).join('; ')}`,
          pair.finalize,
        );
      }
    }
    if (isCall(pair.dealloc)) deallocs.push(pair.dealloc);
  }
  return deallocs;
}

/**
 * Runs dealloc calls in reverse; every one runs even if an earlier one failed. Returns the failures,
 * in the order they happened.
 */
export function runDeallocActions(deallocs: readonly WrapperCall[], site: ActionCallSite): unknown[] {
  const errors: unknown[] = [];
  for (let i = deallocs.length - 1; i >= 0; i--) {
    try {
      runOne(deallocs[i]!, site, `dealloc action ${i}`);
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}
