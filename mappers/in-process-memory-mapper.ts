import * as native from '../native/index.js';
import type { ExecutorAddrRange } from './memory-mapper.js';
import { checkReserveSize } from './alloc-info.js';
import { checkPatchBatch, groupBySegment, segmentHolding, type CodePatch, type PatchOptions } from './code-patch.js';
import { LocalMemoryMapper, type LocalRegion } from './local-memory-mapper.js';
import type { Reservation as ReservationRecord } from './reservation-table.js';

/**
 * The executor is this process: reserve maps anonymous memory here, working memory is a
 * zero-copy view of the target pages themselves, and initialize only changes protections and
 * runs the alloc actions (LocalMemoryMapper: by protection run, not by segment). Nothing
 * crosses a process boundary, which makes it the baseline the other transports are measured
 * against.
 */

type Reservation = ReservationRecord<LocalRegion>;

export class InProcessMemoryMapper extends LocalMemoryMapper {
  readonly pageSize = native.pageSize();
  protected readonly defaultProt = native.PROT_RW;

  protected async reserveRange(bytes: number): Promise<number> {
    const start = native.reserve(bytes, native.PROT_RW);
    this.trackReservation(start, bytes);
    return start;
  }

  /** reserve(), inside `window`: this process can always place its own reservations. */
  async reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const start = native.reserveWithin(bytes, native.PROT_RW, window.start, window.end);
    this.trackReservation(start, bytes);
    this.table.add(start, bytes);
    return { start, end: start + bytes };
  }

  protected workingMemory(_r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(addr, size);
  }

  protected override localWorkingAddress(_r: Reservation, addr: number): number {
    return addr;
  }

  protected zeroFill(_r: Reservation, addr: number, length: number): void {
    native.fill(addr, length, 0);
  }

  /**
   * Patches code in place, a batch at a time: each segment the batch touches gets one write
   * window over the pages from its first patch to its last (W^X is kept: they are RW, not RWX,
   * while the bytes go in), then its own protection back, then an instruction-cache flush.
   */
  async patchCode(patches: readonly CodePatch[], _options: PatchOptions = {}): Promise<void> {
    this.checkOpen();
    checkPatchBatch(patches);
    this.settle();
    const groups = groupBySegment(patches, (p) =>
      segmentHolding(
        this.table.of(p.address, p.bytes.length, 'patchCode').regions.at(p.address),
        p.address,
        p.bytes.length,
      ),
    );
    for (const [segment, group] of groups) native.patchInPlace(group, segment.prot);
  }

  protected unmapReservation(r: Reservation): void {
    native.unmap(r.start, r.end - r.start);
  }
}
