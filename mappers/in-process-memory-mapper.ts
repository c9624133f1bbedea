import * as native from '../native/index.js';
import { JitmemError, eachCollected, throwCollected } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import type { AllocInfo, ExecutorAddrRange, WrapperCall } from './memory-mapper.js';
import { checkReserveSize } from './alloc-info.js';
import { checkPatchBatch, groupBySegment, segmentHolding, type CodePatch, type PatchOptions } from './code-patch.js';
import { LocalMemoryMapper } from './local-memory-mapper.js';
import { runDeallocActions, runFinalizeActions, type ActionCallSite } from '../protocol/alloc-actions.js';
import type { Reservation as ReservationRecord } from './reservation-table.js';

/**
 * The executor is this process: reserve maps anonymous memory here, working memory is a
 * zero-copy view of the target pages themselves, and initialize only changes protections and
 * runs the alloc actions. Nothing crosses a process boundary, which makes it the baseline the
 * other transports are measured against.
 */

interface Region {
  readonly key: number;
  readonly end: number;
  /** Page-rounded runs whose protection initialize changed, with the protection it set. */
  readonly segments: ReadonlyArray<{ readonly start: number; readonly length: number; readonly prot: number }>;
  readonly deallocs: readonly WrapperCall[];
}

type Reservation = ReservationRecord<Region>;

/** Gives page ranges their write window back, one mprotect per contiguous run. */
function restoreWritable(ranges: ReadonlyArray<{ readonly start: number; readonly length: number }>): void {
  let i = 0;
  while (i < ranges.length) {
    const start = ranges[i]!.start;
    let end = start + ranges[i]!.length;
    while (++i < ranges.length && ranges[i]!.start === end) end += ranges[i]!.length;
    native.protect(start, end - start, native.PROT_RW);
  }
}

/** Alloc actions run in this process: real functions with LLVM's wrapper ABI. */
const inProcess: ActionCallSite = {
  invoke: (call) => native.callWrapper(call.fn, call.args),
  failure: (message, call) => new JitmemError('ERR_ALLOC_ACTION_FAILED', message, { fn: call.fn }),
};

export class InProcessMemoryMapper extends LocalMemoryMapper<Region> {
  readonly pageSize = native.pageSize();

  protected async reserveRange(bytes: number): Promise<number> {
    return native.reserve(bytes, native.PROT_RW);
  }

  /** reserve(), inside `window`: this process can always place its own reservations. */
  async reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = native.reserveWithin(bytes, native.PROT_RW, window.start, window.end);
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  protected workingMemory(_r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(addr, size);
  }

  async initialize(info: AllocInfo): Promise<number> {
    const { r, key, end } = this.beginInitialize(info);
    // Every check passed: from here on bytes change. Working memory loses its window first, so
    // that no view can reach pages that are about to become read-only or executable.
    this.table.detachViews(r, key, end);
    const segments: Array<{ start: number; length: number; prot: number }> = [];
    try {
      // Adjacent segments with the same protection take one mprotect: each call costs a
      // syscall and splits a VMA.
      const runs: Array<{ start: number; length: number; prot: number }> = [];
      for (const seg of info.segments) {
        const start = info.mappingBase + seg.offset;
        if (seg.zeroFillSize > 0) native.fill(start + seg.contentSize, seg.zeroFillSize, 0);
        const length = alignUp(seg.contentSize + seg.zeroFillSize, this.pageSize);
        if (length === 0) continue;
        const last = runs[runs.length - 1];
        if (last && last.prot === seg.group.prot && last.start + last.length === start) last.length += length;
        else runs.push({ start, length, prot: seg.group.prot });
      }
      for (const run of runs) {
        native.protect(run.start, run.length, run.prot);
        segments.push(run);
        if (run.prot & 4) native.flushICache(run.start, run.length);
      }
      const deallocs = runFinalizeActions(info.actions, inProcess);
      r.regions.set(key, { key, end, segments, deallocs });
      return key;
    } catch (err) {
      restoreWritable(segments);
      throw err;
    }
  }

  /**
   * Patches code in place, a batch at a time: each segment the batch touches gets one write
   * window over the pages from its first patch to its last (W^X is kept: they are RW, not RWX,
   * while the bytes go in), then its own protection back, then an instruction-cache flush.
   */
  async patchCode(patches: readonly CodePatch[], _options: PatchOptions = {}): Promise<void> {
    this.checkOpen();
    checkPatchBatch(patches);
    const groups = groupBySegment(patches, (p) => segmentHolding(this.table.of(p.address, p.bytes.length, 'patchCode').regions.values(), p.address, p.bytes.length));
    for (const [segment, group] of groups) native.patchInPlace(group, segment.prot);
  }

  protected releaseReservation(r: Reservation): void {
    try {
      eachCollected([...r.regions.values()].reverse(), 'release', (region) => this.teardown(r, region));
    } finally {
      this.table.detachViews(r, r.start, r.end);
      native.unmap(r.start, r.end - r.start);
      this.table.byStart.delete(r.start);
    }
  }

  /** Runs a region's dealloc actions, gives its pages back their write window and forgets it. */
  protected teardown(r: Reservation, region: Region): void {
    r.regions.delete(region.key);
    try {
      throwCollected(runDeallocActions(region.deallocs, inProcess), 'dealloc actions');
    } finally {
      restoreWritable(region.segments);
    }
  }
}

