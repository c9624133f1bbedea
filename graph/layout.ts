import { JitmemError } from '../core/errors.js';
import { alignUp, checkAlignment, checkSize } from '../core/checks.js';
import { allocGroupId, allocGroupName, type AllocGroup } from './alloc-group.js';
import type { LinkGraph, Section } from './link-graph.js';

/**
 * Where each section of a graph goes, by LLVM's BasicLayout rules: one segment per AllocGroup,
 * segments in ascending AllocGroup id, content sections before zero-fill ones (each in graph
 * order, at its alignment), every segment starting on a page boundary. The allocation's size
 * is the sum of the page-rounded segment sizes.
 */

export interface PlacedSection {
  readonly section: Section;
  /** Offset of the section from the start of its segment. */
  readonly offset: number;
}

export interface SegmentLayout {
  readonly group: AllocGroup;
  /** Offset of the segment from the allocation base; a multiple of the page size. */
  readonly offset: number;
  /** Bytes from the segment start to the end of the last content section. */
  readonly contentSize: number;
  /** Bytes after the content up to the end of the last zero-fill section. */
  readonly zeroFillSize: number;
  /** contentSize + zeroFillSize rounded up to the page size. */
  readonly pageRoundedSize: number;
  /** The largest section alignment in the segment. */
  readonly alignment: number;
  readonly sections: readonly PlacedSection[];
}

export interface GraphLayout {
  readonly segments: readonly SegmentLayout[];
  /** Sum of page-rounded segment sizes: the bytes the allocation takes. */
  readonly size: number;
}

/**
 * Names a section for a message. Made only when one is thrown: a graph of CPython has 1,400
 * sections, and a process's first link runs this check in V8's interpreter, where a closure per
 * section (or the string itself) is an allocation each time.
 */
function sectionWhere(graph: LinkGraph, section: Section, index: number): string {
  return `section ${index} (${JSON.stringify(section?.name)}) of graph ${JSON.stringify(graph.name)}`;
}

function checkSection(graph: LinkGraph, section: Section, index: number, pageSize: number): void {
  if (typeof section !== 'object' || section === null) {
    throw new JitmemError('ERR_INVALID_SECTION', `${sectionWhere(graph, section, index)} is not a section object`, {
      graph: graph.name,
      index,
    });
  }
  try {
    checkSize('size', section.size);
    checkAlignment('alignment', section.alignment);
  } catch (err) {
    const e = err as JitmemError;
    throw new JitmemError(e.code, `${sectionWhere(graph, section, index)}: ${e.message}`, {
      graph: graph.name,
      section: section.name,
      ...e.details,
    });
  }
  if (section.alignment > pageSize) {
    throw new JitmemError(
      'ERR_ALIGNMENT_ABOVE_PAGE_SIZE',
      `${sectionWhere(graph, section, index)} asks for alignment ${section.alignment}, above the page size ${pageSize}; segments start on page boundaries, so no larger alignment can be honoured (LLVM refuses it too)`,
      { graph: graph.name, section: section.name, alignment: section.alignment, pageSize },
    );
  }
  if (
    section.content !== undefined &&
    (!(section.content instanceof Uint8Array) || section.content.length !== section.size)
  ) {
    throw new JitmemError(
      'ERR_CONTENT_SIZE_MISMATCH',
      `${sectionWhere(graph, section, index)} has size ${section.size} but ${section.content instanceof Uint8Array ? `${section.content.length} bytes of content` : 'content that is not a Uint8Array'}`,
      { graph: graph.name, section: section.name, size: section.size },
    );
  }
  const id = allocGroupId(section.group);
  if (!Number.isInteger(id) || id < 0 || id > 15) {
    throw new JitmemError(
      'ERR_INVALID_ALLOC_GROUP',
      `${sectionWhere(graph, section, index)} has an invalid AllocGroup`,
      {
        graph: graph.name,
        section: section.name,
      },
    );
  }
}

export function layoutGraph(graph: LinkGraph, pageSize: number): GraphLayout {
  if (typeof graph !== 'object' || graph === null || !Array.isArray(graph.sections)) {
    throw new JitmemError(
      'ERR_INVALID_GRAPH',
      `a link graph must be an object with a sections array; got ${graph === null ? 'null' : typeof graph}`,
      {},
    );
  }
  const byGroup = new Map<number, Section[]>();
  // Index loops, here and below: a process's first link runs them in V8's interpreter, where a
  // for-of step or a callback per section costs an allocation or a call.
  const all = graph.sections;
  for (let index = 0; index < all.length; index++) {
    const section = all[index]!;
    checkSection(graph, section, index, pageSize);
    if (section.size === 0) continue; // empty sections take no space, as in LLVM
    const id = allocGroupId(section.group);
    let list = byGroup.get(id);
    if (!list) byGroup.set(id, (list = []));
    list.push(section);
  }
  if (byGroup.size === 0) {
    throw new JitmemError(
      'ERR_EMPTY_GRAPH',
      `graph ${JSON.stringify(graph.name)} has no section with a size above 0; there is nothing to allocate`,
      { graph: graph.name, sections: graph.sections.length },
    );
  }

  const segments: SegmentLayout[] = [];
  let base = 0;
  for (const id of [...byGroup.keys()].sort((a, b) => a - b)) {
    const sections = byGroup.get(id)!;
    const placed: PlacedSection[] = [];
    let end = 0;
    let alignment = 1;
    for (let i = 0; i < sections.length; i++) {
      const section = sections[i]!;
      if (section.content === undefined) continue;
      const offset = alignUp(end, section.alignment);
      placed.push({ section, offset });
      end = offset + section.size;
      alignment = Math.max(alignment, section.alignment);
    }
    const contentSize = end;
    for (let i = 0; i < sections.length; i++) {
      const section = sections[i]!;
      if (section.content !== undefined) continue;
      const offset = alignUp(end, section.alignment);
      placed.push({ section, offset });
      end = offset + section.size;
      alignment = Math.max(alignment, section.alignment);
    }
    const pageRoundedSize = alignUp(end, pageSize);
    segments.push({
      group: sections[0]!.group,
      offset: base,
      contentSize,
      zeroFillSize: end - contentSize,
      pageRoundedSize,
      alignment,
      sections: placed,
    });
    base += pageRoundedSize;
    if (!Number.isSafeInteger(base)) {
      throw new JitmemError(
        'ERR_INVALID_SIZE',
        `graph ${JSON.stringify(graph.name)} is too large to lay out (segment ${allocGroupName(sections[0]!.group)})`,
        {
          graph: graph.name,
        },
      );
    }
  }
  return { segments, size: base };
}

/**
 * The same segments in the opposite address order (the highest AllocGroup id at offset 0),
 * each still on a page boundary and the same size. The segment list keeps its order (ascending
 * AllocGroup id), so segment i is the same segment in both layouts; only offsets change, and
 * sections keep their places inside their segments. A memory manager that packs allocations
 * side by side uses it so that a neighbour's last segment and this allocation's first share a
 * protection (R-X next to R-X, R-- next to R--) and one mprotect covers both.
 */
export function reverseLayout(layout: GraphLayout): GraphLayout {
  const segments: SegmentLayout[] = new Array(layout.segments.length);
  let base = 0;
  for (let i = layout.segments.length - 1; i >= 0; i--) {
    const seg = layout.segments[i]!;
    segments[i] = { ...seg, offset: base };
    base += seg.pageRoundedSize;
  }
  return { segments, size: base };
}
