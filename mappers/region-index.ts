/** What a mapper records of an initialized region; mappers may keep more (its segments, actions). */
export interface RegionRecord {
  /** End of the region (exclusive); its key, the lowest segment address, is its start. */
  readonly end: number;
}

/**
 * The initialized regions of one reservation, by key (their start). Recorded regions never
 * overlap (initialize refuses one that would), so their starts in order are their ends in
 * order too, and every range check a prepare, an initialize or a patch makes is a binary search
 * over the sorted starts: a slab kept warm holds thousands of regions, and a pass over all of
 * them per call made allocating into it quadratic (with 8,000 live, an allocate, write and
 * finalize of a two-section graph in process took 540 us, three quarters of it in those passes
 * and in collecting the garbage their entries left). Lookups by key and the order regions were
 * recorded in (teardown goes in reverse) come from a map beside it.
 */
export class RegionIndex<R extends RegionRecord> {
  private readonly byKey = new Map<number, R>();
  /** The keys, ascending. */
  private readonly starts: number[] = [];

  get size(): number {
    return this.byKey.size;
  }

  get(key: number): R | undefined {
    return this.byKey.get(key);
  }

  has(key: number): boolean {
    return this.byKey.has(key);
  }

  /** Records (or replaces) the region at `key`; the caller has checked that it overlaps no other. */
  set(key: number, region: R): this {
    if (!this.byKey.has(key)) {
      const starts = this.starts;
      // A slab fills upwards: most keys go at the end.
      if (starts.length === 0 || key > starts[starts.length - 1]!) starts.push(key);
      else starts.splice(this.firstAbove(key), 0, key);
    }
    this.byKey.set(key, region);
    return this;
  }

  delete(key: number): boolean {
    if (!this.byKey.delete(key)) return false;
    const i = this.firstAbove(key) - 1;
    this.starts.splice(i, 1);
    return true;
  }

  /** The regions in the order they were recorded. */
  values(): IterableIterator<R> {
    return this.byKey.values();
  }

  /** The keys in the order their regions were recorded. */
  keys(): IterableIterator<number> {
    return this.byKey.keys();
  }

  /** The lowest region overlapping [start, end) (one byte in common), if any. */
  overlapping(start: number, end: number): { key: number; region: R } | undefined {
    // Regions below the last one starting at or below `start` end at or below its start; the
    // first one above it is the only other candidate, and only if it starts before `end`.
    const i = this.firstAbove(start) - 1;
    return this.overlapsAt(i, start, end) ?? this.overlapsAt(i + 1, start, end);
  }

  private overlapsAt(i: number, start: number, end: number): { key: number; region: R } | undefined {
    if (i < 0 || i >= this.starts.length) return undefined;
    const key = this.starts[i]!;
    const region = this.byKey.get(key)!;
    return key < end && region.end > start ? { key, region } : undefined;
  }

  /** The region whose [key, end] holds [address, address + size), if any. */
  holding(address: number, size: number): { key: number; region: R } | undefined {
    const i = this.firstAbove(address) - 1;
    if (i < 0) return undefined;
    const key = this.starts[i]!;
    const region = this.byKey.get(key)!;
    return address + size <= region.end ? { key, region } : undefined;
  }

  /** The region holding the byte at `address`, if any. */
  at(address: number): R | undefined {
    const i = this.firstAbove(address) - 1;
    if (i < 0) return undefined;
    const region = this.byKey.get(this.starts[i]!)!;
    return address < region.end ? region : undefined;
  }

  /** Index of the first start above `x` (starts.length when none is). */
  private firstAbove(x: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
