import { JitmemError, hex } from '../core/errors.js';
import { alignUp, checkAddress, checkSize } from '../core/checks.js';
import { allocGroupId } from '../graph/alloc-group.js';
import type { AllocInfo } from './memory-mapper.js';

/**
 * Checks an AllocInfo before a mapper acts on it, so that a bad request is refused before any
 * byte is written or any protection changes. Returns the region it covers: key (the lowest
 * segment address, which initialize returns) and end (the highest page-rounded segment end).
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
  if (info.segments.length === 0) {
    throw new JitmemError('ERR_EMPTY_ALLOCATION', `initialize: the allocation at ${hex(base)} has no segments`, {
      mappingBase: base,
    });
  }
  let key = Number.POSITIVE_INFINITY;
  let end = 0;
  const spans: Array<[number, number]> = [];
  info.segments.forEach((seg, i) => {
    // Messages are built only on failure: this runs for every segment of every initialize.
    const where = () => `segment ${i} of the allocation at ${hex(base)}`;
    for (const field of ['offset', 'contentSize', 'zeroFillSize'] as const) {
      const v = seg[field];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) checkSize(`${where()}: ${field}`, v);
    }
    if (seg.offset % pageSize !== 0) {
      throw new JitmemError(
        'ERR_UNALIGNED_SEGMENT',
        `${where()}: offset ${hex(seg.offset)} is not a multiple of the page size ${pageSize}`,
        {
          offset: seg.offset,
        },
      );
    }
    const id = seg.group ? allocGroupId(seg.group) : NaN;
    if (!Number.isInteger(id) || id < 0 || id > 15) {
      throw new JitmemError(
        'ERR_INVALID_ALLOC_GROUP',
        `${where()}: group must be an AllocGroup {prot 0..7, lifetime}`,
        {},
      );
    }
    if (seg.workingMemory !== undefined && seg.workingMemory.length > 0 && seg.workingMemory.length < seg.contentSize) {
      throw new JitmemError(
        'ERR_CONTENT_SIZE_MISMATCH',
        `${where()}: contentSize ${seg.contentSize} is larger than its working memory (${seg.workingMemory.length} bytes)`,
        { contentSize: seg.contentSize },
      );
    }
    const start = base + seg.offset;
    const segEnd = start + alignUp(seg.contentSize + seg.zeroFillSize, pageSize);
    if (!Number.isSafeInteger(segEnd)) {
      throw new JitmemError('ERR_INVALID_SIZE', `${where()}: ends past the largest safe address`, {});
    }
    for (const [s, e] of spans) {
      if (start < e && segEnd > s) {
        throw new JitmemError(
          'ERR_SEGMENT_OVERLAP',
          `${where()}: [${hex(start)}, ${hex(segEnd)}) overlaps another segment [${hex(s)}, ${hex(e)})`,
          {
            start,
          },
        );
      }
    }
    spans.push([start, segEnd]);
    key = Math.min(key, start);
    end = Math.max(end, segEnd);
  });
  return { key, end };
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
