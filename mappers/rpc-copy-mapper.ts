import * as native from '../native/index.js';
import { JitmemError, hex } from '../core/errors.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { toWireActions } from '../protocol/alloc-actions.js';
import { allocGroupId } from '../graph/alloc-group.js';
import type { AllocInfo } from './memory-mapper.js';
import { patchBytes, type CodePatch } from './code-patch.js';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import type { Reservation } from './reservation-table.js';
import { RemoteMemoryMapper, callArgs } from './remote-memory-mapper.js';

/**
 * The RPC-copy mapper: LLVM's SimpleRemoteMemoryMapper. The executor reserves anonymous
 * memory; working memory is a staging area here; initialize sends the content bytes in the
 * FinalizeRequest and the executor copies them into place. Works over any transport, including
 * TCP to another machine.
 *
 * One copy on this side: the staging area of a reservation is an anonymous mapping of its size
 * (address space only, until written), working memory is written there natively (prepareLocal)
 * or through a zero-copy view of it, and the finalize request goes out as a gather write whose
 * content pieces are views of it (one for the region when its segments have none), so the
 * kernel's copy into the socket is the only one. The views are detached once the executor has
 * answered, which it does only after reading the whole request; warm staging pages are reused
 * by the next allocation of the same range, and no buffer is allocated per allocation, which
 * keeps the garbage collector out of the way.
 */
export class RpcCopyMapper extends RemoteMemoryMapper {
  /** This side's staging mapping of each reservation, by executor start address. */
  private readonly staging = new Map<number, number>();

  constructor(session: ExecutorSession) {
    super(session, 'memMgr');
  }

  protected async reserveRange(bytes: number): Promise<number> {
    const start = expectAddr(await this.session.call(Sym.memMgrReserve, this.args().u64(bytes)), 'reserve');
    try {
      this.staging.set(start, native.reserve(bytes, native.PROT_RW));
    } catch (err) {
      await this.releaseRemote([start]).catch(() => undefined);
      throw err;
    }
    return start;
  }

  protected workingMemory(r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(this.stagingAddress(r, addr), size);
  }

  /** Working memory is staging memory here: content written there natively needs no view until it is sent. */
  protected override localWorkingAddress(r: Reservation, addr: number): number {
    return this.stagingAddress(r, addr);
  }

  private stagingAddress(r: Reservation, addr: number): number {
    return this.staging.get(r.start)! + (addr - r.start);
  }

  protected async sendInitialize(info: AllocInfo, r: Reservation, key: number, end: number): Promise<Uint8Array> {
    // Segments prepared without a view (prepareLocal) are sent from one view of the region's
    // staging pages, made for the write and detached with the others once answered.
    let region: Uint8Array | undefined;
    const segments = info.segments.map((seg) => {
      const addr = info.mappingBase + seg.offset;
      const views = r.views.get(addr);
      let working = seg.workingMemory ?? views?.[0];
      if (working === undefined && views !== undefined && seg.contentSize > 0) {
        region ??= native.view(this.stagingAddress(r, key), end - key);
        working = region.subarray(addr - key, addr - key + seg.contentSize);
      }
      if (seg.contentSize > 0 && (!working || working.length < seg.contentSize)) {
        throw new JitmemError(
          'ERR_NO_WORKING_MEMORY',
          `initialize: segment at ${hex(addr)} has ${seg.contentSize} bytes of content but no working memory that holds them (prepare it first)`,
          {
            addr,
          },
        );
      }
      return {
        group: allocGroupId(seg.group),
        addr,
        size: seg.contentSize + seg.zeroFillSize,
        content: working?.subarray(0, seg.contentSize),
      };
    });
    // The content is referenced, not copied: the frame leaves as header and metadata pieces
    // around views of the staging pages.
    const w = new SpsWriter(64 + segments.length * 40 + info.actions.length * 64, HEADER_SIZE);
    w.addr(this.instance).finalizeRequest({ segments, actions: toWireActions(info.actions) }, true);
    try {
      return await this.session.callAddress(this.initializeTag, w);
    } finally {
      // Answered (or the session is gone, and the socket with it): the views may go.
      this.table.detachViews(r, key, end);
      if (region) native.detach(region);
    }
  }

  /**
   * Rewrites code in place: the whole batch travels to the executor in one call, which opens
   * each segment's pages for writing once, copies, restores their protection and flushes the
   * I-cache before it answers. Needs a jitmem executor (LLVM's has no such service).
   */
  protected async patchRemote(patches: readonly CodePatch[]): Promise<void> {
    if (!this.session.hasSymbol(JitmemSym.patchCode)) {
      throw new JitmemError(
        'ERR_UNSUPPORTED_BY_EXECUTOR',
        `patchCode needs an executor that provides ${JitmemSym.patchCode} (a jitmem executor); this one does not`,
        {},
      );
    }
    const w = callArgs(16 + patches.length * 16 + patchBytes(patches)).sequence(patches, (w, p) =>
      w.addr(p.address).bytes(p.bytes),
    );
    expectSuccess(await this.session.call(JitmemSym.patchCode, w), 'patchCode');
  }

  /** The staging mapping goes with the record. */
  protected override forget(r: Reservation): void {
    super.forget(r);
    const staging = this.staging.get(r.start);
    if (staging !== undefined) {
      this.staging.delete(r.start);
      native.unmap(staging, r.end - r.start);
    }
  }
}
