import { JitmemError, eachCollected, hex } from '../core/errors.js';
import { checkAddress } from '../core/checks.js';
import { MapperBase } from './mapper-base.js';
import type { RegionRecord, Reservation } from './reservation-table.js';

/**
 * What the mappers whose target memory is in this process (in-process, dual-mapped) do alike
 * when memory goes back: regions are torn down newest first, each key handled even when
 * another fails, and a key that names only prepared working memory just drops it. A subclass
 * says how one region is torn down and how one reservation is given back.
 */
export abstract class LocalMemoryMapper<R extends RegionRecord> extends MapperBase<R> {
  /** Runs a live region's dealloc actions and puts its pages back as a fresh reservation has them. */
  protected abstract teardown(r: Reservation<R>, region: R): void;

  /** Tears down whatever is left in `r` and unmaps it. */
  protected abstract releaseReservation(r: Reservation<R>): void;

  async deinitialize(keys: readonly number[]): Promise<void> {
    this.checkOpen();
    // Reverse order, as LLVM: the last region initialized is the first torn down.
    eachCollected([...keys].reverse(), 'deinitialize', (key) => {
      checkAddress('key', key);
      const r = this.table.of(key, 0, 'deinitialize');
      const region = r.regions.get(key);
      if (region) this.teardown(r, region);
      else if (!this.table.dropViewsAt(r, key)) {
        throw new JitmemError('ERR_UNKNOWN_KEY', `deinitialize: ${hex(key)} is neither an initialized region nor prepared working memory`, { key });
      }
    });
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    eachCollected([...bases].reverse(), 'release', (base) => this.releaseReservation(this.reservationAt(base)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      eachCollected([...this.table.byStart.values()].reverse(), 'close', (r) => this.releaseReservation(r));
    } finally {
      this.closed = true;
    }
  }
}
