import * as native from '../native/index.js';
import { hex } from '../core/errors.js';
import { contentLength, type WireFinalizeRequest, type WireSegment } from '../protocol/sps.js';
import { runDeallocActions, runFinalizeActions, type WrapperCall } from '../protocol/alloc-actions.js';
import type { ExecutorActionSite } from './actions.js';
import { AddressSpace, PROT_W, PROT_X, type Region, type Reservation } from './address-space.js';
import { RemoteError } from './remote-error.js';

/**
 * Initialize / deinitialize of a region, shared by the memory manager (which copies content)
 * and the shared-memory service (whose content is already in place). A request is checked as a
 * whole before anything changes: its segments (page-aligned, inside one reservation, apart from
 * each other and from every live region, content that fits), then every alloc action against
 * the memory as it will be once the region is live. A zero-size segment is checked like the
 * others and then ignored: it has no pages, so it gets no protection and no part of the region
 * record (it could otherwise sit at the base of a live region and take its record's place).
 * Only then is a byte written; a failure after that (an action) undoes what was done.
 */

export interface InitializeOptions {
  /** Copy each segment's content and zero its tail (the memory manager); false when the controller already did (shared memory). */
  readonly copyContent: boolean;
  /** Only accept segments inside this reservation (shared memory names its reservation). */
  readonly reservation?: Reservation;
}

interface Plan {
  readonly reservation: Reservation;
  /** The segments with pages, in request order. */
  readonly segments: WireSegment[];
  readonly start: number;
  readonly end: number;
}

/** Every check of a finalize request that needs no change to memory; throws the first refusal. */
function planRegion(space: AddressSpace, actions: ExecutorActionSite, fr: WireFinalizeRequest, options: InitializeOptions): Plan {
  if (fr.segments.length === 0) {
    throw new RemoteError('ERR_EMPTY_FINALIZE_REQUEST', fr.actions.length > 0 ? 'finalization actions attached to an empty finalization request' : 'finalization request is empty');
  }
  const page = space.pageSize;
  let res: Reservation | undefined = options.reservation;
  for (const [i, s] of fr.segments.entries()) {
    const what = `segment ${i}`;
    if (s.addr % page !== 0) throw new RemoteError('ERR_UNALIGNED_SEGMENT', `${what} address ${hex(s.addr)} is not page-aligned (page size ${page})`);
    if (options.copyContent && contentLength(s) > s.size) {
      throw new RemoteError('ERR_CONTENT_TOO_LARGE', `${what} at ${hex(s.addr)}: content size (${contentLength(s)}) exceeds segment size (${s.size})`);
    }
    if (!Number.isSafeInteger(s.addr + s.size)) throw new RemoteError('ERR_OUT_OF_RESERVATION', `${what} at ${hex(s.addr)} with size ${s.size} wraps the address space`);
    const r = space.requireRange(s.addr, s.size, what);
    if (res && r !== res) {
      throw new RemoteError('ERR_OUT_OF_RESERVATION', `${what} [${hex(s.addr)}, ${hex(s.addr + s.size)}) is not inside reservation ${hex(res.base)}; all segments of a region must lie in one reservation`);
    }
    res = r;
  }
  const segments = fr.segments.filter((s) => s.size > 0);
  if (segments.length === 0) {
    throw new RemoteError('ERR_EMPTY_FINALIZE_REQUEST', `all ${fr.segments.length} segment(s) of the finalization request are empty: there is nothing to initialize`);
  }
  const sorted = [...segments].sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.addr + prev.size > cur.addr) {
      throw new RemoteError('ERR_OVERLAPPING_SEGMENTS', `segments [${hex(prev.addr)}, ${hex(prev.addr + prev.size)}) and [${hex(cur.addr)}, ${hex(cur.addr + cur.size)}) overlap`);
    }
  }
  const reservation = res!;
  const start = sorted[0]!.addr;
  const last = sorted[sorted.length - 1]!;
  const end = last.addr + last.size;
  for (const other of reservation.regions.values()) {
    if (start < other.end && other.start < end) {
      throw new RemoteError('ERR_REGION_OVERLAP', `in initialize, region [${hex(start)}, ${hex(end)}) overlaps previous region [${hex(other.start)}, ${hex(other.end)})`);
    }
  }
  // Pages the region covers must be writable now: a page still protected by a region that
  // shares it would fault on the copy.
  if (options.copyContent) {
    for (const s of segments) space.requireAccess(s.addr, s.size, PROT_W, () => `segment at ${hex(s.addr)}`);
  }
  // The actions, against the memory as it will be: the region goes into the record for the
  // length of the check (nothing is read or written meanwhile), then out again.
  const prospective: Region = { start, end, segments: segments.map((s) => ({ addr: s.addr, size: s.size, prot: s.group & 7 })), deallocs: [] };
  reservation.regions.set(start, prospective);
  try {
    actions.checkRequest(fr.actions);
  } finally {
    reservation.regions.delete(start);
  }
  return { reservation, segments, start, end };
}

export function initializeRegion(space: AddressSpace, actions: ExecutorActionSite, fr: WireFinalizeRequest, options: InitializeOptions): Region {
  const { reservation, segments, start, end } = planRegion(space, actions, fr, options);

  const done: Array<{ addr: number; size: number; group: number }> = [];
  try {
    for (const s of segments) {
      if (options.copyContent) {
        const n = contentLength(s);
        if (s.content && n > 0) native.copyIn(s.addr, s.content);
        let at = s.addr;
        for (const piece of s.contentPieces ?? []) {
          native.copyIn(at, piece);
          at += piece.length;
        }
        if (s.size > n) native.fill(s.addr + n, s.size - n, 0);
      }
      // Pages of a region belong to it alone and start at the reservation's protection, so a
      // segment that keeps that protection needs no mprotect (nor one to restore it).
      if ((s.group & 7) !== reservation.defaultProt) native.protect(s.addr, s.size, s.group & 7);
      done.push(s);
      if (s.group & PROT_X) native.flushICache(s.addr, s.size);
    }
  } catch (err) {
    restoreProt(reservation, done);
    throw new RemoteError('ERR_PROTECT_FAILED', `initialize of region [${hex(start)}, ${hex(end)}) failed: ${(err as Error).message}`);
  }

  // The region is live before its actions run: they may need to reach its memory (the trace
  // log, the .eh_frame section), and the access checks look at live regions.
  const region: Region = { start, end, segments: segments.map((s) => ({ addr: s.addr, size: s.size, prot: s.group & 7 })), deallocs: [] };
  reservation.regions.set(start, region);
  try {
    region.deallocs.push(...runFinalizeActions(fr.actions, actions));
  } catch (err) {
    // A frame an action registered before a later one failed must not outlive the region.
    actions.frames.releaseWithin(start, end);
    reservation.regions.delete(start);
    restoreProt(reservation, done);
    throw err;
  }
  return region;
}

/**
 * Runs the region's dealloc actions in reverse, puts its pages back as a fresh reservation has
 * them (RW for anonymous memory; no access for shared memory, which the controller writes
 * through its own mapping) and forgets the region, so the range can be initialized again.
 * LLVM 22 keeps the region and its protections. Returns the first dealloc failure, after
 * running all of them.
 */
export function deinitializeRegion(actions: ExecutorActionSite, reservation: Reservation, region: Region): string | null {
  const failure = runDeallocs(actions, region.deallocs);
  // Frames the dealloc actions did not take back: the unwinder must not read these pages once
  // they are writable or gone.
  actions.frames.releaseWithin(region.start, region.end);
  reservation.regions.delete(region.start);
  restoreProt(reservation, region.segments);
  return failure;
}

function restoreProt(reservation: Reservation, segments: ReadonlyArray<{ addr: number; size: number; prot?: number; group?: number }>): void {
  for (const s of segments) {
    if (s.size === 0) continue;
    const prot = s.prot ?? (s.group !== undefined ? s.group & 7 : -1);
    if (prot === reservation.defaultProt) continue;
    try {
      native.protect(s.addr, s.size, reservation.defaultProt);
    } catch {
      // mprotect of our own mapping only fails when the kernel is out of memory for VMAs;
      // nothing better to do, and the access checks never assumed more than the region had.
    }
  }
}

/** Runs dealloc calls in reverse; returns the first failure's message, or null. */
function runDeallocs(actions: ExecutorActionSite, deallocs: readonly WrapperCall[]): string | null {
  const err = runDeallocActions(deallocs, actions)[0];
  if (err === undefined) return null;
  return err instanceof RemoteError ? err.wireMessage : (err as Error).message;
}
