import { JitmemError, hex } from '../core/errors.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { toWireActions } from '../protocol/alloc-actions.js';
import { allocGroupId } from '../graph/alloc-group.js';
import type { AllocInfo } from './memory-mapper.js';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import type { Reservation } from './reservation-table.js';
import { RemoteMemoryMapper, callArgs } from './remote-memory-mapper.js';

/**
 * The RPC-copy mapper: LLVM's SimpleRemoteMemoryMapper. The executor reserves anonymous
 * memory; working memory is a staging buffer here; initialize sends the content bytes in the
 * FinalizeRequest and the executor copies them into place. Works over any transport, including
 * TCP to another machine.
 */
export class RpcCopyMapper extends RemoteMemoryMapper {
  constructor(session: ExecutorSession) {
    super(session, 'memMgr');
  }

  protected async reserveRange(bytes: number): Promise<number> {
    return expectAddr(await this.session.call(Sym.memMgrReserve, this.args().u64(bytes)), 'reserve');
  }

  protected workingMemory(_r: Reservation, _addr: number, size: number): Uint8Array {
    return new Uint8Array(size);
  }

  protected async sendInitialize(info: AllocInfo, r: Reservation, key: number, end: number): Promise<number> {
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
    return expectAddr(await this.session.call(Sym.memMgrInitialize, w), 'initialize');
  }

  /**
   * Rewrites code in an initialized segment in place: the bytes travel to the executor, which
   * opens the pages for writing, copies, restores their protection and flushes the I-cache
   * before it answers. Needs a jitmem executor (LLVM's has no such service).
   */
  protected async patchRemote(address: number, bytes: Uint8Array): Promise<void> {
    if (!this.session.hasSymbol(JitmemSym.patchCode)) {
      throw new JitmemError('ERR_UNSUPPORTED_BY_EXECUTOR', `patchCode needs an executor that provides ${JitmemSym.patchCode} (a jitmem executor); this one does not`, {});
    }
    expectSuccess(await this.session.call(JitmemSym.patchCode, callArgs().addr(address).bytes(bytes)), 'patchCode');
  }
}
