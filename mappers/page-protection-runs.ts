import { JitmemError, hex } from '../core/errors.js';

/**
 * The protection of every page of one reservation, kept as maximal runs of equal protection,
 * so that a mapper can change protections with the fewest mprotect calls: a page that already
 * has its protection costs nothing, and pages that change to one protection share one call
 * whenever every page between them ends with that protection too (mprotect over pages that
 * already have the protection changes nothing for them, and the kernel skips such mappings).
 * A call sets exactly one protection, so a page goes from its old protection straight to its
 * new one: no call ever makes a page writable and executable unless that is what was asked.
 *
 * The record must be exact: every protection change of the reservation's pages goes through
 * `change()`, or is undone before the caller returns (a patch's write window); pages a failed
 * call may have left half done are forgotten (`forget()`), so the next change calls for them.
 */

/** One mprotect call: [start, start + length) gets `prot`. */
export interface ProtectionCall {
  readonly start: number;
  readonly length: number;
  readonly prot: number;
}

/** A page range and the protection it must have; `end` is exclusive. */
export interface ProtectionRange {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
}

/** The protection of pages whose state is not known; it equals no real protection. */
const UNKNOWN = -1;

export class PageProtectionRuns {
  /** Run i covers [starts[i], starts[i+1]) (the last one up to `end`) with protection prots[i]. */
  private readonly starts: number[];
  private readonly prots: number[];

  constructor(
    readonly start: number,
    readonly end: number,
    /** The protection every page has when the reservation is made. */
    readonly initial: number,
  ) {
    this.starts = [start];
    this.prots = [initial];
  }

  /** The number of runs: how many mprotect calls would set the whole reservation as it is now. */
  get runCount(): number {
    return this.starts.length;
  }

  /** The runs in address order. */
  runs(): ProtectionRange[] {
    return this.starts.map((s, i) => ({ start: s, end: this.starts[i + 1] ?? this.end, prot: this.prots[i]! }));
  }

  /** The protection the page holding `addr` has now. */
  protectionAt(addr: number): number {
    return this.prots[this.runAt(addr)]!;
  }

  /**
   * Records that each range gets its protection and returns the calls that make it so: for each
   * run of the result, one call from the first page it changed to the last (none where no page
   * changed). The ranges must lie inside the reservation and not overlap one another.
   */
  change(ranges: readonly ProtectionRange[]): ProtectionCall[] {
    const changed: ProtectionRange[] = [];
    for (const range of ranges) {
      if (range.start < this.start || range.end > this.end || range.start > range.end) {
        throw new JitmemError(
          'ERR_OUT_OF_RESERVATION',
          `protection change [${hex(range.start)}, ${hex(range.end)}) is not inside the reservation [${hex(this.start)}, ${hex(this.end)})`,
          {
            start: range.start,
            end: range.end,
          },
        );
      }
      if (range.start === range.end) continue;
      // The parts of the range whose pages do not have the protection yet.
      for (let i = this.runAt(range.start); i < this.starts.length && this.starts[i]! < range.end; i++) {
        if (this.prots[i] === range.prot) continue;
        const s = Math.max(this.starts[i]!, range.start);
        const e = Math.min(this.starts[i + 1] ?? this.end, range.end);
        const last = changed[changed.length - 1];
        if (last && last.end === s && last.prot === range.prot)
          changed[changed.length - 1] = { start: last.start, end: e, prot: range.prot };
        else changed.push({ start: s, end: e, prot: range.prot });
      }
    }
    for (const range of ranges) if (range.start < range.end) this.assign(range.start, range.end, range.prot);
    if (changed.length === 0) return [];
    // Each changed part lies inside one run of the result; parts in one run share a call.
    changed.sort((a, b) => a.start - b.start);
    const calls: ProtectionCall[] = [];
    let run = -1;
    let callStart = 0;
    let callEnd = 0;
    let prot = 0;
    for (const part of changed) {
      const i = this.runAt(part.start);
      if (i === run) {
        callEnd = part.end;
        continue;
      }
      if (run >= 0) calls.push({ start: callStart, length: callEnd - callStart, prot });
      run = i;
      callStart = part.start;
      callEnd = part.end;
      prot = part.prot;
    }
    calls.push({ start: callStart, length: callEnd - callStart, prot });
    return calls;
  }

  /**
   * Records that the protection of [start, end) is not known (a call that failed may have left
   * it half done): the next change of those pages makes a call whatever is asked.
   */
  forget(start: number, end: number): void {
    if (start < end) this.assign(Math.max(start, this.start), Math.min(end, this.end), UNKNOWN);
  }

  /** Index of the run holding `addr` (binary search). */
  private runAt(addr: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= addr) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Records [start, end) as `prot`, merging with equal neighbours so runs stay maximal. */
  private assign(start: number, end: number, prot: number): void {
    const first = this.runAt(start);
    const last = this.runAt(end - 1);
    const tailProt = this.prots[last]!;
    const tailStart = end;
    const tailExists = tailStart < (this.starts[last + 1] ?? this.end);
    // Replace runs first..last by: [head of first] [start,end) [tail of last].
    const newStarts: number[] = [];
    const newProts: number[] = [];
    if (this.starts[first]! < start) {
      newStarts.push(this.starts[first]!);
      newProts.push(this.prots[first]!);
    }
    newStarts.push(start);
    newProts.push(prot);
    if (tailExists) {
      newStarts.push(tailStart);
      newProts.push(tailProt);
    }
    this.starts.splice(first, last - first + 1, ...newStarts);
    this.prots.splice(first, last - first + 1, ...newProts);
    // Merge equal neighbours around the replaced stretch.
    const from = Math.max(first - 1, 0);
    const to = Math.min(first + newStarts.length, this.starts.length - 1);
    for (let i = to; i > from; i--) {
      if (this.prots[i] === this.prots[i - 1]) {
        this.starts.splice(i, 1);
        this.prots.splice(i, 1);
      }
    }
  }
}
