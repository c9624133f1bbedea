import { hex } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import type { WrapperCall } from '../protocol/alloc-actions.js';
import { RemoteError } from './remote-error.js';

/**
 * Everything the executor has mapped for its controller, with the protection of every page.
 * Each wire request that names memory is checked here before the executor touches a byte, so
 * that no request, however wrong, can make this process fault: LLVM's executor trusts its
 * controller and writes first (spec §5.1 pitfall); we check first.
 */

export const PROT_R = 1;
export const PROT_W = 2;
export const PROT_X = 4;

export interface Region {
  readonly start: number;
  readonly end: number;
  /** Page-rounded segment ranges and the protection each has while the region lives. */
  readonly segments: ReadonlyArray<{ addr: number; size: number; prot: number }>;
  /** Dealloc actions of the finalize actions that ran, in the order they ran. */
  readonly deallocs: WrapperCall[];
}

export interface Reservation {
  readonly kind: 'anonymous' | 'shared';
  readonly base: number;
  /** The size the controller asked for: the bounds every request is checked against. */
  readonly size: number;
  /** The size actually mapped (page-rounded). */
  readonly mappedSize: number;
  /** The protection of every page no live region covers. */
  readonly defaultProt: number;
  /** Initialized regions by key (their lowest address). */
  readonly regions: Map<number, Region>;
  /** For shared reservations: the shm name, until it has been unlinked. */
  shmName: string | null;
}

/** Page protections are derived from the live regions, so a 1 GiB slab costs no per-page table. */
export class AddressSpace {
  /** Sorted by base; reservations never overlap (the kernel placed them). */
  private readonly list: Reservation[] = [];
  /** Where new reservations must lie, when the controller asked for a window. */
  reserveWindow: { readonly start: number; readonly end: number } | null = null;

  constructor(readonly pageSize: number) {}

  add(kind: Reservation['kind'], base: number, size: number, defaultProt: number, shmName: string | null = null): Reservation {
    const mappedSize = alignUp(Math.max(size, 1), this.pageSize);
    const res: Reservation = { kind, base, size, mappedSize, defaultProt, regions: new Map(), shmName };
    this.list.splice(this.indexAfter(base), 0, res);
    return res;
  }

  remove(res: Reservation): void {
    const i = this.list.indexOf(res);
    if (i >= 0) this.list.splice(i, 1);
  }

  all(): readonly Reservation[] {
    return this.list;
  }

  byBase(base: number): Reservation | undefined {
    const r = this.containing(base);
    return r && r.base === base ? r : undefined;
  }

  /** The reservation whose requested range holds `addr`, if any. */
  containing(addr: number): Reservation | undefined {
    const i = this.indexAfter(addr) - 1;
    const r = this.list[i];
    return r && addr >= r.base && addr < r.base + r.size ? r : undefined;
  }

  /**
   * The reservation that holds all of [addr, addr+size), or an error naming the range. `what`
   * may be a function, so that hot callers build their description only when it is needed.
   */
  requireRange(addr: number, size: number, describe: string | (() => string)): Reservation {
    const what = () => (typeof describe === 'string' ? describe : describe());
    const end = addr + size;
    const r = this.containing(addr) ?? (size === 0 ? this.containingEnd(addr) : undefined);
    if (!r) {
      throw new RemoteError('ERR_OUT_OF_RESERVATION', `${what()} [${hex(addr)}, ${hex(end)}) is not inside any reservation of this executor`);
    }
    if (end > r.base + r.size) {
      throw new RemoteError(
        'ERR_OUT_OF_RESERVATION',
        `${what()} [${hex(addr)}, ${hex(end)}) runs ${end - (r.base + r.size)} bytes past the end of its reservation [${hex(r.base)}, ${hex(r.base + r.size)})`,
      );
    }
    return r;
  }

  private containingEnd(addr: number): Reservation | undefined {
    const r = this.list[this.indexAfter(addr - 1) - 1];
    return r && addr === r.base + r.size ? r : undefined;
  }

  /** Throws unless [addr, addr+size) lies in one reservation and every page of it allows `need`. */
  requireAccess(addr: number, size: number, need: number, describe: string | (() => string)): Reservation {
    const r = this.requireRange(addr, size, describe);
    const what = () => (typeof describe === 'string' ? describe : describe());
    if (size === 0) return r;
    const lo = addr - (addr % this.pageSize);
    const hi = alignUp(addr + size, this.pageSize);
    // Pieces of [lo, hi) that live segments cover, with their protections.
    const covered: Array<{ start: number; end: number; prot: number }> = [];
    for (const region of r.regions.values()) {
      if (region.end <= lo || alignUp(region.end, this.pageSize) <= lo || region.start >= hi) continue;
      for (const s of region.segments) {
        const sEnd = alignUp(s.addr + s.size, this.pageSize);
        if (s.size > 0 && s.addr < hi && sEnd > lo) covered.push({ start: Math.max(s.addr, lo), end: Math.min(sEnd, hi), prot: s.prot });
      }
    }
    covered.sort((a, b) => a.start - b.start);
    let at = lo;
    const deny = (page: number, prot: number): never => {
      throw new RemoteError(
        'ERR_ACCESS_DENIED',
        `${what()} [${hex(addr)}, ${hex(addr + size)}) needs ${protText(need)} access but the page at ${hex(page)} is ${protText(prot)}`,
      );
    };
    for (const c of covered) {
      if (c.start > at && (r.defaultProt & need) !== need) deny(at, r.defaultProt);
      if ((c.prot & need) !== need) deny(c.start, c.prot);
      at = Math.max(at, c.end);
    }
    if (at < hi && (r.defaultProt & need) !== need) deny(at, r.defaultProt);
    return r;
  }

  private indexAfter(addr: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]!.base <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export function protText(prot: number): string {
  return (prot & PROT_R ? 'r' : '-') + (prot & PROT_W ? 'w' : '-') + (prot & PROT_X ? 'x' : '-');
}
