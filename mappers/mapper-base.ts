import { JitmemError, hex } from '../core/errors.js';
import { checkAddress, checkSize } from '../core/checks.js';
import { checkAllocInfo, checkReserveSize } from './alloc-info.js';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from './memory-mapper.js';
import type { PendingCalls } from './call-coalescer.js';
import { ReservationTable, type RegionRecord, type Reservation } from './reservation-table.js';

/**
 * What the three mappers do alike: the reservation table, the checks every call starts with,
 * reserve's and prepare's bookkeeping. A mapper supplies where a reservation comes from and
 * what working memory is; initialize and the teardown calls stay its own, but for the queue
 * every deinitialize waits in until the mapper carries those issued together out at once.
 */
export abstract class MapperBase<R extends RegionRecord = RegionRecord> implements MemoryMapper {
  abstract readonly pageSize: number;
  protected readonly table = new ReservationTable<R>();
  protected closed = false;

  /** Reserves `bytes` of executor address space; returns its start. */
  protected abstract reserveRange(bytes: number): Promise<number>;

  /** Working memory for [addr, addr+size) of reservation `r`, already checked. */
  protected abstract workingMemory(r: Reservation<R>, addr: number, size: number): Uint8Array;

  /** Deinitializes issued and not yet carried out: each call's keys, settled by the mapper in one pass. */
  protected abstract readonly deinitializes: PendingCalls<readonly number[]>;

  abstract initialize(info: AllocInfo): Promise<number>;

  /** Queues the teardown of each key's region (see `deinitializes`); a closed mapper refuses at once. */
  deinitialize(keys: readonly number[]): Promise<void> {
    try {
      this.checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.deinitializes.add([...keys]);
  }
  abstract release(bases: readonly number[]): Promise<void>;
  abstract close(): Promise<void>;

  async reserve(bytes: number): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = await this.reserveRange(bytes);
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  prepare(addr: number, size: number): Uint8Array {
    const r = this.checkPrepare(addr, size);
    const v = this.workingMemory(r, addr, size);
    this.table.addView(r, addr, v);
    return v;
  }

  prepareLocal(addr: number, size: number): number | undefined {
    const r = this.checkPrepare(addr, size);
    const local = this.localWorkingAddress(r, addr);
    if (local !== undefined) this.table.markPrepared(r, addr);
    return local;
  }

  /** Where the working memory of `addr` lies in this process (see prepareLocal); undefined: nowhere. */
  protected localWorkingAddress(_r: Reservation<R>, _addr: number): number | undefined {
    return undefined;
  }

  private checkPrepare(addr: number, size: number): Reservation<R> {
    this.checkOpen();
    checkAddress('addr', addr);
    checkSize('size', size);
    const r = this.table.of(addr, size, 'prepare');
    this.table.checkPrepare(r, addr, size);
    return r;
  }

  /** The checks initialize starts with; returns the reservation and the region's extent. */
  protected beginInitialize(info: AllocInfo): { r: Reservation<R>; key: number; end: number } {
    this.checkOpen();
    const { key, end } = checkAllocInfo(info, this.pageSize);
    const r = this.table.of(key, end - key, 'initialize');
    this.table.checkInitialize(r, key, end);
    return { r, key, end };
  }

  /** The reservation that starts at `base`, checked. */
  protected reservationAt(base: number): Reservation<R> {
    checkAddress('base', base);
    const r = this.table.byStart.get(base);
    if (!r)
      throw new JitmemError('ERR_UNKNOWN_RESERVATION', `release: ${hex(base)} is not the start of a reservation`, {
        base,
      });
    return r;
  }

  protected checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MAPPER_CLOSED', `this ${this.constructor.name} is closed`, {});
  }
}
