import * as native from '../native/index.js';
import { checkPatchBatch, groupBySegment, segmentHolding, type CodePatch, type PatchOptions } from './code-patch.js';
import { LocalMemoryMapper, type LocalRegion } from './local-memory-mapper.js';
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

interface Mapping {
  /** The writing view's address of the reservation's first byte. */
  readonly writable: number;
}

type Reservation = ReservationRecord<LocalRegion>;

let nextObject = 0;

export class DualMappedMemoryMapper extends LocalMemoryMapper {
  readonly pageSize = native.pageSize();
  protected readonly defaultProt = EXEC_DEFAULT;
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
    this.trackReservation(start, bytes);
    return start;
  }

  protected workingMemory(r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(this.writableAddress(r, addr), size);
  }

  protected override localWorkingAddress(r: Reservation, addr: number): number {
    return this.writableAddress(r, addr);
  }

  protected zeroFill(r: Reservation, addr: number, length: number): void {
    native.fill(this.writableAddress(r, addr), length, 0);
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
    this.settle();
    const holders = new Map<CodePatch, Reservation>();
    const groups = groupBySegment(patches, (p) => {
      const r = this.table.of(p.address, p.bytes.length, 'patchCode');
      holders.set(p, r);
      return segmentHolding(r.regions.at(p.address), p.address, p.bytes.length);
    });
    for (const p of patches) native.copyIn(this.writableAddress(holders.get(p)!, p.address), p.bytes);
    for (const [segment, group] of groups)
      if (segment.prot & native.PROT_X) for (const p of group) native.flushICache(p.address, p.bytes.length);
  }

  /** The writing view's address of target address `addr` of reservation `r`. */
  private writableAddress(r: Reservation, addr: number): number {
    return this.mappings.get(r.start)!.writable + (addr - r.start);
  }

  protected unmapReservation(r: Reservation): void {
    const size = r.end - r.start;
    const mapping = this.mappings.get(r.start)!;
    this.mappings.delete(r.start);
    native.unmap(r.start, size);
    native.unmap(mapping.writable, size);
  }
}
