import { JitmemError, hex } from '../core/errors.js';
import { alignUp, checkAddress, checkSize } from '../core/checks.js';
import { allocGroupId } from '../graph/alloc-group.js';
import type { AllocInfo } from './memory-mapper.js';

/**
 * Checks an AllocInfo before a mapper acts on it, so that a bad request is refused before any
 * byte is written or any protection changes. Returns the region it covers: key (the lowest
 * segment address, which initialize returns) and end (the highest page-rounded segment end).
 *
 * It runs at every initialize, so it is one indexed pass with no closure, array or message
 * built unless a check fails (per-segment closures and a list of extents made it cost a
 * one-page finalize about a microsecond before its call went out).
 */
export function checkAllocInfo(info: AllocInfo, pageSize: number): { key: number; end: number } {
  if (typeof info !== 'object' || info === null || !Array.isArray(info.segments) || !Array.isArray(info.actions)) {
    throw new JitmemError(
      'ERR_INVALID_ALLOC_INFO',
      'initialize: allocInfo must have mappingBase, a segments array and an actions array',
      {},
    );
  }
  const base = checkAddress('mappingBase', info.mappingBase);
  if (base % pageSize !== 0) {
    throw new JitmemError(
      'ERR_UNALIGNED_ADDRESS',
      `initialize: mappingBase ${hex(base)} is not page-aligned (page size ${pageSize})`,
      { mappingBase: base },
    );
  }
  const segments = info.segments;
  const n = segments.length;
  if (n === 0) {
    throw new JitmemError('ERR_EMPTY_ALLOCATION', `initialize: the allocation at ${hex(base)} has no segments`, {
      mappingBase: base,
    });
  }
  let key = Number.POSITIVE_INFINITY;
  let end = 0;
  for (let i = 0; i < n; i++) {
    const seg = segments[i]!;
    const { offset, contentSize, zeroFillSize } = seg;
    if (!isSize(offset)) checkSize(`${where(i, base)}: offset`, offset);
    if (!isSize(contentSize)) checkSize(`${where(i, base)}: contentSize`, contentSize);
    if (!isSize(zeroFillSize)) checkSize(`${where(i, base)}: zeroFillSize`, zeroFillSize);
    if (offset % pageSize !== 0) {
      throw new JitmemError(
        'ERR_UNALIGNED_SEGMENT',
        `${where(i, base)}: offset ${hex(offset)} is not a multiple of the page size ${pageSize}`,
        {
          offset,
        },
      );
    }
    const id = seg.group ? allocGroupId(seg.group) : NaN;
    if (!Number.isInteger(id) || id < 0 || id > 15) {
      throw new JitmemError(
        'ERR_INVALID_ALLOC_GROUP',
        `${where(i, base)}: group must be an AllocGroup {prot 0..7, lifetime}`,
        {},
      );
    }
    const wm = seg.workingMemory;
    if (wm !== undefined && wm.length > 0 && wm.length < contentSize) {
      throw new JitmemError(
        'ERR_CONTENT_SIZE_MISMATCH',
        `${where(i, base)}: contentSize ${contentSize} is larger than its working memory (${wm.length} bytes)`,
        { contentSize },
      );
    }
    const start = base + offset;
    const segEnd = start + alignUp(contentSize + zeroFillSize, pageSize);
    if (!Number.isSafeInteger(segEnd)) {
      throw new JitmemError('ERR_INVALID_SIZE', `${where(i, base)}: ends past the largest safe address`, {});
    }
    // The segments before this one passed these same checks: their extents are recomputed
    // rather than kept in a list.
    for (let j = 0; j < i; j++) {
      const other = segments[j]!;
      const s = base + other.offset;
      const e = s + alignUp(other.contentSize + other.zeroFillSize, pageSize);
      if (start < e && segEnd > s) {
        throw new JitmemError(
          'ERR_SEGMENT_OVERLAP',
          `${where(i, base)}: [${hex(start)}, ${hex(segEnd)}) overlaps another segment [${hex(s)}, ${hex(e)})`,
          {
            start,
          },
        );
      }
    }
    if (start < key) key = start;
    if (segEnd > end) end = segEnd;
  }
  return { key, end };
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Names a segment in a message; built only when a check fails. */
function where(i: number, base: number): string {
  return `segment ${i} of the allocation at ${hex(base)}`;
}

/** Checks the argument of MemoryMapper.reserve: a positive multiple of the page size. */
export function checkReserveSize(bytes: unknown, pageSize: number): number {
  const n = checkSize('bytes', bytes, 1);
  if (n % pageSize !== 0) {
    throw new JitmemError('ERR_INVALID_SIZE', `reserve: ${n} bytes is not a multiple of the page size ${pageSize}`, {
      bytes: n,
    });
  }
  return n;
}
