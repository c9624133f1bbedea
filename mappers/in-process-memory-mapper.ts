import * as native from '../native/index.js';
import { JitmemError, hex, throwCollected } from '../core/errors.js';
import { alignUp, checkAddress, checkSize } from '../core/checks.js';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from './memory-mapper.js';
import type { WrapperCall } from './memory-mapper.js';
import { checkAllocInfo, checkPatch, checkReserveSize } from './alloc-info.js';
import { runDeallocActions, runFinalizeActions, type WrapperCallRunner } from '../protocol/alloc-actions.js';
import { ReservationTable, type Reservation as ReservationRecord } from './reservation-table.js';

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

/** Runs an alloc action in this process: a real function with LLVM's wrapper ABI. */
const runInProcess: WrapperCallRunner = (call) => native.callWrapper(call.fn, call.args);

export class InProcessMemoryMapper implements MemoryMapper {
  readonly pageSize = native.pageSize();
  private readonly table = new ReservationTable<Region>();
  private closed = false;

  async reserve(bytes: number): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = native.reserve(bytes, native.PROT_RW);
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  /** reserve(), inside `window`: this process can always place its own reservations. */
  async reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = native.reserveWithin(bytes, native.PROT_RW, window.start, window.end);
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  prepare(addr: number, size: number): Uint8Array {
    this.checkOpen();
    checkAddress('addr', addr);
    checkSize('size', size);
    const r = this.table.of(addr, size, 'prepare');
    this.table.checkPrepare(r, addr, size);
    const v = native.view(addr, size);
    this.table.addView(r, addr, v);
    return v;
  }

  async initialize(info: AllocInfo): Promise<number> {
    this.checkOpen();
    const { key, end } = checkAllocInfo(info, this.pageSize);
    const r = this.table.of(key, end - key, 'initialize');
    this.table.checkInitialize(r, key, end);
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
      const deallocs = runFinalizeActions(info.actions, runInProcess);
      r.regions.set(key, { key, end, segments, deallocs });
      return key;
    } catch (err) {
      restoreWritable(segments);
      throw err;
    }
  }

  /**
   * Patches code in place: the pages under the patch get a write window (W^X is kept: they
   * are RW, not RWX, while the bytes go in), then their own protection back, then an
   * instruction-cache flush.
   */
  async patchCode(address: number, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    checkPatch(address, bytes);
    const end = address + bytes.length;
    const r = this.table.of(address, bytes.length, 'patchCode');
    let run: Region['segments'][number] | undefined;
    for (const region of r.regions.values()) {
      if (address >= region.key && address < region.end) run = region.segments.find((s) => address >= s.start && address < s.start + s.length);
    }
    if (!run) {
      throw new JitmemError('ERR_NOT_INITIALIZED', `patchCode: ${hex(address)} is not inside an initialized segment`, { address });
    }
    if (end > run.start + run.length) {
      throw new JitmemError(
        'ERR_PATCH_OUT_OF_SEGMENT',
        `patchCode: [${hex(address)}, ${hex(end)}) runs past its segment [${hex(run.start)}, ${hex(run.start + run.length)})`,
        { address, size: bytes.length },
      );
    }
    const first = address - (address % this.pageSize);
    const length = alignUp(end, this.pageSize) - first;
    native.protect(first, length, native.PROT_RW);
    try {
      native.copyIn(address, bytes);
    } finally {
      native.protect(first, length, run.prot);
    }
    if (run.prot & 4) native.flushICache(address, bytes.length);
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
          throw new JitmemError(
            'ERR_UNKNOWN_KEY',
            `deinitialize: ${hex(key)} is neither an initialized region nor prepared working memory`,
            { key },
          );
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
        if (!r) {
          throw new JitmemError('ERR_UNKNOWN_RESERVATION', `release: ${hex(base)} is not the start of a reservation`, { base });
        }
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
    native.unmap(r.start, r.end - r.start);
    this.table.byStart.delete(r.start);
    throwCollected(errors, 'release');
  }

  /** Runs a region's dealloc actions, gives its pages back their write window and forgets it. */
  private teardown(r: Reservation, region: Region): void {
    r.regions.delete(region.key);
    try {
      runDeallocActions(region.deallocs, runInProcess);
    } finally {
      restoreWritable(region.segments);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MAPPER_CLOSED', 'this InProcessMemoryMapper is closed', {});
  }
}

