import { JitmemError } from '../../core/errors.js';
import type { GraphLayout } from '../../graph/layout.js';
import { SHN_ABS, SHN_LORESERVE } from '../../objects/elf-constants.js';
import type { InputObject } from '../input-object.js';
import type { LinkPlan, PlannedSection } from '../link-plan.js';
import { GOT_SYMBOL, SYM_COMMON, SYM_DEFINED, SYM_EXTERNAL, SYM_NULL, SYM_SYNTHETIC } from '../symbol-table.js';

/**
 * The addresses of one relocation of a plan: its own arrays, so that a later relocate() of the
 * same plan (at another base) cannot change what an earlier result reports.
 */
export interface ProgramAddresses {
  readonly base: number;
  readonly segmentOffsets: readonly number[];
  /** Segment of each graph section, by serial; -1 for empty ones. */
  readonly sectionSegment: Int32Array;
  /** Offset of each graph section from the allocation base. */
  readonly sectionOffset: Float64Array;
  readonly sectionAddress: Float64Array;
  /**
   * By object slot: executor address of each of its sections (those placed in the graph); valid
   * until the next assignAddresses of the plan.
   */
  readonly objectSections: readonly Float64Array[];
  /** By object slot: executor address of each of its symbols; valid until the next assignAddresses of the plan. */
  readonly objectSymbols: readonly Float64Array[];
  /** By GlobalSymbol.serial. */
  readonly globals: Float64Array;
  readonly gotAddress: number;
  readonly stubAddress: number;
}

/**
 * One zeroed Float64Array per object, of `length(object)` elements, all views of one memory: an
 * ArrayBuffer each would be an allocation and an entry for V8's array-buffer sweeping per object
 * (354 for CPython), in a process's first link.
 */
function viewsByObject(objects: readonly InputObject[], length: (object: InputObject) => number): Float64Array[] {
  let total = 0;
  for (let i = 0; i < objects.length; i++) total += length(objects[i]!);
  const all = new Float64Array(total);
  const views: Float64Array[] = new Array(objects.length);
  for (let i = 0, at = 0; i < objects.length; i++) {
    const n = length(objects[i]!);
    views[i] = all.subarray(at, at + n);
    at += n;
  }
  return views;
}

/** The executor address of `section` (a planned one), or 0 when the plan has none. */
function addressOf(section: PlannedSection | undefined, sectionAddress: Float64Array): number {
  return section ? sectionAddress[section.serial]! : 0;
}

/** Where each graph section lies, from the allocation's layout. */
function placeSections(
  plan: LinkPlan,
  base: number,
  layout: GraphLayout,
  workingMemory: readonly Uint8Array[] | undefined,
) {
  const count = plan.sections.length;
  const sectionSegment = new Int32Array(count).fill(-1);
  const sectionOffset = new Float64Array(count);
  const sectionAddress = new Float64Array(count);
  layout.segments.forEach((seg, si) => {
    if (workingMemory !== undefined && workingMemory[si]!.length < seg.contentSize) {
      throw new JitmemError(
        'ERR_WORKING_MEMORY_DETACHED',
        `relocate: the working memory of segment ${si} holds ${workingMemory[si]!.length} bytes; its content needs ${seg.contentSize}`,
        {},
      );
    }
    // (index loops: a process's first link runs this in V8's interpreter, where a for-of step allocates)
    for (let i = 0; i < seg.sections.length; i++) {
      const p = seg.sections[i]!;
      const serial = (p.section as PlannedSection).serial;
      sectionSegment[serial] = si;
      sectionOffset[serial] = seg.offset + p.offset;
      sectionAddress[serial] = base + seg.offset + p.offset;
    }
  });
  // Empty sections take no place; symbols in them still need an address that is not 0.
  for (let i = 0; i < count; i++) if (sectionSegment[i] === -1) sectionAddress[i] = base;
  return { sectionSegment, sectionOffset, sectionAddress };
}

/** The address of local symbol `i` of `object` (or a global one past sh_info, tolerated as binutils does). */
function localAddress(object: InputObject, sections: Float64Array, i: number): number {
  const shndx = object.symbolSection[i]!;
  const value = object.symbolValue[i]!;
  return shndx === SHN_ABS ? value : shndx < SHN_LORESERVE ? sections[shndx]! + value : 0;
}

/**
 * Pass 7a (relocate): every section and symbol gets its executor address, given the
 * allocation's base and layout.
 */
export function assignAddresses(
  plan: LinkPlan,
  base: number,
  layout: GraphLayout,
  workingMemory: readonly Uint8Array[] | undefined,
): ProgramAddresses {
  const { sectionSegment, sectionOffset, sectionAddress } = placeSections(plan, base, layout, workingMemory);
  const objects = plan.table.objects;
  // The per-object arrays are the plan's scratch, filled anew by every call: only `globals`,
  // fresh each time, outlives the relocation (in its result).
  const scratch = (plan.addressScratch ??= {
    sections: viewsByObject(objects, (o) => o.placeSection.length),
    symbols: viewsByObject(objects, (o) => o.symbolCount),
  });
  const objectSections = objects.map((object) => {
    const sections = scratch.sections[object.slot]!;
    for (let s = 0; s < sections.length; s++) {
      const place = object.placeSection[s]!;
      if (place >= 0) sections[s] = sectionAddress[place]! + object.placeOffset[s]!;
    }
    return sections;
  });
  const dataAddress = addressOf(plan.dataSection, sectionAddress);
  const gotAddress = addressOf(plan.gotSection, sectionAddress);
  const globals = new Float64Array(plan.table.symbols.size);
  for (let serial = 0, all = plan.table.list; serial < all.length; serial++) {
    const g = all[serial]!;
    let address: number;
    switch (g.state) {
      case SYM_DEFINED: {
        const o = g.object!;
        const shndx = o.symbolSection[g.index]!;
        address =
          shndx === SHN_ABS ? o.symbolValue[g.index]! : objectSections[o.slot]![shndx]! + o.symbolValue[g.index]!;
        break;
      }
      case SYM_COMMON:
        address = dataAddress + g.dataOffset;
        break;
      case SYM_SYNTHETIC:
        address = g.boundary
          ? sectionAddress[g.boundary.serial]! + (g.boundary.end ? g.boundary.size : 0)
          : g.name === GOT_SYMBOL
            ? gotAddress
            : dataAddress + g.dataOffset;
        break;
      case SYM_EXTERNAL:
      case SYM_NULL:
        address = g.address;
        break;
      default:
        address = 0;
    }
    globals[g.serial] = address;
  }
  const objectSymbols = objects.map((object) => {
    const symbols = scratch.symbols[object.slot]!;
    const sections = objectSections[object.slot]!;
    const first = object.firstGlobal;
    for (let i = 1; i < first; i++) symbols[i] = localAddress(object, sections, i);
    for (let i = first; i < object.symbolCount; i++) {
      const g = object.globals[i - first];
      symbols[i] = g === undefined ? localAddress(object, sections, i) : globals[g.serial]!;
    }
    return symbols;
  });
  return {
    base,
    segmentOffsets: layout.segments.map((s) => s.offset),
    sectionSegment,
    sectionOffset,
    sectionAddress,
    objectSections,
    objectSymbols,
    globals,
    gotAddress,
    stubAddress: addressOf(plan.stubSection, sectionAddress),
  };
}
