import * as native from '../native/index.js';
import { JitmemError, eachCollected, throwCollected } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import type { AllocInfo, WrapperCall } from './memory-mapper.js';
import { checkPatchBatch, groupBySegment, segmentHolding, type CodePatch, type PatchOptions } from './code-patch.js';
import { LocalMemoryMapper } from './local-memory-mapper.js';
import { runDeallocActions, runFinalizeActions, type ActionCallSite } from '../protocol/alloc-actions.js';
import type { Reservation as ReservationRecord } from './reservation-table.js';

/**
 * In-process, with W^X kept without toggling protections on code (the technique of Julia's JIT
 * and JavaScriptCore): each reservation is one shared-memory object mapped twice in this
 * process, an execution view whose pages are R-X unless a data segment lives there, and a
 * writing view that is always RW-. The execution view's addresses are the target addresses;
 * content, zero-fill and patches go through the writing view. So finalize changes no protection
 * for code (only data segments, which must be writable or read-only at their own addresses,
 * get an mprotect), and patching code changes none at all.
 *
 * The working memory prepare() hands out is a view of the writing mapping and is detached when
 * its range is initialized, deinitialized or released, as the contract says; the mapper itself
 * keeps writing through its own mapping, which no caller can reach.
 */

/** What an execution-view page is when no data segment of a live region covers it. */
const EXEC_DEFAULT = native.PROT_R | native.PROT_X;

interface Segment {
  readonly start: number;
  /** Page-rounded. */
  readonly length: number;
  readonly prot: number;
}

interface Region {
  readonly key: number;
  readonly end: number;
  readonly segments: readonly Segment[];
  /** Page runs whose execution-view protection initialize changed from EXEC_DEFAULT. */
  readonly changed: readonly Segment[];
  readonly deallocs: readonly WrapperCall[];
}

interface Mapping {
  /** The writing view's address of the reservation's first byte. */
  readonly writable: number;
}

type Reservation = ReservationRecord<Region>;

/** Alloc actions run in this process: real functions with LLVM's wrapper ABI. */
const inProcess: ActionCallSite = {
  invoke: (call) => native.callWrapper(call.fn, call.args),
  failure: (message, call) => new JitmemError('ERR_ALLOC_ACTION_FAILED', message, { fn: call.fn }),
};

/** Puts execution-view page runs back to their default, one mprotect per contiguous run. */
function restoreDefault(runs: readonly Segment[]): void {
  let i = 0;
  while (i < runs.length) {
    const start = runs[i]!.start;
    let end = start + runs[i]!.length;
    while (++i < runs.length && runs[i]!.start === end) end += runs[i]!.length;
    native.protect(start, end - start, EXEC_DEFAULT);
  }
}

let nextObject = 0;

export class DualMappedMemoryMapper extends LocalMemoryMapper<Region> {
  readonly pageSize = native.pageSize();
  private readonly mappings = new Map<number, Mapping>();

  protected async reserveRange(bytes: number): Promise<number> {
    const name = `/jitmem_dualmap_${process.pid}_${nextObject++}`;
    const fd = native.shmCreate(name, bytes);
    let writable = 0;
    let start = 0;
    try {
      // The name goes at once: the object lives exactly as long as its two mappings, whatever
      // becomes of this process.
      native.shmUnlink(name);
      writable = native.mapShared(fd, bytes, native.PROT_RW);
      start = native.mapShared(fd, bytes, EXEC_DEFAULT);
    } catch (err) {
      if (writable !== 0) native.unmap(writable, bytes);
      throw err;
    } finally {
      native.closeFd(fd);
    }
    this.mappings.set(start, { writable });
    return start;
  }

  protected workingMemory(r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(this.writableAddress(r, addr), size);
  }

  async initialize(info: AllocInfo): Promise<number> {
    const { r, key, end } = this.beginInitialize(info);
    // Every check passed: from here on bytes change. Working memory loses its window first.
    this.table.detachViews(r, key, end);
    const segments: Segment[] = [];
    const changed: Segment[] = [];
    try {
      for (const seg of info.segments) {
        const start = info.mappingBase + seg.offset;
        if (seg.zeroFillSize > 0) native.fill(this.writableAddress(r, start) + seg.contentSize, seg.zeroFillSize, 0);
        const length = alignUp(seg.contentSize + seg.zeroFillSize, this.pageSize);
        if (length === 0) continue;
        segments.push({ start, length, prot: seg.group.prot });
      }
      // Code is already executable where it lies; only data segments need their own protection
      // at their target addresses. Adjacent runs with one protection take one mprotect.
      for (const s of segments) {
        if (s.prot === EXEC_DEFAULT) continue;
        const last = changed[changed.length - 1];
        if (last && last.prot === s.prot && last.start + last.length === s.start) changed[changed.length - 1] = { ...last, length: last.length + s.length };
        else changed.push({ ...s });
      }
      for (const run of changed) native.protect(run.start, run.length, run.prot);
      // The bytes came in through another virtual address: where the I-cache is not coherent
      // (AArch64) the execution view's lines must be invalidated (a no-op on x86-64).
      for (const s of segments) if (s.prot & native.PROT_X) native.flushICache(s.start, s.length);
      const deallocs = runFinalizeActions(info.actions, inProcess);
      r.regions.set(key, { key, end, segments, changed, deallocs });
      return key;
    } catch (err) {
      restoreDefault(changed);
      throw err;
    }
  }

  /**
   * Rewrites code in place through the writing view: no protection changes, no system call on
   * x86-64 (where the I-cache is coherent), one flush per patched range on AArch64. Every patch
   * is checked before any byte is written. `options` is accepted for the contract's sake: in
   * this process a caller that patches running code must order the patch with the code's
   * threads itself, as with any in-process write.
   */
  async patchCode(patches: readonly CodePatch[], _options: PatchOptions = {}): Promise<void> {
    this.checkOpen();
    checkPatchBatch(patches);
    const holders = new Map<CodePatch, Reservation>();
    const groups = groupBySegment(patches, (p) => {
      const r = this.table.of(p.address, p.bytes.length, 'patchCode');
      holders.set(p, r);
      return segmentHolding(r.regions.values(), p.address, p.bytes.length);
    });
    for (const p of patches) native.copyIn(this.writableAddress(holders.get(p)!, p.address), p.bytes);
    for (const [segment, group] of groups) if (segment.prot & native.PROT_X) for (const p of group) native.flushICache(p.address, p.bytes.length);
  }

  /** The writing view's address of target address `addr` of reservation `r`. */
  private writableAddress(r: Reservation, addr: number): number {
    return this.mappings.get(r.start)!.writable + (addr - r.start);
  }

  protected releaseReservation(r: Reservation): void {
    try {
      eachCollected([...r.regions.values()].reverse(), 'release', (region) => this.teardown(r, region));
    } finally {
      this.table.detachViews(r, r.start, r.end);
      const size = r.end - r.start;
      const mapping = this.mappings.get(r.start)!;
      this.table.byStart.delete(r.start);
      this.mappings.delete(r.start);
      native.unmap(r.start, size);
      native.unmap(mapping.writable, size);
    }
  }

  /** Runs a region's dealloc actions, puts its data pages back to the default and forgets it. */
  protected teardown(r: Reservation, region: Region): void {
    r.regions.delete(region.key);
    try {
      throwCollected(runDeallocActions(region.deallocs, inProcess), 'dealloc actions');
    } finally {
      restoreDefault(region.changed);
    }
  }
}
