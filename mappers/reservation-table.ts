import * as native from '../native/index.js';
import { JitmemError, hasCode, hex } from '../core/errors.js';
import { checkAddress } from '../core/checks.js';
import { RegionIndex, type RegionRecord } from './region-index.js';

export type { RegionRecord } from './region-index.js';

export interface Reservation<R extends RegionRecord = RegionRecord> {
  readonly start: number;
  readonly end: number;
  /** Live working memory by address; detached when its pages are initialized or given back. */
  readonly views: Map<number, Uint8Array[]>;
  /** Regions initialized through this mapper, by key. */
  readonly regions: RegionIndex<R>;
  /**
   * Regions whose initialize was sent and not yet answered (remote mappers record a region when
   * the executor answers): an initialize that overlaps one is refused as if it were recorded, so
   * that recorded regions never overlap, whatever the executor checks.
   */
  readonly initializing: RegionIndex<RegionRecord>;
}

/**
 * A mapper's record of its reservations, the working memory it handed out and the regions it
 * initialized, shared by all three mappers. Every range is checked here before anything is
 * written or sent.
 */
export class ReservationTable<R extends RegionRecord = RegionRecord> {
  readonly byStart = new Map<number, Reservation<R>>();
  /** The reservation `of` found last (checked against byStart before it is trusted again). */
  private last: Reservation<R> | undefined;

  add(start: number, size: number): Reservation<R> {
    const r: Reservation<R> = {
      start,
      end: start + size,
      views: new Map(),
      regions: new RegionIndex<R>(),
      initializing: new RegionIndex(),
    };
    this.byStart.set(start, r);
    return r;
  }

  of(addr: number, size: number, op: string): Reservation<R> {
    // Calls come in runs on one reservation (a slab's allocations): the last one found is
    // tried first, if it is still held.
    const last = this.last;
    if (last !== undefined && addr >= last.start && addr < last.end && addr + size <= last.end) {
      if (this.byStart.get(last.start) === last) return last;
    }
    for (const r of this.byStart.values()) {
      if (addr >= r.start && addr < r.end) {
        if (addr + size > r.end) {
          throw new JitmemError(
            'ERR_OUT_OF_RESERVATION',
            `${op}: [${hex(addr)}, ${hex(addr + size)}) runs past the end of its reservation [${hex(r.start)}, ${hex(r.end)})`,
            {
              addr,
              size,
              reservation: r.start,
            },
          );
        }
        this.last = r;
        return r;
      }
    }
    throw new JitmemError(
      'ERR_OUT_OF_RESERVATION',
      `${op}: ${hex(addr)} is not inside any reservation of this mapper`,
      { addr, size },
    );
  }

  checkPrepare(r: Reservation<R>, addr: number, size: number): void {
    const hit = r.regions.overlapping(addr, addr + size);
    if (hit) {
      throw new JitmemError(
        'ERR_RANGE_INITIALIZED',
        `prepare: [${hex(addr)}, ${hex(addr + size)}) overlaps the initialized region at ${hex(hit.key)}; deinitialize it first`,
        {
          addr,
          size,
          region: hit.key,
        },
      );
    }
  }

  checkInitialize(r: Reservation<R>, key: number, end: number): void {
    const recorded = r.regions.overlapping(key, end);
    const hit = recorded ?? r.initializing.overlapping(key, end);
    if (hit) {
      throw new JitmemError(
        'ERR_REGION_OVERLAP',
        `initialize: region [${hex(key)}, ${hex(end)}) overlaps the ${recorded ? 'initialized region' : 'region being initialized'} [${hex(hit.key)}, ${hex(hit.region.end)})`,
        {
          key,
          end,
          other: hit.key,
        },
      );
    }
  }

  /**
   * Records working memory handed out at `addr` with no view yet (prepareLocal): initialize and
   * deinitialize find it as they find views.
   */
  markPrepared(r: Reservation<R>, addr: number): void {
    if (!r.views.has(addr)) r.views.set(addr, []);
  }

  addView(r: Reservation<R>, addr: number, v: Uint8Array): void {
    const list = r.views.get(addr);
    if (list) list.push(v);
    else r.views.set(addr, [v]);
  }

  detachViews(r: Reservation<R>, start: number, end: number): void {
    const views = r.views;
    if (views.size === 0) return;
    // Keys only, and each list looked up where it is detached (most views lie elsewhere).
    for (const addr of views.keys()) {
      if (addr >= start && addr < end) {
        const list = views.get(addr)!;
        for (let i = 0; i < list.length; i++) native.detach(list[i]!);
        views.delete(addr);
      }
    }
  }

  dropViewsAt(r: Reservation<R>, addr: number): boolean {
    const list = r.views.get(addr);
    if (!list) return false;
    for (const v of list) native.detach(v);
    r.views.delete(addr);
    return true;
  }
}

/** A patch must lie inside one initialized region of one reservation of this mapper. */
export function checkPatchTarget(table: ReservationTable, address: number, size: number): void {
  const r = table.of(address, size, 'patchCode');
  if (r.regions.holding(address, size)) return;
  throw new JitmemError(
    'ERR_NOT_INITIALIZED',
    `patchCode: [${hex(address)}, ${hex(address + size)}) is not inside an initialized region`,
    { address, size },
  );
}

/**
 * Sorts the keys of one deinitialize: initialized regions (`remote`, for the executor), keys of
 * working memory that was only prepared (an abandoned allocation: dropped here at once) and
 * errors (unknown keys, or keys `claimed` already by an earlier deinitialize sent with this one).
 */
export function sortKeys(
  table: ReservationTable,
  keys: readonly number[],
  claimed?: Set<number>,
): { remote: number[]; errors: unknown[] } {
  const errors: unknown[] = [];
  const remote: number[] = [];
  for (const key of keys) {
    try {
      checkAddress('key', key);
      const r = table.of(key, 0, 'deinitialize');
      if (r.regions.has(key) && !claimed?.has(key)) {
        remote.push(key);
        claimed?.add(key);
      } else if (!table.dropViewsAt(r, key)) {
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
  return { remote, errors };
}

/**
 * Sends the keys of initialized regions to the executor in one call (`send`) and forgets the
 * regions here once it has answered. A failing dealloc action still ends its region; a refusal
 * (unknown key, code still running) leaves every region as it was. Resolves with the error, or
 * null.
 */
export async function sendDeinitialize(
  table: ReservationTable,
  remote: readonly number[],
  send: (remote: readonly number[]) => Promise<void>,
): Promise<unknown> {
  let forget = true;
  let error: unknown = null;
  try {
    await send(remote);
  } catch (err) {
    error = err;
    forget = hasCode(err, 'ERR_ALLOC_ACTION_FAILED');
  } finally {
    if (forget) for (const key of remote) table.of(key, 0, 'deinitialize').regions.delete(key);
  }
  return error;
}
