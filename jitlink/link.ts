import { checkObjectKind, readObjectInput } from '../core/object-kind.js';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { JitmemError, hex } from '../core/errors.js';
import { allocGroup, R, W, X, type AllocGroup } from '../graph/alloc-group.js';
import { layoutGraph, type GraphLayout } from '../graph/layout.js';
import type { LinkGraph, Section } from '../graph/link-graph.js';
import { isArArchive, readArArchive, type ArMember } from '../objects/ar-archive.js';
import {
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_ABS,
  SHN_COMMON,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_REL,
  SHT_RELA,
} from '../objects/elf-constants.js';
import { isElf, readElfObject } from '../objects/elf-object.js';
import { formatError } from '../objects/format-error.js';
import { InputObject, SECTION_ALLOC, SECTION_DISCARDED, SECTION_TLS } from './input-object.js';
import {
  GlobalSymbol,
  SymbolTable,
  SYM_COMMON,
  SYM_DEFINED,
  SYM_EXTERNAL,
  SYM_NULL,
  SYM_SYNTHETIC,
  SYM_UNDEFINED,
} from './symbol-table.js';
import {
  KIND_BRANCH,
  KIND_DYNAMIC,
  KIND_GOT,
  KIND_GOT_BASE,
  KIND_RELAXABLE,
  KIND_SUPPORTED,
  KIND_TLS,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_PC32,
  relocationKinds,
  relocationName,
} from './x86-64-relocations.js';
import { applyRelocations, type FixupContext } from './fixups.js';
import { isRelaxable, type RelocationList } from './relocation-list.js';
import type { ExportedSymbol } from './export-library.js';

/**
 * jitmem's static linker for x86-64 ELF relocatable objects and archives, for code that runs
 * in an executor: the objects become one link graph (their allocated sections, a GOT, PLT
 * stubs, one merged .eh_frame, the linker's own data for COMMON symbols), which the slab
 * memory manager lays out and allocates like any other graph. Every check that needs no
 * address (relocation types, symbols, bounds) runs before anything is allocated; only a value
 * that does not fit its field can fail once addresses are known, and then the caller abandons
 * the allocation, so the executor never sees a half-linked program.
 *
 * The phases, timed: read objects (files, archive indices, ELF headers, symbol tables),
 * resolve (the symbol table, archive members, the executor's symbols in one batched lookup),
 * layout (the graph: sections, GOT, stubs, then BasicLayout), then, once the slab has given
 * the graph an address: write content and apply relocations into working memory.
 */

export interface LinkOptions {
  /** The executor's page size. */
  readonly pageSize: number;
  /** The symbol to call as main (default "main"). */
  readonly entry?: string;
  /**
   * Finds symbols the objects do not define, in the executor: one batched call, an address or
   * 0 per name.
   */
  readonly lookup: (names: readonly string[]) => Promise<readonly number[]>;
  /**
   * Executor functions that stand in for the process's own when the objects call them
   * (exit, atexit, __cxa_atexit run by the program runner, so that exit() ends the program
   * rather than the executor).
   */
  readonly runtimeSymbols?: ReadonlyMap<string, number>;
}

/** Bytes of a file already in memory, or a path to read. */
export type LinkInput = string | { readonly path: string; readonly bytes: Uint8Array };

export interface LinkTimes {
  readObjects: number;
  resolve: number;
  layout: number;
}

export interface LinkStats {
  readonly objects: number;
  readonly sections: number;
  readonly relocations: number;
  readonly gotEntries: number;
  readonly stubs: number;
  readonly externals: number;
  /** GOT loads turned into direct references (mov -> lea, call * -> call). */
  readonly relaxable: number;
}

/** A section of the graph with what the linker needs to find it again after layout. */
interface PlannedSection extends Section {
  readonly serial: number;
}

const EH_FRAME = '.eh_frame';
const STUB_SIZE = 8;
/** jmp *disp32(%rip), then two int3 to fill the slot. */
const STUB_BYTES = Uint8Array.of(0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc);
const TWO_32 = 2 ** 32;

/** Names a static linker provides itself. */
const DSO_HANDLE = '__dso_handle';
const GOT_SYMBOL = '_GLOBAL_OFFSET_TABLE_';

function protectionOf(flags: number): number {
  return R | (flags & SHF_WRITE ? W : 0) | (flags & SHF_EXECINSTR ? X : 0);
}

/** Code reaching its own data PC-relative must span less than 2 GiB anyway; past 4 GiB a size is damage. */
const MAX_PROGRAM_BYTES = 4 * 1024 ** 3;

const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

const BOUNDARY = /^__(start|stop)_([A-Za-z_][A-Za-z0-9_]*)$/;

/** Names of the allocated sections of the objects loaded so far. */
function allocatedSectionNames(table: SymbolTable): Set<string> {
  const names = new Set<string>();
  for (const o of table.objects)
    for (const s of o.elf.sections) if (o.sectionKind[s.index] === SECTION_ALLOC) names.add(s.name);
  return names;
}

/** Init/fini ordering: .init_array.N and .ctors.(65535-N) by priority, unprioritized ones last. */
function arrayPriority(
  name: string,
): { kind: 'preinit' | 'init' | 'fini'; priority: number; reversed: boolean } | undefined {
  const m = /^\.(preinit_array|init_array|fini_array|ctors|dtors)(?:\.(\d+))?$/.exec(name);
  if (!m) return undefined;
  const kind = m[1] === 'preinit_array' ? 'preinit' : m[1] === 'init_array' || m[1] === 'ctors' ? 'init' : 'fini';
  const legacy = m[1] === 'ctors' || m[1] === 'dtors';
  const n = m[2] === undefined ? 65536 : legacy ? 65535 - Number(m[2]) : Number(m[2]);
  return { kind, priority: n, reversed: legacy };
}

interface ArraySection {
  readonly object: InputObject;
  readonly section: number;
  readonly kind: 'preinit' | 'init' | 'fini';
  readonly priority: number;
  readonly reversed: boolean;
}

export class LinkedProgram {
  readonly graph: LinkGraph;
  readonly layout: GraphLayout;
  readonly times: LinkTimes;
  readonly stats: LinkStats;
  /** Symbols looked up in the executor, and what came back. */
  readonly externals: ReadonlyMap<string, number>;

  /** @internal */
  constructor(
    private readonly table: SymbolTable,
    private readonly sections: readonly PlannedSection[],
    private readonly relocationLists: readonly RelocationList[],
    private readonly relocationWords: Uint32Array,
    private readonly gotTargets: ReadonlyArray<{ object: InputObject; index: number }>,
    private readonly stubTargets: readonly GlobalSymbol[],
    private readonly gotSection: PlannedSection | undefined,
    private readonly stubSection: PlannedSection | undefined,
    private readonly dataSection: PlannedSection | undefined,
    private readonly ehFrame: PlannedSection | undefined,
    private readonly arrays: readonly ArraySection[],
    private readonly entryName: string,
    graph: LinkGraph,
    layout: GraphLayout,
    times: LinkTimes,
    stats: LinkStats,
    externals: ReadonlyMap<string, number>,
    /** Where the allocation must lie for the program's 32-bit references to reach (see RelocationScanner.placement). */
    readonly placement: { readonly start: number; readonly end: number } | undefined,
  ) {
    this.graph = graph;
    this.layout = layout;
    this.times = times;
    this.stats = stats;
    this.externals = externals;
  }

  /**
   * Gives every section and symbol its executor address, given the allocation's base and the
   * working memory of each segment (in layout order), fills the GOT and the stubs, and applies
   * every relocation there. Content must already be in working memory. Throws
   * ERR_LINK_RELOCATION_OVERFLOW when a value does not fit its field; then nothing in the
   * executor uses the memory, and the caller abandons the allocation.
   */
  relocate(base: number, workingMemory: readonly Uint8Array[], layout: GraphLayout = this.layout): RelocatedProgram {
    if (
      layout !== this.layout &&
      (layout.size !== this.layout.size || layout.segments.length !== this.layout.segments.length)
    ) {
      throw new JitmemError(
        'ERR_LINK_LAYOUT_MISMATCH',
        `relocate: the allocation's layout (${layout.size} bytes) is not the one the link planned (${this.layout.size} bytes)`,
        {},
      );
    }
    const segments = layout.segments;
    if (workingMemory.length !== segments.length) {
      throw new JitmemError(
        'ERR_LINK_LAYOUT_MISMATCH',
        `relocate: ${workingMemory.length} working-memory segments for a layout of ${segments.length}`,
        {},
      );
    }
    const count = this.sections.length;
    const sectionSegment = new Int32Array(count).fill(-1);
    const sectionOffset = new Float64Array(count);
    const sectionAddress = new Float64Array(count);
    segments.forEach((seg, si) => {
      if (workingMemory[si]!.length < seg.contentSize) {
        throw new JitmemError(
          'ERR_WORKING_MEMORY_DETACHED',
          `relocate: the working memory of segment ${si} holds ${workingMemory[si]!.length} bytes; its content needs ${seg.contentSize}`,
          {},
        );
      }
      for (const p of seg.sections) {
        const serial = (p.section as PlannedSection).serial;
        sectionSegment[serial] = si;
        sectionOffset[serial] = seg.offset + p.offset;
        sectionAddress[serial] = base + seg.offset + p.offset;
      }
    });
    // Empty sections take no place; symbols in them still need an address that is not 0.
    for (let i = 0; i < count; i++) if (sectionSegment[i] === -1) sectionAddress[i] = base;

    for (const object of this.table.objects) {
      const kinds = object.sectionKind;
      for (let s = 0; s < kinds.length; s++) {
        const place = object.placeSection[s]!;
        if (place >= 0) object.sectionAddress[s] = sectionAddress[place]! + object.placeOffset[s]!;
      }
    }
    const dataAddress = this.dataSection ? sectionAddress[this.dataSection.serial]! : 0;
    const gotAddress = this.gotSection ? sectionAddress[this.gotSection.serial]! : 0;
    for (const g of this.table.symbols.values()) {
      switch (g.state) {
        case SYM_DEFINED: {
          const o = g.object!;
          const shndx = o.symbolSection[g.index]!;
          g.address = shndx === SHN_ABS ? o.symbolValue[g.index]! : o.sectionAddress[shndx]! + o.symbolValue[g.index]!;
          break;
        }
        case SYM_COMMON:
          g.address = dataAddress + g.dataOffset;
          break;
        case SYM_SYNTHETIC:
          g.address = g.boundary
            ? sectionAddress[g.boundary.serial]! + (g.boundary.end ? g.boundary.size : 0)
            : g.name === GOT_SYMBOL
              ? gotAddress
              : dataAddress + g.dataOffset;
          break;
        default:
          break; // EXTERNAL and NULL have their address already
      }
    }
    for (const object of this.table.objects) {
      const addresses = object.symbolAddress;
      const sections = object.symbolSection;
      const values = object.symbolValue;
      const first = object.firstGlobal;
      for (let i = 1; i < first; i++) {
        const shndx = sections[i]!;
        addresses[i] = shndx === SHN_ABS ? values[i]! : shndx < 0xff00 ? object.sectionAddress[shndx]! + values[i]! : 0;
      }
      const globals = object.globals;
      for (let i = first; i < object.symbolCount; i++) {
        const g = globals[i - first];
        if (g === undefined) {
          // A local symbol past sh_info (tolerated, as binutils does).
          const shndx = sections[i]!;
          addresses[i] =
            shndx === SHN_ABS ? values[i]! : shndx < 0xff00 ? object.sectionAddress[shndx]! + values[i]! : 0;
        } else {
          addresses[i] = g.address;
        }
      }
    }

    const views = workingMemory.map((wm) => new DataView(wm.buffer, wm.byteOffset, wm.length));
    const gotView = this.gotSection ? views[sectionSegment[this.gotSection.serial]!]! : undefined;
    const gotAt = this.gotSection
      ? sectionOffset[this.gotSection.serial]! - segments[sectionSegment[this.gotSection.serial]!]!.offset
      : 0;
    this.gotTargets.forEach((t, i) => {
      const value = t.object.symbolAddress[t.index]!;
      gotView!.setUint32(gotAt + i * 8, value % TWO_32, true);
      gotView!.setUint32(gotAt + i * 8 + 4, Math.floor(value / TWO_32), true);
    });
    if (this.stubSection) {
      const si = sectionSegment[this.stubSection.serial]!;
      const at = sectionOffset[this.stubSection.serial]! - segments[si]!.offset;
      const stubAddress = sectionAddress[this.stubSection.serial]!;
      this.stubTargets.forEach((g, i) => {
        // jmp *GOT[g](%rip): the displacement counts from the end of the 6-byte instruction.
        const disp = gotAddress + g.got * 8 - (stubAddress + i * STUB_SIZE + 6);
        views[si]!.setInt32(at + i * STUB_SIZE + 2, disp, true);
      });
    }

    const context: FixupContext = {
      words: this.relocationWords,
      views,
      segmentOffsets: segments.map((s) => s.offset),
      sectionSegment,
      sectionOffset,
      gotAddress,
      stubAddress: this.stubSection ? sectionAddress[this.stubSection.serial]! : 0,
      base,
    };
    applyRelocations(this.relocationLists, context);

    const entry = this.table.symbols.get(this.entryName)!;
    const ehFrame = this.ehFrame
      ? { start: sectionAddress[this.ehFrame.serial]!, end: sectionAddress[this.ehFrame.serial]! + this.ehFrame.size }
      : undefined;
    return {
      base,
      entry: entry.address,
      ...this.initializers(
        views,
        segments.map((s) => s.offset),
        sectionSegment,
        sectionOffset,
      ),
      ...(ehFrame ? { ehFrame } : {}),
      exports: () => this.exportedSymbols(),
      symbol: (name: string) => {
        const g = this.table.symbols.get(name);
        return g && g.state !== SYM_UNDEFINED ? g.address : undefined;
      },
    };
  }

  /** The program's global symbols as a natively linked program exports them (not hidden, not thread-local). */
  private exportedSymbols(): ExportedSymbol[] {
    const out: ExportedSymbol[] = [];
    for (const g of this.table.symbols.values()) {
      if (g.state === SYM_COMMON) {
        out.push({ name: g.name, address: g.address, size: g.commonSize, type: 1 });
        continue;
      }
      if (g.state !== SYM_DEFINED || !g.inGraph) continue;
      const o = g.object!;
      const visibility = o.symbolVisibility[g.index]!;
      const type = o.symbolInfo[g.index]! & 0xf;
      if (visibility === 1 || visibility === 2 || type > 2) continue; // internal/hidden; section, file, TLS, ifunc
      out.push({ name: g.name, address: g.address, size: o.symbolSize[g.index]!, type });
    }
    return out;
  }

  /** True when the program calls dlopen: what it loads may need the program's own symbols. */
  get loadsLibraries(): boolean {
    return (this.externals.get('dlopen') ?? 0) !== 0 || (this.externals.get('dlmopen') ?? 0) !== 0;
  }

  /** The functions of the init and fini arrays, read from relocated memory, in the order they run. */
  private initializers(
    views: DataView[],
    segmentOffsets: number[],
    sectionSegment: Int32Array,
    sectionOffset: Float64Array,
  ): { init: number[]; fini: number[] } {
    const read = (a: ArraySection): number[] => {
      const place = a.object.placeSection[a.section]!;
      const si = sectionSegment[place]!;
      if (si < 0) return [];
      const view = views[si]!;
      const at = sectionOffset[place]! - segmentOffsets[si]! + a.object.placeOffset[a.section]!;
      const size = a.object.elf.sections[a.section]!.size;
      const out: number[] = [];
      for (let p = 0; p + 8 <= size; p += 8) {
        const lo = view.getUint32(at + p, true);
        const hi = view.getUint32(at + p + 4, true);
        // 0 and -1 are the sentinels old crtbegin/crtend put around .ctors/.dtors.
        if ((lo === 0 && hi === 0) || (lo === 0xffffffff && hi === 0xffffffff)) continue;
        out.push(hi * TWO_32 + lo);
      }
      return a.reversed ? out.reverse() : out;
    };
    const ordered = (kind: ArraySection['kind']) =>
      this.arrays
        .filter((a) => a.kind === kind)
        .sort((a, b) => a.priority - b.priority || a.object.order - b.object.order || a.section - b.section)
        .flatMap(read);
    return { init: [...ordered('preinit'), ...ordered('init')], fini: ordered('fini').reverse() };
  }
}

export interface RelocatedProgram {
  readonly base: number;
  /** Address of the entry symbol. */
  readonly entry: number;
  /** .preinit_array, then .init_array and .ctors, in the order they run. */
  readonly init: readonly number[];
  /** .fini_array and .dtors, in the order they run. */
  readonly fini: readonly number[];
  /** The merged .eh_frame (terminated), to register with the unwinder. */
  readonly ehFrame?: { readonly start: number; readonly end: number };
  /** Address of a global symbol of the linked program. */
  symbol(name: string): number | undefined;
  /** The global symbols a native link would export (for the export library). */
  exports(): ExportedSymbol[];
}

function readInput(input: LinkInput): { path: string; bytes: Uint8Array } {
  if (typeof input !== 'string') return input;
  // A FIFO, a device or a file of the wrong kind (source, a shared library, another machine's
  // object) is refused here as in every other command that takes objects.
  return { path: input, bytes: readObjectInput(input).bytes };
}

/** Reads, resolves and lays out a program; see LinkedProgram.relocate for the rest. */
export async function linkObjects(inputs: readonly LinkInput[], options: LinkOptions): Promise<LinkedProgram> {
  if (inputs.length === 0)
    throw new JitmemError('ERR_LINK_NO_INPUT', 'nothing to link: give at least one object file or archive', {});
  const entryName = options.entry ?? 'main';
  const t0 = performance.now();

  // --- read objects ---
  const table = new SymbolTable();
  let order = 0;
  const plain: InputObject[] = [];
  for (const input of inputs) {
    const { path: file, bytes } = readInput(input);
    if (typeof input !== 'string') checkObjectKind(bytes, file);
    if (isArArchive(bytes)) {
      table.addArchive(file, readArArchive(bytes, { file, base: 0 }));
    } else if (isElf(bytes)) {
      if (bytes.length >= 18 && bytes[5] === 1 && bytes[16] === 3 && bytes[17] === 0) {
        throw new JitmemError(
          'ERR_LINK_SHARED_OBJECT',
          `${file} is a shared library, not a relocatable object: load it into the executor with --preload ${file}`,
          { file },
        );
      }
      plain.push(new InputObject(readElfObject(bytes, { file, base: 0 }), order++));
    } else {
      const seen = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
      throw formatError(
        'ERR_OBJECT_UNKNOWN_FORMAT',
        { file, base: 0 },
        0,
        `neither an ELF object (7f 45 4c 46) nor an ar archive ("!<arch>\\n"); it starts with ${seen || 'nothing (the file is empty)'}`,
      );
    }
  }
  const t1 = performance.now();

  // --- resolve ---
  for (const object of plain) table.addObject(object);
  let memberTime = 0;
  table.pullArchiveMembers((file: string, member: ArMember) => {
    const m0 = performance.now();
    const object = new InputObject(
      readElfObject(member.data, { file, member: member.name, base: member.dataOffset }),
      order++,
    );
    memberTime += performance.now() - m0;
    return object;
  });
  const symbols = table.symbols;
  const entry = symbols.get(entryName);
  if (!entry || (entry.state !== SYM_DEFINED && entry.state !== SYM_COMMON)) {
    throw new JitmemError(
      'ERR_LINK_NO_ENTRY',
      `no object defines the entry symbol ${JSON.stringify(entryName)}${entryName === 'main' ? ' (is a main() among the inputs? name another with --entry)' : ''}`,
      {
        symbol: entryName,
      },
    );
  }
  const runtime = options.runtimeSymbols ?? new Map<string, number>();
  const wanted: GlobalSymbol[] = [];
  let callsRuntimeDlopen = false;
  const boundaries = new Map<string, GlobalSymbol[]>();
  let sectionNames: Set<string> | undefined;
  for (const g of symbols.values()) {
    if (g.state !== SYM_UNDEFINED || g.name === '') continue;
    if (g.name === DSO_HANDLE || g.name === GOT_SYMBOL) {
      g.state = SYM_SYNTHETIC;
      continue;
    }
    const bound = BOUNDARY.exec(g.name);
    if (bound && (sectionNames ??= allocatedSectionNames(table)).has(bound[2]!)) {
      // __start_X / __stop_X: the ends of the sections named X, which are laid out as one.
      g.state = SYM_SYNTHETIC;
      g.inGraph = true;
      let list = boundaries.get(bound[2]!);
      if (!list) boundaries.set(bound[2]!, (list = []));
      list.push(g);
      continue;
    }
    const stand = runtime.get(g.name);
    if (stand !== undefined) {
      if (g.name === 'dlopen') callsRuntimeDlopen = true;
      g.state = SYM_EXTERNAL;
      g.address = stand;
      continue;
    }
    wanted.push(g);
  }
  const found = wanted.length > 0 ? await options.lookup(wanted.map((g) => g.name)) : [];
  const missing: GlobalSymbol[] = [];
  const externals = new Map<string, number>();
  wanted.forEach((g, i) => {
    const addr = found[i] ?? 0;
    externals.set(g.name, addr);
    if (addr !== 0) {
      g.state = SYM_EXTERNAL;
      g.address = addr;
    } else if (g.strongReference) {
      missing.push(g);
    } else {
      g.state = SYM_NULL;
      g.address = 0;
    }
  });
  if (missing.length > 0) {
    const shown = missing
      .slice(0, 20)
      .map((g) => `${JSON.stringify(g.name)} (referenced by ${g.referrer?.name ?? 'an object'})`);
    throw new JitmemError(
      'ERR_LINK_UNDEFINED_SYMBOL',
      `undefined symbol${missing.length > 1 ? 's' : ''}: ${shown.join(', ')}${missing.length > 20 ? ` and ${missing.length - 20} more` : ''}; no input object defines ${missing.length > 1 ? 'them' : 'it'} and the executor does not provide ${missing.length > 1 ? 'them' : 'it'} (load a library with --preload)`,
      { symbols: missing.map((g) => g.name), referrers: missing.map((g) => g.referrer?.name) },
    );
  }
  const t2 = performance.now();

  // --- layout ---
  const sections: PlannedSection[] = [];
  // Sections are built field by field: a spread copies through the generic path, and there are thousands.
  const addSection = (
    name: string,
    group: AllocGroup,
    alignment: number,
    size: number,
    content: Uint8Array | undefined,
  ): PlannedSection => {
    const planned: PlannedSection =
      content === undefined
        ? { name, group, alignment, size, serial: sections.length }
        : { name, group, alignment, size, content, serial: sections.length };
    sections.push(planned);
    return planned;
  };
  const groups = [allocGroup(R), allocGroup(R | W), allocGroup(R | X), allocGroup(R | W | X)];
  const ehPieces: Array<{ object: InputObject; section: number }> = [];
  let ehSize = 0;
  const merged = new Map<
    string,
    {
      pieces: Array<{ object: InputObject; section: number }>;
      size: number;
      alignment: number;
      flags: number;
      content: boolean;
    }
  >();
  const arrays: ArraySection[] = [];
  const relocationLists: RelocationList[] = [];
  let relocationCount = 0;
  for (const object of table.objects) {
    const elfSections = object.elf.sections;
    for (const s of elfSections) {
      if (object.sectionKind[s.index] !== SECTION_ALLOC) continue;
      if (s.name === EH_FRAME && s.content !== undefined) {
        // One .eh_frame for the whole program, so that one registration covers it. Records are
        // 4-byte aligned; a gap would read as a terminator.
        ehSize = Math.ceil(ehSize / 4) * 4;
        object.placeOffset[s.index] = ehSize;
        ehSize += s.size;
        ehPieces.push({ object, section: s.index });
        continue;
      }
      if (boundaries.has(s.name)) {
        let m = merged.get(s.name);
        if (!m) merged.set(s.name, (m = { pieces: [], size: 0, alignment: 1, flags: s.flags, content: false }));
        const alignment = Math.max(1, s.addressAlignment);
        m.size = Math.ceil(m.size / alignment) * alignment;
        object.placeOffset[s.index] = m.size;
        m.size += s.size;
        m.alignment = Math.max(m.alignment, alignment);
        m.content ||= s.type !== SHT_NOBITS;
        m.pieces.push({ object, section: s.index });
        continue;
      }
      const prot = protectionOf(s.flags);
      const planned = addSection(
        s.name,
        groups[(prot & W ? 1 : 0) | (prot & X ? 2 : 0)]!,
        s.addressAlignment <= 1 ? 1 : s.addressAlignment,
        s.size,
        s.type === SHT_NOBITS ? undefined : s.content!,
      );
      object.placeSection[s.index] = planned.serial;
      const array = arrayPriority(s.name);
      if (array) arrays.push({ object, section: s.index, ...array });
    }
    for (const rs of object.elf.relocationSections()) {
      const target = rs.info;
      const kind = object.sectionKind[target];
      if (kind !== SECTION_ALLOC && kind !== SECTION_TLS) continue; // debug info, discarded groups
      if (rs.type === SHT_REL) {
        throw formatError(
          'ERR_LINK_UNSUPPORTED_RELOCATION',
          object.elf.origin,
          rs.headerOffset,
          `section [${rs.index}] ${JSON.stringify(rs.name)} holds SHT_REL relocations (no addends); x86-64 objects use SHT_RELA`,
        );
      }
      if (rs.type !== SHT_RELA) continue;
      if (rs.link !== object.elf.symbolTable?.index) {
        throw formatError(
          'ERR_ELF_BAD_SECTION_INDEX',
          object.elf.origin,
          rs.headerOffset + 40,
          `relocation section [${rs.index}] uses symbol table ${rs.link}, not the object's symbol table`,
        );
      }
      const targetSection = elfSections[target]!;
      const count = rs.size / 24;
      relocationLists.push({
        object,
        offset: rs.offset,
        first: relocationCount,
        count,
        target,
        targetSize: targetSection.size,
        name: targetSection.name,
        inEhFrame: targetSection.name === EH_FRAME,
      });
      relocationCount += count;
    }
  }
  let ehFrame: PlannedSection | undefined;
  if (ehPieces.length > 0) {
    const content = new Uint8Array(Math.ceil(ehSize / 4) * 4 + 4); // ends with a zero-length terminator record
    for (const p of ehPieces) content.set(p.object.elf.sections[p.section]!.content!, p.object.placeOffset[p.section]!);
    ehFrame = addSection(EH_FRAME, groups[0]!, 8, content.length, content);
    for (const p of ehPieces) p.object.placeSection[p.section] = ehFrame.serial;
  }

  for (const [name, m] of merged) {
    let content: Uint8Array | undefined;
    if (m.content) {
      content = new Uint8Array(m.size);
      for (const p of m.pieces) {
        const c = p.object.elf.sections[p.section]!.content;
        if (c) content.set(c, p.object.placeOffset[p.section]!);
      }
    }
    const prot = protectionOf(m.flags);
    const section = addSection(
      name,
      groups[(prot & W ? 1 : 0) | (prot & X ? 2 : 0)]!,
      Math.min(m.alignment, options.pageSize),
      m.size,
      content,
    );
    for (const p of m.pieces) {
      p.object.placeSection[p.section] = section.serial;
      const array = arrayPriority(name);
      if (array) arrays.push({ object: p.object, section: p.section, ...array });
    }
    for (const g of boundaries.get(name)!)
      g.boundary = { serial: section.serial, size: m.size, end: g.name.startsWith('__stop_') };
  }

  // The linker's own data: COMMON symbols and __dso_handle, zero-filled.
  let dataSize = 0;
  let dataAlignment = 8;
  for (const g of symbols.values()) {
    if (g.state === SYM_COMMON) {
      dataSize = Math.ceil(dataSize / g.commonAlignment) * g.commonAlignment;
      g.dataOffset = dataSize;
      dataSize += Math.max(g.commonSize, 1);
      dataAlignment = Math.max(dataAlignment, g.commonAlignment);
      g.inGraph = true;
    } else if (g.state === SYM_SYNTHETIC && g.name === DSO_HANDLE) {
      dataSize = Math.ceil(dataSize / 8) * 8;
      g.dataOffset = dataSize;
      dataSize += 8;
      g.inGraph = true;
    } else if (g.state === SYM_DEFINED) {
      const o = g.object!;
      g.inGraph = o.symbolSection[g.index] !== SHN_ABS && o.definesAt(g.index);
    }
  }
  const dataSection =
    dataSize > 0
      ? addSection('$__jitmem_data', groups[1]!, Math.min(dataAlignment, options.pageSize), dataSize, undefined)
      : undefined;

  // Every relocation entry, copied once into aligned words (a memcpy per section).
  if (!LITTLE_ENDIAN_HOST)
    throw new JitmemError(
      'ERR_LINK_UNSUPPORTED_HOST',
      "jitmem's linker links x86-64 objects on a little-endian host only",
      {},
    );
  const relocationWords = new Uint32Array(relocationCount * 6);
  const wordBytes = new Uint8Array(relocationWords.buffer);
  for (const list of relocationLists)
    wordBytes.set(list.object.bytes.subarray(list.offset, list.offset + list.count * 24), list.first * 24);

  // Scan the relocations: refuse what cannot be linked, and find what needs a GOT entry or a stub.
  const scanner = new RelocationScanner(symbols.get(GOT_SYMBOL)?.state === SYM_SYNTHETIC);
  for (const list of relocationLists) scanner.scan(list, relocationWords);
  const { gotTargets, stubTargets, needGot, relaxable } = scanner;
  let gotSection: PlannedSection | undefined;
  if (gotTargets.length > 0 || needGot) {
    const size = Math.max(8, gotTargets.length * 8);
    gotSection = addSection('$__GOT', groups[0]!, 8, size, new Uint8Array(size));
  }
  let stubSection: PlannedSection | undefined;
  if (stubTargets.length > 0) {
    const content = new Uint8Array(stubTargets.length * STUB_SIZE);
    for (let i = 0; i < stubTargets.length; i++) content.set(STUB_BYTES, i * STUB_SIZE);
    stubSection = addSection('$__STUBS', groups[2]!, 16, content.length, content);
  }

  const graph: LinkGraph = {
    name: path.basename(typeof inputs[0] === 'string' ? inputs[0] : inputs[0]!.path),
    sections,
  };
  const layout = layoutGraph(graph, options.pageSize);
  if (layout.size > MAX_PROGRAM_BYTES) {
    throw new JitmemError(
      'ERR_LINK_TOO_LARGE',
      `the program would take ${layout.size} bytes laid out; jitmem links programs of up to ${MAX_PROGRAM_BYTES} bytes (4 GiB): a section or COMMON symbol is probably damaged`,
      { size: layout.size, limit: MAX_PROGRAM_BYTES },
    );
  }
  const placement = scanner.placement(layout.size);
  const t3 = performance.now();

  return new LinkedProgram(
    table,
    sections,
    relocationLists,
    relocationWords,
    gotTargets,
    stubTargets,
    gotSection,
    stubSection,
    dataSection,
    ehFrame,
    arrays,
    entryName,
    graph,
    layout,
    // Members are read while resolving (on demand): their reading counts as reading.
    { readObjects: t1 - t0 + memberTime, resolve: t2 - t1 - memberTime, layout: t3 - t2 },
    {
      objects: table.objects.length,
      sections: sections.length,
      relocations: relocationCount,
      gotEntries: gotTargets.length,
      stubs: stubTargets.length,
      externals: externals.size,
      relaxable,
    },
    // dlopen bound to the runtime still means the program loads libraries (loadsLibraries).
    callsRuntimeDlopen ? new Map([...externals, ['dlopen', runtime.get('dlopen')!]]) : externals,
    placement,
  );
}

/** Per-symbol facts the scan needs, as bits. */
const TARGET_IN_GRAPH = 1;
const TARGET_DISCARDED = 2;
const TARGET_TLS = 4;
const TARGET_LOCAL_COMMON = 8;

/** The facts about each local symbol of an object (and the globals it holds, by their table entry). */
function localTargetFlags(object: InputObject): Uint8Array {
  const flags = new Uint8Array(object.symbolCount);
  const sections = object.symbolSection;
  const kinds = object.sectionKind;
  for (let i = 0; i < object.symbolCount; i++) {
    const shndx = sections[i]!;
    if (shndx === SHN_UNDEF || shndx === SHN_ABS) continue;
    if (shndx === SHN_COMMON) {
      flags[i] = TARGET_LOCAL_COMMON;
      continue;
    }
    if (shndx >= 0xff00) continue;
    const k = kinds[shndx];
    flags[i] =
      k === SECTION_ALLOC
        ? TARGET_IN_GRAPH
        : k === SECTION_DISCARDED
          ? TARGET_DISCARDED
          : k === SECTION_TLS
            ? TARGET_TLS
            : 0;
  }
  return flags;
}

/**
 * Walks relocations before anything is allocated: refuses unsupported and thread-local ones
 * and references into discarded groups, checks indices and offsets, and decides which targets
 * need a GOT entry or a PLT stub (external ones) and which GOT loads become direct.
 */
class RelocationScanner {
  readonly gotTargets: Array<{ object: InputObject; index: number }> = [];
  readonly stubTargets: GlobalSymbol[] = [];
  relaxable = 0;
  /** Lowest and highest executor address reached by a 32-bit PC-relative reference from the graph. */
  nearLowest = Number.POSITIVE_INFINITY;
  nearHighest = Number.NEGATIVE_INFINITY;
  /** One of them, for messages. */
  nearSymbols: string[] = [];
  /** A 32-bit absolute reference to the graph itself (-fno-pic code): it must lie in the low 2 GiB. */
  absolute32: string | undefined;
  private flagsObject: InputObject | undefined;
  private flags: Uint8Array = new Uint8Array(0);

  constructor(public needGot: boolean) {}

  scan(list: RelocationList, words: Uint32Array): void {
    const object = list.object;
    const first = object.firstGlobal;
    const symbolCount = object.symbolCount;
    const globals = object.globals;
    if (this.flagsObject !== object) {
      // An object's relocation sections come one after another.
      this.flags = localTargetFlags(object);
      this.flagsObject = object;
    }
    const flags = this.flags;
    const targetSize = list.targetSize;
    if (object.sectionKind[list.target] === SECTION_TLS || object.isNoBits(list.target)) {
      if (list.count > 0) this.refuse(list, list.offset, 0);
    }
    for (let i = 0, at = list.offset, k = list.first * 6; i < list.count; i++, at += 24, k += 6) {
      const offset = words[k]!;
      const type = words[k + 2]!;
      const sym = words[k + 3]!;
      const kind = type < 64 ? relocationKinds[type]! : 0;
      if (!(kind & KIND_SUPPORTED) || sym >= symbolCount || words[k + 1] !== 0 || offset >= targetSize)
        this.refuse(list, at, i);
      if (type === 0) continue;
      let g: GlobalSymbol | undefined;
      let target: number;
      if (sym >= first && (g = globals[sym - first]) !== undefined) {
        target = g.inGraph ? TARGET_IN_GRAPH : 0;
        if (g.state === SYM_DEFINED && flagsOfDefinition(g) & TARGET_TLS) this.refuse(list, at, i);
      } else {
        target = flags[sym]!;
        if (target & (TARGET_TLS | TARGET_LOCAL_COMMON) || (target & TARGET_DISCARDED && !list.inEhFrame))
          this.refuse(list, at, i);
      }
      const inGraph = (target & TARGET_IN_GRAPH) !== 0;
      if (type === R_X86_64_PC32 && !inGraph && g !== undefined && g.address !== 0) this.near(g);
      else if ((type === R_X86_64_32 || type === R_X86_64_32S) && inGraph && this.absolute32 === undefined)
        this.absolute32 = `${relocationName(type)} at ${object.where(list.target, offset)}`;
      if ((kind & (KIND_GOT | KIND_BRANCH | KIND_GOT_BASE)) === 0) continue;
      if (kind & KIND_GOT_BASE) this.needGot = true;
      if (kind & KIND_GOT) {
        if (kind & KIND_RELAXABLE && inGraph && isRelaxable(object, list, offset, type)) {
          this.relaxable++;
          continue;
        }
        this.addGot(object, sym, g);
      } else if (kind & KIND_BRANCH && g !== undefined && !inGraph && g.stub < 0) {
        this.addGot(object, sym, g);
        g.stub = this.stubTargets.length;
        this.stubTargets.push(g);
      }
    }
  }

  private near(g: GlobalSymbol): void {
    if (g.address < this.nearLowest) {
      this.nearLowest = g.address;
      this.nearSymbols[0] = g.name;
    }
    if (g.address > this.nearHighest) {
      this.nearHighest = g.address;
      this.nearSymbols[1] = g.name;
    }
  }

  /**
   * Where the graph must lie for its 32-bit references to reach: within 2 GiB of every
   * external symbol reached PC-relative (PIE code reading a library's data directly, as if
   * through a copy relocation), and in the low 2 GiB for absolute 32-bit references to itself.
   * Undefined when nothing constrains it.
   */
  placement(size: number): { start: number; end: number } | undefined {
    if (this.absolute32 === undefined && this.nearSymbols.length === 0) return undefined;
    // Room for the addends (field offsets) of the references.
    const margin = 16 << 20;
    let start = 1 << 16;
    let end = 2 ** 47;
    const reasons: string[] = [];
    if (this.absolute32 !== undefined) {
      end = 2 ** 31;
      reasons.push(`in the low 2 GiB (${this.absolute32} is an absolute 32-bit address: code built with -fno-pic)`);
    }
    if (this.nearSymbols.length > 0) {
      start = Math.max(start, this.nearHighest - 2 ** 31 + margin);
      end = Math.min(end, this.nearLowest + 2 ** 31 - margin);
      const [lo, hi] = this.nearSymbols;
      reasons.push(
        lo === hi
          ? `within 2 GiB of ${JSON.stringify(lo)} at ${hex(this.nearLowest)}`
          : `within 2 GiB of both ${JSON.stringify(lo)} at ${hex(this.nearLowest)} and ${JSON.stringify(hi)} at ${hex(this.nearHighest)}`,
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

  private addGot(object: InputObject, sym: number, g: GlobalSymbol | undefined): void {
    if (g !== undefined) {
      if (g.got < 0) {
        g.got = this.gotTargets.length;
        this.gotTargets.push({ object, index: sym });
      }
      return;
    }
    object.localGot ??= new Map();
    if (!object.localGot.has(sym)) {
      object.localGot.set(sym, this.gotTargets.length);
      this.gotTargets.push({ object, index: sym });
    }
  }

  /** Throws the error that relocation `i` (its entry at `at`) deserves. */
  private refuse(list: RelocationList, at: number, i: number): never {
    const object = list.object;
    const view = object.view;
    const type = view.getUint32(at + 8, true);
    const sym = view.getUint32(at + 12, true);
    const kind = type < 64 ? relocationKinds[type]! : 0;
    const offset = view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_32;
    const name = relocationName(type);
    const where = `at ${object.where(list.target, offset)}`;
    const symbolName = () => JSON.stringify(object.symbolName(sym));
    if (!(kind & KIND_SUPPORTED)) {
      if (kind & KIND_TLS) {
        throw new JitmemError(
          'ERR_LINK_TLS_UNSUPPORTED',
          `${name} ${where} against ${sym < object.symbolCount ? symbolName() : `symbol ${sym}`}: thread-local storage is not implemented by jitmem's linker`,
          {
            relocation: name,
            object: object.name,
            section: list.name,
            offset,
          },
        );
      }
      throw new JitmemError(
        'ERR_LINK_UNSUPPORTED_RELOCATION',
        `${name} ${where}: ${kind & KIND_DYNAMIC ? 'a dynamic relocation has no place in a relocatable object' : "jitmem's linker does not support this relocation type"}`,
        { relocation: name, type, object: object.name, section: list.name, offset },
      );
    }
    if (sym >= object.symbolCount) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at + 12,
        `relocation ${i} of ${list.name} names symbol ${sym}; the symbol table has ${object.symbolCount}`,
      );
    }
    if (object.isNoBits(list.target) || offset >= list.targetSize) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at,
        `relocation ${i} patches offset ${offset} of ${list.name}, which has ${object.isNoBits(list.target) ? 'no content' : `${list.targetSize} bytes`}`,
      );
    }
    if (object.sectionKind[list.target] === SECTION_TLS) {
      throw new JitmemError(
        'ERR_LINK_TLS_UNSUPPORTED',
        `${name} ${where}: the section is thread-local storage, which jitmem's linker does not implement`,
        { relocation: name, object: object.name },
      );
    }
    const flags = localTargetFlags(object)[sym]!;
    const g = sym >= object.firstGlobal ? object.globals[sym - object.firstGlobal] : undefined;
    if (g !== undefined || flags & TARGET_TLS) {
      throw new JitmemError(
        'ERR_LINK_TLS_UNSUPPORTED',
        `${name} ${where} refers to thread-local ${symbolName()}, and jitmem's linker does not implement thread-local storage`,
        { relocation: name, symbol: object.symbolName(sym) },
      );
    }
    if (flags & TARGET_LOCAL_COMMON) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at + 12,
        `relocation ${i} refers to local COMMON symbol ${sym}`,
      );
    }
    throw new JitmemError(
      'ERR_LINK_DISCARDED_SECTION',
      `${name} ${where} refers to ${symbolName()} in a COMDAT group whose copy from another object was kept`,
      {
        relocation: name,
        object: object.name,
      },
    );
  }
}

function flagsOfDefinition(g: GlobalSymbol): number {
  const o = g.object!;
  const shndx = o.symbolSection[g.index]!;
  return shndx < 0xff00 && shndx !== SHN_UNDEF && o.sectionKind[shndx] === SECTION_TLS ? TARGET_TLS : 0;
}
