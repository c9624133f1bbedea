import * as native from '../native/index.js';
import { JitmemError, eachCollected, hasCode, hex, throwCollected } from '../core/errors.js';
import { alignUp, checkAddress } from '../core/checks.js';
import type { AllocActionCallPair, AllocInfo, WrapperCall } from './memory-mapper.js';
import { MapperBase } from './mapper-base.js';
import { CallCoalescer, PendingCalls } from './call-coalescer.js';
import { PageProtectionRuns, type ProtectionRange } from './page-protection-runs.js';
import { runDeallocActions, runFinalizeActions, type ActionCallSite } from '../protocol/alloc-actions.js';
import type { Reservation } from './reservation-table.js';

/**
 * What the mappers whose target memory is in this process (in-process, dual-mapped) do alike.
 *
 * Protections go by run, not by segment. Each reservation keeps the protection of every page
 * (PageProtectionRuns), so a page that already has its protection costs no call, and pages
 * that get one protection share a call when nothing between them differs. Initializes issued
 * together (a linker finalizing a program's graphs, a JIT with several finalizes in flight)
 * are protected together, and deinitializes issued together put their pages back together,
 * when the CallCoalescer says (at the end of the event loop's turn, or of the current job for
 * a caller that waits for each call) or as soon as another call of this mapper needs them
 * done: neighbouring allocations whose segments meet with one protection (the slab lays them
 * out so they do) take one call between them. A call only ever sets the one protection its
 * pages end with, so W^X holds at every moment: no page is writable and executable unless a
 * segment asks for it.
 *
 * Regions are torn down newest first, each key handled even when another fails, and a key
 * that names only prepared working memory just drops it.
 */

/** A page-rounded segment of a region with its protection. */
export interface LocalSegment {
  readonly start: number;
  /** Page-rounded. */
  readonly length: number;
  readonly prot: number;
}

export interface LocalRegion {
  readonly key: number;
  readonly end: number;
  readonly segments: readonly LocalSegment[];
  deallocs: readonly WrapperCall[];
}

interface PendingInitialize {
  readonly r: Reservation<LocalRegion>;
  readonly region: LocalRegion;
  readonly actions: readonly AllocActionCallPair[];
  readonly resolve: (key: number) => void;
  readonly reject: (err: unknown) => void;
}

/** Alloc actions run in this process: real functions with LLVM's wrapper ABI. */
const inProcess: ActionCallSite = {
  invoke: (call) => native.callWrapper(call.fn, call.args),
  failure: (message, call) => new JitmemError('ERR_ALLOC_ACTION_FAILED', message, { fn: call.fn }),
};

function rangesOf(segments: readonly LocalSegment[], prot?: number): ProtectionRange[] {
  return segments.map((s) => ({ start: s.start, end: s.start + s.length, prot: prot ?? s.prot }));
}

export abstract class LocalMemoryMapper extends MapperBase<LocalRegion> {
  /** The protection a page of a fresh reservation has at its target address, and gets back at deinitialize. */
  protected abstract readonly defaultProt: number;
  /** Page protections of each reservation, by its start. */
  private readonly protections = new Map<number, PageProtectionRuns>();
  private pending: PendingInitialize[] = [];
  /** One coalescer per kind of call: a caller may issue its finalizes together and its frees one at a time. */
  private readonly initializes = new CallCoalescer(
    () => this.settle(),
    () => this.pending.length,
  );
  protected readonly deinitializes = new PendingCalls<readonly number[]>(() => this.settle());

  /** Writes `length` zero bytes at target address `addr` of reservation `r`. */
  protected abstract zeroFill(r: Reservation<LocalRegion>, addr: number, length: number): void;

  /** Unmaps reservation `r` (its regions are already torn down). */
  protected abstract unmapReservation(r: Reservation<LocalRegion>): void;

  /** Records a fresh reservation's pages, all at the default protection. */
  protected trackReservation(start: number, bytes: number): void {
    this.protections.set(start, new PageProtectionRuns(start, start + bytes, this.defaultProt));
  }

  /** The page-protection record of the reservation that starts at `start` (for tests and tools). */
  pageProtections(start: number): PageProtectionRuns | undefined {
    this.settle();
    return this.protections.get(start);
  }

  initialize(info: AllocInfo): Promise<number> {
    let r: Reservation<LocalRegion>;
    let key: number;
    let end: number;
    try {
      try {
        ({ r, key, end } = this.beginInitialize(info));
      } catch (err) {
        // A region deinitialized but not yet settled still holds its range: settle and look again.
        if (this.deinitializes.length === 0 || !hasCode(err, 'ERR_REGION_OVERLAP')) throw err;
        this.settle();
        ({ r, key, end } = this.beginInitialize(info));
      }
    } catch (err) {
      return Promise.reject(err);
    }
    // Every check passed: from here on bytes change. Working memory loses its window first, so
    // that no view can reach pages that are about to become read-only or executable.
    this.table.detachViews(r, key, end);
    const segments: LocalSegment[] = [];
    for (const seg of info.segments) {
      const start = info.mappingBase + seg.offset;
      if (seg.zeroFillSize > 0) this.zeroFill(r, start + seg.contentSize, seg.zeroFillSize);
      const length = alignUp(seg.contentSize + seg.zeroFillSize, this.pageSize);
      if (length > 0) segments.push({ start, length, prot: seg.group.prot });
    }
    // The region is recorded now, so overlapping initializes and prepares are refused at once.
    const region: LocalRegion = { key, end, segments, deallocs: [] };
    r.regions.set(key, region);
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ r, region, actions: info.actions, resolve, reject });
      this.initializes.schedule();
    });
  }

  /** Working memory, once any deinitialize of the range that is still pending has been carried out. */
  override prepare(addr: number, size: number): Uint8Array {
    return this.afterPendingFrees(() => super.prepare(addr, size));
  }

  override prepareLocal(addr: number, size: number): number | undefined {
    return this.afterPendingFrees(() => super.prepareLocal(addr, size));
  }

  private afterPendingFrees<T>(prepare: () => T): T {
    try {
      return prepare();
    } catch (err) {
      if (this.deinitializes.length === 0 || !hasCode(err, 'ERR_RANGE_INITIALIZED')) throw err;
      this.settle();
      return prepare();
    }
  }

  /** Carries out every pending call: initializes first (a pending deinitialize may name one), then deinitializes. */
  protected settle(): void {
    this.settleInitializes();
    this.settleDeinitializes();
  }

  /**
   * Carries out the initializes issued so far: their protections in one pass per reservation,
   * then the I-cache flushes, then each one's finalize actions in the order they were issued.
   */
  private settleInitializes(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const byReservation = new Map<Reservation<LocalRegion>, PendingInitialize[]>();
    for (const p of batch) {
      const list = byReservation.get(p.r);
      if (list) list.push(p);
      else byReservation.set(p.r, [p]);
    }
    const failed = new Map<PendingInitialize, unknown>();
    for (const [r, items] of byReservation) {
      const runs = this.protections.get(r.start)!;
      try {
        this.apply(
          runs,
          items.flatMap((p) => rangesOf(p.region.segments)),
        );
      } catch (err) {
        // Put every page of these regions back as a fresh reservation has them.
        for (const p of items) {
          this.force(runs, rangesOf(p.region.segments, this.defaultProt));
          failed.set(p, err);
        }
      }
    }
    for (const p of batch) {
      const err = failed.get(p);
      if (err !== undefined) {
        p.r.regions.delete(p.region.key);
        p.reject(err);
        continue;
      }
      try {
        // The bytes came in through the data side: where the I-cache is not coherent (AArch64)
        // the lines of code must be invalidated (a no-op on x86-64).
        for (const s of p.region.segments) if (s.prot & native.PROT_X) native.flushICache(s.start, s.length);
        p.region.deallocs = runFinalizeActions(p.actions, inProcess);
      } catch (err) {
        p.r.regions.delete(p.region.key);
        try {
          this.apply(this.protections.get(p.r.start)!, rangesOf(p.region.segments, this.defaultProt));
        } catch {
          // The action's failure is the one reported; apply made the record forget what failed.
        }
        p.reject(err);
        continue;
      }
      p.resolve(p.region.key);
    }
  }

  /**
   * Records the ranges' protections and makes the fewest calls that set them. When a call fails,
   * the pages of the calls not done are forgotten by the record (it cannot know what a failed
   * mprotect left), so that no later change skips them.
   */
  private apply(runs: PageProtectionRuns, ranges: readonly ProtectionRange[]): void {
    const calls = runs.change(ranges);
    for (const [i, call] of calls.entries()) {
      try {
        native.protect(call.start, call.length, call.prot);
      } catch (err) {
        for (const c of calls.slice(i)) runs.forget(c.start, c.start + c.length);
        throw err;
      }
    }
  }

  /** Sets each range's protection with a call of its own, whatever the record says (after a failure). */
  private force(runs: PageProtectionRuns, ranges: readonly ProtectionRange[]): void {
    for (const range of ranges) {
      try {
        native.protect(range.start, range.end - range.start, range.prot);
        runs.change([range]);
      } catch {
        // Best effort: the first error is the one reported; the record forgets these pages.
        runs.forget(range.start, range.end);
      }
    }
  }

  /**
   * Deinitializes issued together (the frees of a JIT's old versions) run their dealloc actions
   * in the order they were issued, each one's keys newest first as LLVM does, and then put all
   * their pages back in one pass.
   */
  private settleDeinitializes(): void {
    if (this.deinitializes.length === 0) return;
    const batch = this.deinitializes.take();
    const errors = batch.map((): unknown[] => []);
    /** Ranges to put back per reservation, and the calls (by batch index) they came from. */
    const restore = new Map<number, { ranges: ProtectionRange[]; from: Set<number> }>();
    batch.forEach((entry, i) => {
      // Reverse order, as LLVM: the last region initialized is the first torn down.
      for (const key of [...entry.call].reverse()) {
        try {
          checkAddress('key', key);
          const r = this.table.of(key, 0, 'deinitialize');
          const region = r.regions.get(key);
          if (region) {
            r.regions.delete(key);
            let put = restore.get(r.start);
            if (!put) restore.set(r.start, (put = { ranges: [], from: new Set() }));
            put.ranges.push(...rangesOf(region.segments, this.defaultProt));
            put.from.add(i);
            throwCollected(runDeallocActions(region.deallocs, inProcess), 'dealloc actions');
          } else if (!this.table.dropViewsAt(r, key)) {
            throw new JitmemError(
              'ERR_UNKNOWN_KEY',
              `deinitialize: ${hex(key)} is neither an initialized region nor prepared working memory`,
              { key },
            );
          }
        } catch (err) {
          errors[i]!.push(err);
        }
      }
    });
    // Every region's pages go back together, whatever their actions did.
    for (const [start, { ranges, from }] of restore) {
      try {
        this.apply(this.protections.get(start)!, ranges);
      } catch (err) {
        for (const i of from) errors[i]!.push(err);
      }
    }
    batch.forEach((entry, i) => {
      try {
        throwCollected(errors[i]!, 'deinitialize');
        entry.resolve();
      } catch (err) {
        entry.reject(err);
      }
    });
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    this.settle();
    eachCollected([...bases].reverse(), 'release', (base) => this.releaseReservation(this.reservationAt(base)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.settle();
    try {
      eachCollected([...this.table.byStart.values()].reverse(), 'close', (r) => this.releaseReservation(r));
    } finally {
      this.closed = true;
    }
  }

  /** Runs the dealloc actions of whatever is left in `r` and unmaps it (its pages go with it: no mprotect). */
  private releaseReservation(r: Reservation<LocalRegion>): void {
    try {
      eachCollected([...r.regions.values()].reverse(), 'release', (region) => {
        r.regions.delete(region.key);
        throwCollected(runDeallocActions(region.deallocs, inProcess), 'dealloc actions');
      });
    } finally {
      this.table.detachViews(r, r.start, r.end);
      this.table.byStart.delete(r.start);
      this.protections.delete(r.start);
      this.unmapReservation(r);
    }
  }
}
