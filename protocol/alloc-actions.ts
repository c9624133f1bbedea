import { JitmemError, hex, throwCollected } from '../core/errors.js';
import { SpsReader } from './sps.js';

/**
 * Running alloc actions, wherever they run (this process for the in-process mapper, the
 * executor for the remote ones): finalize calls in list order; if one fails, the dealloc calls
 * of those that already ran are run in reverse and the failure is reported; otherwise the
 * dealloc calls are returned to be run, in reverse, at deinitialize. Each action returns an
 * SPSError.
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

/** Invokes a wrapper function and returns its raw result bytes. */
export type WrapperCallRunner = (call: WrapperCall) => Uint8Array;

/** Decodes an SPSError result: null on success, the message on failure. */
export function decodeSpsErrorResult(bytes: Uint8Array): string | null {
  const r = new SpsReader(bytes, 'SPSError result');
  const message = r.error();
  r.end();
  return message;
}

function runOne(call: WrapperCall, run: WrapperCallRunner, phase: string): void {
  let message: string | null;
  try {
    message = decodeSpsErrorResult(run(call));
  } catch (err) {
    message = (err as Error).message;
  }
  if (message !== null) {
    throw new JitmemError('ERR_ALLOC_ACTION_FAILED', `${phase} action at ${hex(call.fn)} failed: ${message}`, { fn: call.fn, phase });
  }
}

export function runFinalizeActions(actions: readonly AllocActionCallPair[], run: WrapperCallRunner): WrapperCall[] {
  const deallocs: WrapperCall[] = [];
  for (const pair of actions) {
    if (pair.finalize && pair.finalize.fn !== 0) {
      try {
        runOne(pair.finalize, run, 'finalize');
      } catch (err) {
        try {
          runDeallocActions(deallocs, run);
        } catch (undoErr) {
          throw new JitmemError('ERR_ALLOC_ACTION_FAILED', `${(err as Error).message}; undoing the earlier actions failed too: ${(undoErr as Error).message}`, {
            fn: pair.finalize.fn,
          });
        }
        throw err;
      }
    }
    if (pair.dealloc && pair.dealloc.fn !== 0) deallocs.push(pair.dealloc);
  }
  return deallocs;
}

/** Runs dealloc calls in reverse; every one runs even if an earlier one failed. */
export function runDeallocActions(deallocs: readonly WrapperCall[], run: WrapperCallRunner): void {
  const errors: unknown[] = [];
  for (let i = deallocs.length - 1; i >= 0; i--) {
    try {
      runOne(deallocs[i]!, run, 'dealloc');
    } catch (err) {
      errors.push(err);
    }
  }
  throwCollected(errors, 'dealloc actions');
}
