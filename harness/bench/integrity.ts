import { createHash } from 'node:crypto';
import { JitmemError, hex } from '../../core/errors.js';
import { allocGroupName } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { GraphLayout } from '../../graph/layout.js';

/**
 * The integrity check: after the timed phases of an iteration, the executor's memory must hold
 * exactly the bytes the graph says (content at its offsets, zeros in the alignment gaps and the
 * zero-fill tail). Expected digests are computed once per graph; the executor hashes its own
 * memory, so only digests cross the process boundary.
 */

export interface AddressRange {
  readonly start: number;
  readonly length: number;
}

/** Hashes (sha256, hex) of executor memory ranges, computed where the memory is. */
export type MemoryDigester = (ranges: readonly AddressRange[]) => Promise<string[]>;

/** Reads executor memory back (to name the first wrong byte when a digest disagrees). */
export type MemoryReader = (range: AddressRange) => Promise<Uint8Array>;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The bytes a segment must hold once finalized. */
export function segmentImage(layout: GraphLayout, index: number): Uint8Array {
  const seg = layout.segments[index]!;
  const image = new Uint8Array(seg.contentSize + seg.zeroFillSize);
  for (const p of seg.sections) if (p.section.content) image.set(p.section.content, p.offset);
  return image;
}

const digestCache = new WeakMap<LinkGraph, string[]>();

/** Expected digests of every segment of a graph, cached per graph. */
export function expectedDigests(graph: LinkGraph, layout: GraphLayout): string[] {
  let d = digestCache.get(graph);
  if (!d) {
    d = layout.segments.map((_, i) => sha256(segmentImage(layout, i)));
    digestCache.set(graph, d);
  }
  return d;
}

export interface LiveGraph {
  readonly graph: LinkGraph;
  readonly layout: GraphLayout;
  readonly base: number;
  /** Bytes rewritten in place after finalize (the patch pattern), by offset from base. */
  readonly patches?: ReadonlyArray<{ readonly offset: number; readonly bytes: Uint8Array }>;
}

/** The image of one segment of a live graph, with its patches applied. */
function liveImage(g: LiveGraph, index: number): Uint8Array {
  const image = segmentImage(g.layout, index);
  const segStart = g.layout.segments[index]!.offset;
  for (const p of g.patches ?? []) {
    const at = p.offset - segStart;
    if (at >= 0 && at < image.length) image.set(p.bytes.subarray(0, image.length - at), at);
  }
  return image;
}

function expectedDigest(g: LiveGraph, index: number): string {
  return g.patches && g.patches.length > 0 ? sha256(liveImage(g, index)) : expectedDigests(g.graph, g.layout)[index]!;
}

/**
 * Verifies the memory of finalized allocations. On a mismatch it throws ERR_INTEGRITY naming
 * the cell, the graph, the segment and the first address whose byte is wrong (when the memory
 * can be read back), with the expected and actual bytes there.
 */
export async function verifyLive(
  cell: string,
  live: readonly LiveGraph[],
  digest: MemoryDigester,
  read?: MemoryReader,
): Promise<void> {
  const ranges: AddressRange[] = [];
  const owners: Array<{ g: LiveGraph; seg: number }> = [];
  for (const g of live) {
    g.layout.segments.forEach((seg, i) => {
      ranges.push({ start: g.base + seg.offset, length: seg.contentSize + seg.zeroFillSize });
      owners.push({ g, seg: i });
    });
  }
  if (ranges.length === 0) return;
  const actual = await digest(ranges);
  for (let i = 0; i < ranges.length; i++) {
    const { g, seg } = owners[i]!;
    const want = expectedDigest(g, seg);
    if (actual[i] === want) continue;
    const r = ranges[i]!;
    const segName = allocGroupName(g.layout.segments[seg]!.group);
    let where = `segment ${segName} [${hex(r.start)}, ${hex(r.start + r.length)})`;
    if (read) {
      const got = await read(r);
      const image = liveImage(g, seg);
      const at = image.findIndex((b, k) => got[k] !== b);
      if (at >= 0)
        where = `address ${hex(r.start + at)} (offset ${at} of segment ${segName} at ${hex(r.start)}): expected byte ${hex(image[at]!)}, found ${hex(got[at]!)}`;
    }
    throw new JitmemError(
      'ERR_INTEGRITY',
      `integrity check failed in cell ${cell}: graph ${JSON.stringify(g.graph.name)} ${where}; the executor's memory does not hold the bytes written`,
      { cell, graph: g.graph.name, address: r.start, expected: want, actual: actual[i] },
    );
  }
}
