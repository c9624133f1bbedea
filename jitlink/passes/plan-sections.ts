import { alignUp } from '../../core/checks.js';
import { JitmemError } from '../../core/errors.js';
import { allocGroup, R, W, X, type AllocGroup } from '../../graph/alloc-group.js';
import {
  ELF64_RELA_SIZE,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_ABS,
  SHT_NOBITS,
  SHT_REL,
  SHT_RELA,
} from '../../objects/elf-constants.js';
import { formatError } from '../../objects/format-error.js';
import { SECTION_ALLOC, SECTION_TLS, type InputObject } from '../input-object.js';
import type { ArraySection, LinkPlan, PlannedSection } from '../link-plan.js';
import { RELOCATION_WORDS, RelocationList } from '../relocation-list.js';
import { DSO_HANDLE, SYM_COMMON, SYM_DEFINED, SYM_SYNTHETIC } from '../symbol-table.js';

export const EH_FRAME = '.eh_frame';
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** The four groups sections go into: R, RW, RX, RWX (index: W = 1, X = 2). */
export type SectionGroups = readonly AllocGroup[];

export function sectionGroups(): SectionGroups {
  return [allocGroup(R), allocGroup(R | W), allocGroup(R | X), allocGroup(R | W | X)];
}

export function groupOf(groups: SectionGroups, flags: number): AllocGroup {
  return groups[(flags & SHF_WRITE ? 1 : 0) | (flags & SHF_EXECINSTR ? 2 : 0)]!;
}

/**
 * Adds a section to the plan's graph. Built field by field: a spread copies through the generic
 * path, and there are thousands.
 */
export function addSection(
  plan: LinkPlan,
  name: string,
  group: AllocGroup,
  alignment: number,
  size: number,
  content: Uint8Array | undefined,
): PlannedSection {
  const sections = plan.sections;
  const planned: PlannedSection =
    content === undefined
      ? { name, group, alignment, size, serial: sections.length }
      : { name, group, alignment, size, content, serial: sections.length };
  sections.push(planned);
  return planned;
}

/** Init/fini ordering: .init_array.N and .ctors.(65535-N) by priority, unprioritized ones last. */
function arrayPriority(name: string): Omit<ArraySection, 'object' | 'section'> | undefined {
  const m = /^\.(preinit_array|init_array|fini_array|ctors|dtors)(?:\.(\d+))?$/.exec(name);
  if (!m) return undefined;
  const kind = m[1] === 'preinit_array' ? 'preinit' : m[1] === 'init_array' || m[1] === 'ctors' ? 'init' : 'fini';
  const legacy = m[1] === 'ctors' || m[1] === 'dtors';
  const n = m[2] === undefined ? 65536 : legacy ? 65535 - Number(m[2]) : Number(m[2]);
  return { kind, priority: n, reversed: legacy };
}

interface Piece {
  readonly object: InputObject;
  readonly section: number;
}

/** Sections laid out as one: the pieces of .eh_frame, and those __start_X/__stop_X bound. */
interface MergedSection {
  readonly pieces: Piece[];
  size: number;
  alignment: number;
  flags: number;
  content: boolean;
}

/**
 * Pass 3, plan sections: every allocated section of every object becomes a graph section (or a
 * piece of a merged one: one .eh_frame for the program, one section per __start_X name), init
 * and fini arrays are noted, relocation sections that patch allocated memory are listed, and
 * the linker's own data (COMMON symbols, __dso_handle) gets its section.
 */
export function planSections(plan: LinkPlan, groups: SectionGroups, pageSize: number): void {
  const ehFrame: MergedSection = { pieces: [], size: 0, alignment: 8, flags: 0, content: true };
  const merged = new Map<string, MergedSection>();
  // Index loops, here and below: in a process's first link (V8's interpreter) a for-of step allocates.
  const objects = plan.table.objects;
  for (let o = 0; o < objects.length; o++) {
    const object = objects[o]!;
    const elf = object.elf;
    for (let index = 0; index < elf.sectionCount; index++) {
      if (object.sectionKind[index] !== SECTION_ALLOC) continue;
      const name = elf.sectionName(index);
      const type = elf.sectionType(index);
      const size = elf.sectionSize(index);
      if (name === EH_FRAME && type !== SHT_NOBITS) {
        // One .eh_frame for the whole program, so that one registration covers it. Records are
        // 4-byte aligned; a gap would read as a terminator.
        addPiece(ehFrame, object, index, 4, size);
        continue;
      }
      const alignment = elf.sectionAlignment(index);
      if (plan.boundaries.has(name)) {
        let m = merged.get(name);
        if (!m)
          merged.set(name, (m = { pieces: [], size: 0, alignment: 1, flags: elf.sectionFlags(index), content: false }));
        addPiece(m, object, index, Math.max(1, alignment), size);
        m.content ||= type !== SHT_NOBITS;
        continue;
      }
      const planned = addSection(
        plan,
        name,
        groupOf(groups, elf.sectionFlags(index)),
        alignment <= 1 ? 1 : alignment,
        size,
        elf.sectionContent(index),
      );
      object.placeSection[index] = planned.serial;
      const array = arrayPriority(name);
      if (array) plan.arrays.push({ object, section: index, ...array });
    }
    listRelocations(plan, object);
  }
  if (ehFrame.pieces.length > 0) {
    // Ends with a zero-length terminator record.
    const content = mergedContent(ehFrame, alignUp(ehFrame.size, 4) + 4);
    plan.ehFrame = addSection(plan, EH_FRAME, groups[0]!, 8, content.length, content);
    for (let i = 0; i < ehFrame.pieces.length; i++) {
      const p = ehFrame.pieces[i]!;
      p.object.placeSection[p.section] = plan.ehFrame.serial;
    }
  }
  for (const [name, m] of merged) {
    const content = m.content ? mergedContent(m, m.size) : undefined;
    const section = addSection(plan, name, groupOf(groups, m.flags), Math.min(m.alignment, pageSize), m.size, content);
    const array = arrayPriority(name);
    for (let i = 0; i < m.pieces.length; i++) {
      const p = m.pieces[i]!;
      p.object.placeSection[p.section] = section.serial;
      if (array) plan.arrays.push({ object: p.object, section: p.section, ...array });
    }
    for (const g of plan.boundaries.get(name)!)
      g.boundary = { serial: section.serial, size: m.size, end: g.name.startsWith('__stop_') };
  }
  planLinkerData(plan, groups, pageSize);
  copyRelocationWords(plan);
}

function addPiece(m: MergedSection, object: InputObject, section: number, alignment: number, size: number): void {
  m.size = alignUp(m.size, alignment);
  object.placeOffset[section] = m.size;
  m.size += size;
  m.alignment = Math.max(m.alignment, alignment);
  m.pieces.push({ object, section });
}

function mergedContent(m: MergedSection, size: number): Uint8Array {
  const content = new Uint8Array(size);
  for (let i = 0; i < m.pieces.length; i++) {
    const p = m.pieces[i]!;
    const c = p.object.elf.sectionContent(p.section);
    if (c) content.set(c, p.object.placeOffset[p.section]!);
  }
  return content;
}

/** The object's relocation sections that patch allocated memory (debug info and discarded groups are skipped). */
function listRelocations(plan: LinkPlan, object: InputObject): void {
  const elf = object.elf;
  for (let rs = 0; rs < elf.sectionCount; rs++) {
    const type = elf.sectionType(rs);
    if (type !== SHT_RELA && type !== SHT_REL) continue;
    const target = elf.sectionInfo(rs);
    const kind = object.sectionKind[target];
    if (kind !== SECTION_ALLOC && kind !== SECTION_TLS) continue;
    if (type === SHT_REL) {
      throw formatError(
        'ERR_LINK_UNSUPPORTED_RELOCATION',
        elf.origin,
        elf.sectionHeaderOffset(rs),
        `section [${rs}] ${JSON.stringify(elf.sectionName(rs))} holds SHT_REL relocations (no addends); x86-64 objects use SHT_RELA`,
      );
    }
    const link = elf.sectionLink(rs);
    if (link !== elf.symbolTable?.index) {
      throw formatError(
        'ERR_ELF_BAD_SECTION_INDEX',
        elf.origin,
        elf.sectionHeaderOffset(rs) + 40,
        `relocation section [${rs}] uses symbol table ${link}, not the object's symbol table`,
      );
    }
    const count = elf.sectionSize(rs) / ELF64_RELA_SIZE;
    const list = new RelocationList(
      object,
      elf.sectionOffset(rs),
      plan.relocationCount,
      count,
      target,
      elf.sectionSize(target),
      elf.sectionNameIs(target, EH_FRAME),
    );
    // The TLS image's own relocations are applied to its template (plan-tls.ts), not to the graph.
    (kind === SECTION_TLS ? plan.tls.templateLists : plan.relocationLists).push(list);
    plan.relocationCount += count;
  }
}

/**
 * The linker's own data: COMMON symbols and __dso_handle, zero-filled. Also marks which defined
 * symbols lie in the graph.
 */
function planLinkerData(plan: LinkPlan, groups: SectionGroups, pageSize: number): void {
  let dataSize = 0;
  let dataAlignment = 8;
  for (let serial = 0, all = plan.table.list; serial < all.length; serial++) {
    const g = all[serial]!;
    if (g.state === SYM_COMMON) {
      dataSize = alignUp(dataSize, g.commonAlignment);
      g.dataOffset = dataSize;
      dataSize += Math.max(g.commonSize, 1);
      dataAlignment = Math.max(dataAlignment, g.commonAlignment);
      g.inGraph = true;
    } else if (g.state === SYM_SYNTHETIC && g.name === DSO_HANDLE) {
      dataSize = alignUp(dataSize, 8);
      g.dataOffset = dataSize;
      dataSize += 8;
      g.inGraph = true;
    } else if (g.state === SYM_DEFINED) {
      const o = g.object!;
      g.inGraph = o.symbolSection[g.index] !== SHN_ABS && o.definesAt(g.index);
    }
  }
  if (dataSize > 0)
    plan.dataSection = addSection(
      plan,
      '$__jitmem_data',
      groups[1]!,
      Math.min(dataAlignment, pageSize),
      dataSize,
      undefined,
    );
}

/** Every relocation entry, copied once into aligned words (a memcpy per section). */
function copyRelocationWords(plan: LinkPlan): void {
  if (!LITTLE_ENDIAN_HOST)
    throw new JitmemError(
      'ERR_LINK_UNSUPPORTED_HOST',
      "jitmem's linker links x86-64 objects on a little-endian host only",
      {},
    );
  plan.relocationWords = new Uint32Array(plan.relocationCount * RELOCATION_WORDS);
  const wordBytes = new Uint8Array(plan.relocationWords.buffer);
  for (const lists of [plan.relocationLists, plan.tls.templateLists])
    for (let i = 0; i < lists.length; i++) {
      const list = lists[i]!;
      wordBytes.set(
        // (a plain view, not the Buffer's subarray: a Buffer's views are made by a JS constructor)
        new Uint8Array(
          list.object.bytes.buffer,
          list.object.bytes.byteOffset + list.offset,
          list.count * ELF64_RELA_SIZE,
        ),
        list.first * ELF64_RELA_SIZE,
      );
    }
}
