import * as native from '../native/index.js';
import { hex } from '../core/errors.js';
import { SpsReader } from '../protocol/sps.js';
import type { ActionCallSite, WrapperCall } from '../protocol/alloc-actions.js';
import { AddressSpace, PROT_R, PROT_W, PROT_X } from './address-space.js';
import { RemoteError } from './remote-error.js';

/**
 * The executor's side of running alloc actions (spec §5.6; the runner is
 * protocol/alloc-actions.ts): C wrapper functions that return an SPSError. An action is
 * called only if it is one of the addon's own actions, with arguments that name memory this
 * executor owns, or lies in an executable page the controller initialized (JIT'd code). Any
 * other address would be a jump into the unknown, which LLVM's executor makes and we refuse.
 */
export class ExecutorActionSite implements ActionCallSite {
  private readonly builtin: native.ActionAddresses;

  /**
   * Actions the executor accepts and does nothing for (their symbols are tokens): JITLoaderGDB
   * registration, which llvm-jitlink sends by default and which needs a debugger to matter.
   */
  readonly ignored = new Set<number>();

  constructor(private readonly space: AddressSpace) {
    this.builtin = native.actionAddresses();
  }

  skip(call: WrapperCall): boolean {
    return this.ignored.has(call.fn);
  }

  invoke(call: WrapperCall): Uint8Array {
    return native.callWrapper(call.fn, call.args);
  }

  failure(message: string): Error {
    return new RemoteError('ERR_ALLOC_ACTION_FAILED', message);
  }

  /**
   * The unwinder walks an .eh_frame section record by record until a zero length, trusting
   * every length. Walk it first: every record must end inside the range, and the walk must
   * meet a zero terminator inside it or right after it (JITLink puts the terminator there).
   */
  private checkEHFrame(start: number, end: number, what: string): void {
    const readU32 = (at: number): number => {
      this.space.requireAccess(at, 4, PROT_R, `${what}: EH-frame record length`);
      const b = new Uint8Array(4);
      native.copyOut(at, b);
      return new DataView(b.buffer).getUint32(0, true);
    };
    let at = start;
    for (;;) {
      const length = readU32(at);
      if (length === 0) return;
      if (at >= end) break;
      if (length === 0xffffffff) {
        throw new RemoteError('ERR_ACTION_REFUSED', `${what}: EH-frame record at ${hex(at)} uses a 64-bit length, which this executor does not register`);
      }
      const next = at + 4 + length;
      if (next > end) {
        throw new RemoteError('ERR_ACTION_REFUSED', `${what}: EH-frame record at ${hex(at)} of ${length} bytes runs past the end of its section [${hex(start)}, ${hex(end)})`);
      }
      at = next;
    }
    throw new RemoteError('ERR_ACTION_REFUSED', `${what}: EH-frame section [${hex(start)}, ${hex(end)}) has no zero terminator inside or right after it`);
  }

  check(call: WrapperCall, what: string): void {
    const b = this.builtin;
    const args = new SpsReader(call.args, `arguments of ${what}`);
    try {
      if (call.fn === b.trace) {
        const log = args.addr('the trace log address');
        const capacity = args.u64('the trace log capacity');
        args.u64Big();
        args.end();
        if (log % 8 !== 0) throw new RemoteError('ERR_ACTION_REFUSED', `${what}: trace log address ${hex(log)} is not 8-byte aligned`);
        this.space.requireAccess(log, 8, PROT_R | PROT_W, `${what}: trace log header`);
        const count = new BigUint64Array(1);
        native.copyOut(log, new Uint8Array(count.buffer));
        if (count[0]! < BigInt(capacity)) {
          const slot = log + 8 + 8 * Number(count[0]!);
          this.space.requireAccess(slot, 8, PROT_R | PROT_W, `${what}: trace log slot`);
        }
      } else if (call.fn === b.registerEHFrame || call.fn === b.deregisterEHFrame) {
        const range = args.addrRange();
        args.end();
        if (range.end < range.start) {
          throw new RemoteError('ERR_ACTION_REFUSED', `${what}: EH-frame range [${hex(range.start)}, ${hex(range.end)}) ends before it starts`);
        }
        this.space.requireAccess(range.start, range.end - range.start, PROT_R, `${what}: EH-frame section`);
        if (call.fn === b.registerEHFrame) this.checkEHFrame(range.start, range.end, what);
      } else if (call.fn !== b.fail) {
        this.space.requireAccess(call.fn, 1, PROT_X, `${what}: function`);
      }
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      throw new RemoteError('ERR_ACTION_REFUSED', `${what} at ${hex(call.fn)} was refused: ${(err as Error).message}`);
    }
  }
}
