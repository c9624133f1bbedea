import { allocGroup, R, X, type AllocGroup } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import { JitmemError } from '../../core/errors.js';
import { checkCount } from './pattern-options.js';
import type { Plan, Step } from './plan.js';
import { SeededRandom } from './seeded-random.js';

/**
 * sweep: synthetic graphs from 4 KiB to 64 MiB (doubling), each allocated, written, finalized
 * and freed in turn, to find the sizes where one transport overtakes another. Each graph is
 * one content section of exactly its size, so the bytes moved are the size itself. Contents
 * are seeded pseudo-random bytes, shared: every graph's section is a view of one buffer.
 */

export interface SweepOptions {
  readonly seed: number;
  /** Smallest graph in bytes (default 4 KiB); a power of two. */
  readonly minSize?: number;
  /** Largest graph in bytes (default 64 MiB); a power of two. */
  readonly maxSize?: number;
  /** Allocate-and-free rounds per size (default 1). */
  readonly repeat?: number;
  /** The section's group (default R-X). */
  readonly group?: AllocGroup;
}

export const SWEEP_MIN_SIZE = 4 * 1024;
export const SWEEP_MAX_SIZE = 64 * 1024 * 1024;

function checkPowerOfTwo(name: string, value: number): number {
  checkCount(name, value, 1);
  if (!Number.isInteger(Math.log2(value))) {
    throw new JitmemError('ERR_INVALID_PATTERN_OPTION', `${name} must be a power of two; got ${value}`, {
      option: name,
      value,
    });
  }
  return value;
}

/** Sizes from min to max, doubling. */
export function sweepSizes(minSize = SWEEP_MIN_SIZE, maxSize = SWEEP_MAX_SIZE): number[] {
  checkPowerOfTwo('sweep minSize', minSize);
  checkPowerOfTwo('sweep maxSize', maxSize);
  if (minSize > maxSize)
    throw new JitmemError('ERR_INVALID_PATTERN_OPTION', `sweep minSize ${minSize} is above maxSize ${maxSize}`, {
      minSize,
      maxSize,
    });
  const sizes: number[] = [];
  for (let size = minSize; size <= maxSize; size *= 2) sizes.push(size);
  return sizes;
}

/** Seeded bytes: 64 KiB from the generator, then doubled by copying, so that 64 MiB costs one memcpy per doubling. */
function syntheticContent(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  const block = Math.min(size, 64 * 1024);
  new SeededRandom(seed).fill(bytes.subarray(0, block));
  for (let filled = block; filled < size; filled *= 2) bytes.copyWithin(filled, 0, Math.min(filled, size - filled));
  return bytes;
}

/** The sweep's graphs, one per size, smallest first. */
export function sweepGraphs(options: SweepOptions): LinkGraph[] {
  const sizes = sweepSizes(options.minSize, options.maxSize);
  const group = options.group ?? allocGroup(R | X);
  const content = syntheticContent(sizes[sizes.length - 1]!, options.seed);
  return sizes.map((size) => ({
    name: `sweep-${size}`,
    sections: [{ name: '.text', group, alignment: 16, size, content: content.subarray(0, size) }],
  }));
}

export function sweepPlan(options: SweepOptions): Plan {
  const repeat = checkCount('sweep repeat', options.repeat ?? 1, 1);
  const sizes = sweepSizes(options.minSize, options.maxSize);
  new SeededRandom(options.seed);
  let graphs: LinkGraph[] | undefined; // made on first use: 64 MiB is not built for a plan never run
  return {
    pattern: 'sweep',
    description: `sweep ${sizes[0]} to ${sizes[sizes.length - 1]} bytes, ${repeat} round(s) per size, seed ${options.seed}`,
    *steps(): Iterable<Step> {
      graphs ??= sweepGraphs(options);
      let id = 0;
      for (const graph of graphs) {
        yield { op: 'phase', name: `size ${graph.sections[0]!.size}` };
        for (let round = 0; round < repeat; round++) {
          yield { op: 'allocate', id, graph };
          yield { op: 'free', ids: [id++] };
        }
      }
    },
  };
}
