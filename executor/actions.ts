import * as native from '../native/index.js';
import { hex } from '../core/errors.js';
import { SpsReader } from '../protocol/sps.js';
import type { ActionCallSite, AllocActionCallPair, WrapperCall } from '../protocol/alloc-actions.js';
import { AddressSpace, PROT_R, PROT_W, PROT_X } from './address-space.js';
import type { EHFrameRegistry } from './eh-frame-registry.js';
import { RemoteError } from './remote-error.js';

/**
 * The executor's side of running alloc actions (spec §5.6; the runner is
 * protocol/alloc-actions.ts): C wrapper functions that return an SPSError. An action is
 * called only if it is one of the addon's own actions, with arguments that name memory this
 * executor owns, or lies in an executable page the controller initialized (JIT'd code). Any
 * other address would be a jump into the unknown, which LLVM's executor makes and we refuse.
 *
 * Every action of a request is checked before the request changes anything (checkRequest),
 * against the memory as it will be once the region is live; the checks that need the memory's
 * contents (a trace log's count, an EH frame's records) run again just before each call.
 * EH-frame registration does not go through the C action: the registry parses the frame and
 * keeps track of it (eh-frame-registry.ts).
 */
export class ExecutorActionSite implements ActionCallSite {
  private readonly builtin: native.ActionAddresses;

  /**
   * Actions the executor accepts and does nothing for (their symbols are tokens): JITLoaderGDB
   * registration, which llvm-jitlink sends by default and which needs a debugger to matter.
   */
  readonly ignored = new Set<number>();

  constructor(
    private readonly space: AddressSpace,
    readonly frames: EHFrameRegistry,
  ) {
    this.builtin = native.actionAddresses();
  }

  skip(call: WrapperCall): boolean {
    return this.ignored.has(call.fn);
  }

  invoke(call: WrapperCall): Uint8Array {
    const b = this.builtin;
    if (call.fn === b.registerEHFrame || call.fn === b.deregisterEHFrame) {
      const range = new SpsReader(call.args, 'EH-frame action arguments').addrRange();
      if (call.fn === b.registerEHFrame) this.frames.register(range.start, range.end, 'EH-frame registration');
      else this.frames.deregister(range.start, range.end, 'EH-frame deregistration');
      return SPS_SUCCESS;
    }
    return native.callWrapper(call.fn, call.args);
  }

  failure(message: string): Error {
    return new RemoteError('ERR_ALLOC_ACTION_FAILED', message);
  }

  check(call: WrapperCall, what: string): void {
    const b = this.builtin;
    const args = new SpsReader(call.args, `arguments of ${what}`);
    try {
      if (call.fn === b.trace) {
        const { log, capacity } = this.traceLog(args, what);
        const count = new BigUint64Array(1);
        native.copyOut(log, new Uint8Array(count.buffer));
        if (count[0]! < BigInt(capacity)) {
          const slot = log + 8 + 8 * Number(count[0]!);
          this.space.requireAccess(slot, 8, PROT_R | PROT_W, `${what}: trace log slot`);
        }
      } else if (call.fn === b.registerEHFrame || call.fn === b.deregisterEHFrame) {
        const range = this.ehFrameRange(args, what);
        if (call.fn === b.registerEHFrame) this.frames.check(range.start, range.end, what);
        else if (!this.frames.has(range.start)) this.frames.deregister(range.start, range.end, what);
      } else if (call.fn !== b.fail) {
        this.space.requireAccess(call.fn, 1, PROT_X, `${what}: function`);
      }
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      throw new RemoteError('ERR_ACTION_REFUSED', `${what} at ${hex(call.fn)} was refused: ${(err as Error).message}`);
    }
  }

  /**
   * The checks of one action that need no memory contents: what it calls, and that the memory
   * its arguments name is (or, with the request's own region live, will be) there with the
   * access it needs. `registering` holds the frames earlier finalize actions of the same
   * request will have registered.
   */
  checkStatic(call: WrapperCall, what: string, role: 'finalize' | 'dealloc', registering: Set<number>): void {
    if (this.ignored.has(call.fn)) return;
    const b = this.builtin;
    const args = new SpsReader(call.args, `arguments of ${what}`);
    try {
      if (call.fn === b.trace) {
        this.traceLog(args, what);
      } else if (call.fn === b.registerEHFrame || call.fn === b.deregisterEHFrame) {
        const range = this.ehFrameRange(args, what);
        if (call.fn === b.registerEHFrame) {
          if (role === 'finalize') {
            if (this.frames.has(range.start) || registering.has(range.start)) {
              throw new RemoteError('ERR_EH_FRAME_ALREADY_REGISTERED', `${what}: the EH frame at ${hex(range.start)} is already registered; deregister it first`);
            }
            registering.add(range.start);
          }
        } else if (role === 'finalize' && !this.frames.has(range.start) && !registering.has(range.start)) {
          this.frames.deregister(range.start, range.end, what);
        }
      } else if (call.fn !== b.fail) {
        this.space.requireAccess(call.fn, 1, PROT_X, `${what}: function`);
      }
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      throw new RemoteError('ERR_ACTION_REFUSED', `${what} at ${hex(call.fn)} was refused: ${(err as Error).message}`);
    }
  }

  /** A trace action's arguments: its log (8-byte aligned, the header readable and writable) and capacity. */
  private traceLog(args: SpsReader, what: string): { log: number; capacity: number } {
    const log = args.addr('the trace log address');
    const capacity = args.u64('the trace log capacity');
    args.u64Big();
    args.end();
    if (log % 8 !== 0) throw new RemoteError('ERR_ACTION_REFUSED', `${what}: trace log address ${hex(log)} is not 8-byte aligned`);
    this.space.requireAccess(log, 8, PROT_R | PROT_W, `${what}: trace log header`);
    return { log, capacity };
  }

  /** An EH-frame action's argument: a section range that does not end before it starts, in readable memory. */
  private ehFrameRange(args: SpsReader, what: string): { start: number; end: number } {
    const range = args.addrRange();
    args.end();
    if (range.end < range.start) {
      throw new RemoteError('ERR_ACTION_REFUSED', `${what}: EH-frame range [${hex(range.start)}, ${hex(range.end)}) ends before it starts`);
    }
    this.space.requireAccess(range.start, range.end - range.start, PROT_R, `${what}: EH-frame section`);
    return range;
  }

  /** checkStatic for every action of a request, finalize and dealloc halves. */
  checkRequest(actions: readonly AllocActionCallPair[]): void {
    const registering = new Set<number>();
    for (const [i, pair] of actions.entries()) {
      if (pair.finalize && pair.finalize.fn !== 0) this.checkStatic(pair.finalize, `finalize action ${i}`, 'finalize', registering);
      if (pair.dealloc && pair.dealloc.fn !== 0) this.checkStatic(pair.dealloc, `dealloc action ${i}`, 'dealloc', registering);
    }
  }
}

/** An SPSError meaning success. */
const SPS_SUCCESS = Uint8Array.of(0);
