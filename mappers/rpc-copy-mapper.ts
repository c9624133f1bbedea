import { JitmemError, hex } from '../core/errors.js';
import { checkAddress, checkSize } from '../core/checks.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { SpsWriter, type WireAllocActionCallPair } from '../protocol/sps.js';
import { allocGroupId } from '../graph/alloc-group.js';
import { checkAllocInfo, checkPatch, checkReserveSize } from './alloc-info.js';
import type { AllocInfo, AllocActionCallPair, ExecutorAddrRange, MemoryMapper } from './memory-mapper.js';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import { ReservationTable, checkPatchTarget, deinitializeKeys } from './reservation-table.js';
import { reserveInWindow } from './reserve-window.js';

/**
 * The RPC-copy mapper: LLVM's SimpleRemoteMemoryMapper. The executor reserves anonymous
 * memory; working memory is a staging buffer here; initialize sends the content bytes in the
 * FinalizeRequest and the executor copies them into place. Works over any transport, including
 * TCP to another machine.
 */

export function toWireActions(actions: readonly AllocActionCallPair[]): WireAllocActionCallPair[] {
  return actions.map((a) => ({ finalize: a.finalize && a.finalize.fn !== 0 ? a.finalize : null, dealloc: a.dealloc && a.dealloc.fn !== 0 ? a.dealloc : null }));
}

export class RpcCopyMapper implements MemoryMapper {
  readonly pageSize: number;
  private readonly table = new ReservationTable();
  private readonly instance: number;
  private closed = false;

  constructor(private readonly session: ExecutorSession) {
    this.pageSize = session.pageSize;
    for (const name of [Sym.memMgrReserve, Sym.memMgrInitialize, Sym.memMgrDeinitialize, Sym.memMgrRelease]) session.symbol(name);
    this.instance = session.symbol(Sym.memMgrInstance);
  }

  async reserve(bytes: number): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = expectAddr(await this.session.call(Sym.memMgrReserve, args().addr(this.instance).u64(bytes)), 'reserve');
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  /** reserve(), inside `window`, when the executor can place reservations (jitmem's can); else null. */
  reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange | null> {
    return reserveInWindow(this.session, window, () => this.reserve(bytes));
  }

  prepare(addr: number, size: number): Uint8Array {
    this.checkOpen();
    checkAddress('addr', addr);
    checkSize('size', size);
    const r = this.table.of(addr, size, 'prepare');
    this.table.checkPrepare(r, addr, size);
    const v = new Uint8Array(size);
    this.table.addView(r, addr, v);
    return v;
  }

  async initialize(info: AllocInfo): Promise<number> {
    this.checkOpen();
    const { key, end } = checkAllocInfo(info, this.pageSize);
    const r = this.table.of(key, end - key, 'initialize');
    this.table.checkInitialize(r, key, end);
    let contentBytes = 0;
    const segments = info.segments.map((seg) => {
      const addr = info.mappingBase + seg.offset;
      const working = seg.workingMemory ?? r.views.get(addr)?.[0];
      if (seg.contentSize > 0 && (!working || working.length < seg.contentSize)) {
        throw new JitmemError('ERR_NO_WORKING_MEMORY', `initialize: segment at ${hex(addr)} has ${seg.contentSize} bytes of content but no working memory that holds them (prepare it first)`, {
          addr,
        });
      }
      contentBytes += seg.contentSize;
      return { group: allocGroupId(seg.group), addr, size: seg.contentSize + seg.zeroFillSize, content: working?.subarray(0, seg.contentSize) };
    });
    // One copy, into the frame itself: the header is written in front of it without another.
    const w = new SpsWriter(64 + contentBytes + segments.length * 32 + info.actions.length * 64, HEADER_SIZE);
    w.addr(this.instance).finalizeRequest({ segments, actions: toWireActions(info.actions) });
    this.table.detachViews(r, key, end);
    const result = expectAddr(await this.session.call(Sym.memMgrInitialize, w), 'initialize');
    r.regions.set(result, { end });
    return result;
  }

  /**
   * Rewrites code in an initialized segment in place: the bytes travel to the executor, which
   * opens the pages for writing, copies, restores their protection and flushes the I-cache
   * before it answers. Needs a jitmem executor (LLVM's has no such service).
   */
  async patchCode(address: number, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    checkPatch(address, bytes);
    checkPatchTarget(this.table, address, bytes.length);
    if (!this.session.hasSymbol(JitmemSym.patchCode)) {
      throw new JitmemError('ERR_UNSUPPORTED_BY_EXECUTOR', `patchCode needs an executor that provides ${JitmemSym.patchCode} (a jitmem executor); this one does not`, {});
    }
    expectSuccess(await this.session.call(JitmemSym.patchCode, args().addr(address).bytes(bytes)), 'patchCode');
  }

  async deinitialize(keys: readonly number[]): Promise<void> {
    this.checkOpen();
    await deinitializeKeys(this.table, keys, async (remote) => {
      expectSuccess(await this.session.call(Sym.memMgrDeinitialize, args().addr(this.instance).sequence(remote, (w, k) => w.addr(k))), 'deinitialize');
    });
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    const found = bases.map((base) => {
      checkAddress('base', base);
      const r = this.table.byStart.get(base);
      if (!r) throw new JitmemError('ERR_UNKNOWN_RESERVATION', `release: ${hex(base)} is not the start of a reservation`, { base });
      return r;
    });
    for (const r of found) {
      this.table.detachViews(r, r.start, r.end);
      this.table.byStart.delete(r.start);
    }
    if (found.length > 0) {
      expectSuccess(await this.session.call(Sym.memMgrRelease, args().addr(this.instance).sequence(found, (w, r) => w.addr(r.start))), 'release');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const bases = [...this.table.byStart.keys()];
    try {
      if (bases.length > 0 && this.session.isOpen) await this.release(bases);
    } finally {
      for (const r of this.table.byStart.values()) this.table.detachViews(r, r.start, r.end);
      this.table.byStart.clear();
      this.closed = true;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MAPPER_CLOSED', 'this RpcCopyMapper is closed', {});
  }
}

function args(): SpsWriter {
  return new SpsWriter(64, HEADER_SIZE);
}
