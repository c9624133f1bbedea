import * as native from '../native/index.js';
import { JitmemError, hex, throwCollected } from '../core/errors.js';
import { alignUp, checkAddress, checkSize } from '../core/checks.js';
import type { AllocInfo, ExecutorAddrRange, WrapperCall } from './memory-mapper.js';
import { checkAllocInfo, checkReserveSize } from './alloc-info.js';
import { checkPatchBatch, type CodePatch, type PatchOptions } from './code-patch.js';
import { runDeallocActions, runFinalizeActions, type WrapperCallRunner } from '../protocol/alloc-actions.js';
import { ReservationTable, type Reservation as ReservationRecord } from './reservation-table.js';

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
const EXEC_DEFAULT = native.PROT_RX;

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

/** Runs an alloc action in this process: a real function with LLVM's wrapper ABI. */
const runInProcess: WrapperCallRunner = (call) => native.callWrapper(call.fn, call.args);

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

export class DualMappedMemoryMapper {
  readonly pageSize = native.pageSize();
  private readonly table = new ReservationTable<Region>();
  private readonly mappings = new Map<number, Mapping>();
  private closed = false;

  async reserve(bytes: number): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
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
    this.table.add(start, bytes);
    this.mappings.set(start, { writable });
    return { start, end: start + bytes };
  }

  prepare(addr: number, size: number): Uint8Array {
    this.checkOpen();
    checkAddress('addr', addr);
    checkSize('size', size);
    const r = this.table.of(addr, size, 'prepare');
    this.table.checkPrepare(r, addr, size);
    const v = native.view(this.writableAddress(r, addr), size);
    this.table.addView(r, addr, v);
    return v;
  }

  async initialize(info: AllocInfo): Promise<number> {
    this.checkOpen();
    const { key, end } = checkAllocInfo(info, this.pageSize);
    const r = this.table.of(key, end - key, 'initialize');
    this.table.checkInitialize(r, key, end);
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
      const deallocs = runFinalizeActions(info.actions, runInProcess);
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
    const targets = patches.map((p) => this.patchTarget(p.address, p.bytes.length));
    for (const [i, p] of patches.entries()) native.copyIn(this.writableAddress(targets[i]!.reservation, p.address), p.bytes);
    for (const [i, p] of patches.entries()) if (targets[i]!.segment.prot & native.PROT_X) native.flushICache(p.address, p.bytes.length);
  }

  async deinitialize(keys: readonly number[]): Promise<void> {
    this.checkOpen();
    const errors: unknown[] = [];
    // Reverse order, as LLVM: the last region initialized is the first torn down.
    for (const key of [...keys].reverse()) {
      try {
        checkAddress('key', key);
        const r = this.table.of(key, 0, 'deinitialize');
        const region = r.regions.get(key);
        if (region) {
          this.teardown(r, region);
        } else if (!this.table.dropViewsAt(r, key)) {
          throw new JitmemError('ERR_UNKNOWN_KEY', `deinitialize: ${hex(key)} is neither an initialized region nor prepared working memory`, { key });
        }
      } catch (err) {
        errors.push(err);
      }
    }
    throwCollected(errors, 'deinitialize');
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    const errors: unknown[] = [];
    for (const base of [...bases].reverse()) {
      try {
        checkAddress('base', base);
        const r = this.table.byStart.get(base);
        if (!r) throw new JitmemError('ERR_UNKNOWN_RESERVATION', `release: ${hex(base)} is not the start of a reservation`, { base });
        this.releaseReservation(r);
      } catch (err) {
        errors.push(err);
      }
    }
    throwCollected(errors, 'release');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const errors: unknown[] = [];
    for (const r of [...this.table.byStart.values()].reverse()) {
      try {
        this.releaseReservation(r);
      } catch (err) {
        errors.push(err);
      }
    }
    this.closed = true;
    throwCollected(errors, 'close');
  }

  /** The writing view's address of target address `addr` of reservation `r`. */
  private writableAddress(r: Reservation, addr: number): number {
    return this.mappings.get(r.start)!.writable + (addr - r.start);
  }

  /** The reservation and initialized segment that hold all of [address, address + size). */
  private patchTarget(address: number, size: number): { reservation: Reservation; segment: Segment } {
    const reservation = this.table.of(address, size, 'patchCode');
    for (const region of reservation.regions.values()) {
      if (address < region.key || address >= region.end) continue;
      const segment = region.segments.find((s) => address >= s.start && address < s.start + s.length);
      if (!segment) break;
      if (address + size > segment.start + segment.length) {
        throw new JitmemError(
          'ERR_PATCH_OUT_OF_SEGMENT',
          `patchCode: [${hex(address)}, ${hex(address + size)}) runs past its segment [${hex(segment.start)}, ${hex(segment.start + segment.length)})`,
          { address, size },
        );
      }
      return { reservation, segment };
    }
    throw new JitmemError('ERR_NOT_INITIALIZED', `patchCode: ${hex(address)} is not inside an initialized segment`, { address, size });
  }

  private releaseReservation(r: Reservation): void {
    const errors: unknown[] = [];
    for (const region of [...r.regions.values()].reverse()) {
      try {
        this.teardown(r, region);
      } catch (err) {
        errors.push(err);
      }
    }
    this.table.detachViews(r, r.start, r.end);
    const size = r.end - r.start;
    const mapping = this.mappings.get(r.start)!;
    this.table.byStart.delete(r.start);
    this.mappings.delete(r.start);
    native.unmap(r.start, size);
    native.unmap(mapping.writable, size);
    throwCollected(errors, 'release');
  }

  /** Runs a region's dealloc actions, puts its data pages back to the default and forgets it. */
  private teardown(r: Reservation, region: Region): void {
    r.regions.delete(region.key);
    try {
      runDeallocActions(region.deallocs, runInProcess);
    } finally {
      restoreDefault(region.changed);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MAPPER_CLOSED', 'this DualMappedMemoryMapper is closed', {});
  }
}
