import { JitmemError, hex } from '../../core/errors.js';
import type { Placement } from '../link-plan.js';

/** What the scan found about the graph's 32-bit references outside itself. */
export interface NearReferences {
  /** Lowest and highest executor address reached by a 32-bit PC-relative reference from the graph. */
  readonly nearLowest: number;
  readonly nearHighest: number;
  /** The symbols at those two addresses, for messages. */
  readonly nearSymbols: readonly string[];
  /** A 32-bit absolute reference to the graph itself (-fno-pic code): it must lie in the low 2 GiB. */
  readonly absolute32: string | undefined;
}

/** Room for the addends (field offsets) of the references. */
const MARGIN = 16 << 20;

/**
 * Where the graph must lie for its 32-bit references to reach: within 2 GiB of every
 * external symbol reached PC-relative (PIE code reading a library's data directly, as if
 * through a copy relocation), and in the low 2 GiB for absolute 32-bit references to itself.
 * Undefined when nothing constrains it.
 */
export function placementFor(near: NearReferences, size: number): Placement | undefined {
  if (near.absolute32 === undefined && near.nearSymbols.length === 0) return undefined;
  let start = 1 << 16;
  let end = 2 ** 47;
  const reasons: string[] = [];
  if (near.absolute32 !== undefined) {
    end = 2 ** 31;
    reasons.push(`in the low 2 GiB (${near.absolute32} is an absolute 32-bit address: code built with -fno-pic)`);
  }
  if (near.nearSymbols.length > 0) {
    start = Math.max(start, near.nearHighest - 2 ** 31 + MARGIN);
    end = Math.min(end, near.nearLowest + 2 ** 31 - MARGIN);
    const [lo, hi] = near.nearSymbols;
    reasons.push(
      lo === hi
        ? `within 2 GiB of ${JSON.stringify(lo)} at ${hex(near.nearLowest)}`
        : `within 2 GiB of both ${JSON.stringify(lo)} at ${hex(near.nearLowest)} and ${JSON.stringify(hi)} at ${hex(near.nearHighest)}`,
    );
  }
  if (end - start < size) {
    throw new JitmemError(
      'ERR_LINK_PLACEMENT',
      `the program's code must lie ${reasons.join(' and ')} (32-bit references of code built as an executable rather than with -fPIC); no ${size}-byte range satisfies all of that: rebuild the objects with -fPIC`,
      { start, end, size },
    );
  }
  return { start, end };
}
