import { JitmemError } from '../core/errors.js';
import type { ArArchive, ArMember } from '../objects/ar-archive.js';
import { SHN_COMMON, SHN_LORESERVE, SHN_UNDEF, STB_LOCAL, STB_WEAK } from '../objects/elf-constants.js';

/** st_info's type of a thread-local symbol. */
const STT_TLS = 6;
import { readElfObject } from '../objects/elf-object.js';
import { InputObject, SECTION_DISCARDED } from './input-object.js';

/**
 * One symbol table across every object of a link, resolved the way a static linker does it:
 * a strong definition wins over weak ones and over COMMON; two strong definitions are an
 * error; COMMON declarations merge (largest size, strictest alignment); an undefined symbol
 * pulls the archive member that defines it, and that member's own undefined symbols pull
 * further members, until nothing new is pulled. Undefined weak references pull nothing.
 */

export const SYM_UNDEFINED = 0;
/** Defined in an object of the link. */
export const SYM_DEFINED = 1;
export const SYM_COMMON = 2;
/** Found in the executor (its process, or a library it opened). */
export const SYM_EXTERNAL = 3;
/** Made by the linker: __dso_handle, _GLOBAL_OFFSET_TABLE_. */
export const SYM_SYNTHETIC = 4;
/** An undefined weak reference nothing defines: address 0. */
export const SYM_NULL = 5;

/** Names a static linker provides itself. */
export const DSO_HANDLE = '__dso_handle';
export const GOT_SYMBOL = '_GLOBAL_OFFSET_TABLE_';

export class GlobalSymbol {
  state = SYM_UNDEFINED;
  /** The object that defines it (DEFINED, COMMON), and the symbol's index there. */
  object: InputObject | undefined = undefined;
  index = 0;
  weakDefinition = false;
  /** Some object refers to it with a non-weak binding: it must be found. */
  strongReference = false;
  /**
   * Referred to as a thread-local (an undefined STT_TLS symbol): it has no one address to look
   * up; the loader's TLS library asks the executor's dynamic linker where it is.
   */
  threadLocal = false;
  /** The first object that referred to it, for messages. */
  referrer: InputObject | undefined = undefined;
  commonSize = 0;
  commonAlignment = 1;
  /** True when its address lies inside the link graph (it can be reached PC-relative). */
  inGraph = false;
  /**
   * Executor address of an EXTERNAL symbol (or 0 for NULL), set when resolving. Addresses inside
   * the graph are not kept here: each relocate() computes its own (see assignAddresses).
   *
   * It starts as -0 (=== 0) rather than 0: a field first given a small integer and later an
   * address (not a small integer) changes every symbol's hidden class, and V8 then migrates each
   * of the thousands of symbols one by one when it next touches it, in a process's first link
   * in its interpreter. Started as a double, the field is a double from the start.
   */
  address = -0;
  /** Index of its GOT entry, -1 for none. */
  got = -1;
  /** Index of its PLT stub, -1 for none. */
  stub = -1;
  /** For COMMON and synthetic symbols: offset inside the linker's own data section. */
  dataOffset = 0;
  /** For __start_X and __stop_X: the merged section X (its serial), and which end. */
  boundary: { serial: number; size: number; end: boolean } | undefined = undefined;

  /** Index in the table, in order of first appearance: where a relocation's addresses keep it. */
  constructor(
    readonly name: string,
    readonly serial: number,
  ) {}
}

interface ArchiveInput {
  readonly file: string;
  /** Defined global name -> the first member defining it. */
  readonly index: Map<string, ArMember>;
  readonly loaded: Set<ArMember>;
}

export class SymbolTable {
  readonly symbols = new Map<string, GlobalSymbol>();
  /**
   * The same symbols by serial (order of first appearance), for the passes that visit them all:
   * an index loop, where iterating the map would make an iterator result per symbol in a
   * process's first link, which runs in V8's interpreter.
   */
  readonly list: GlobalSymbol[] = [];
  readonly objects: InputObject[] = [];
  private readonly archives: ArchiveInput[] = [];
  private readonly comdats = new Map<string, InputObject>();
  private pending: GlobalSymbol[] = [];

  addObject(object: InputObject): void {
    object.slot = this.objects.length;
    this.objects.push(object);
    for (const group of object.comdatGroups()) {
      if (this.comdats.has(group.signature)) {
        for (const m of group.members) object.sectionKind[m] = SECTION_DISCARDED;
      } else {
        this.comdats.set(group.signature, object);
      }
    }
    object.classifySections();
    for (let i = object.firstGlobal; i < object.symbolCount; i++) this.enter(object, i);
    object.namesEntered();
  }

  addArchive(file: string, archive: ArArchive): void {
    const index = new Map<string, ArMember>();
    if (archive.symbols.length > 0) {
      const symbols = archive.symbols;
      for (let i = 0; i < symbols.length; i++) {
        const s = symbols[i]!;
        if (!index.has(s.name)) index.set(s.name, s.member);
      }
    } else {
      // No symbol index (built with `ar q` and no ranlib): read the members' own tables.
      for (const member of archive.members) {
        const elf = readElfObject(member.data, { file, member: member.name, base: member.dataOffset });
        const probe = new InputObject(elf, -1);
        for (let i = probe.firstGlobal; i < probe.symbolCount; i++) {
          const shndx = probe.symbolSection[i]!;
          if (shndx !== SHN_UNDEF && shndx !== SHN_COMMON && probe.symbolInfo[i]! >> 4 !== STB_LOCAL) {
            const name = probe.ownGlobalName(i);
            if (!index.has(name)) index.set(name, member);
          }
        }
      }
    }
    // Only the index is kept: the archive's own symbol list (hundreds of thousands of entries
    // for LLVM's archives) can go as soon as it is read.
    this.archives.push({ file, index, loaded: new Set() });
  }

  private enter(object: InputObject, i: number): void {
    const info = object.symbolInfo[i]!;
    const binding = info >> 4;
    if (binding === STB_LOCAL) {
      object.globalNames[i - object.firstGlobal] = object.ownGlobalName(i);
      return;
    }
    const name = object.globalNames[i - object.firstGlobal]!;
    let g = this.symbols.get(name);
    if (g === undefined) {
      g = new GlobalSymbol(object.ownGlobalName(i), this.symbols.size);
      this.symbols.set(g.name, g);
      this.list.push(g);
    }
    // One string per name for the whole link, of its own: this object's copy can go.
    object.globalNames[i - object.firstGlobal] = g.name;
    object.globals[i - object.firstGlobal] = g;
    const shndx = object.symbolSection[i]!;
    const weak = binding === STB_WEAK;
    if (name === '') return;

    // A definition inside a discarded COMDAT member is a reference to the copy that was kept.
    const undefinedHere =
      shndx === SHN_UNDEF || (shndx < SHN_LORESERVE && object.sectionKind[shndx] === SECTION_DISCARDED);
    if (undefinedHere) {
      g.referrer ??= object;
      if ((info & 0xf) === STT_TLS) g.threadLocal = true;
      if (!weak && !g.strongReference) {
        g.strongReference = true;
        if (g.state === SYM_UNDEFINED) this.pending.push(g);
      }
      return;
    }
    if (shndx === SHN_COMMON) {
      if (g.state === SYM_DEFINED) return;
      const size = object.symbolSize[i]!;
      const alignment = Math.max(1, object.symbolValue[i]!);
      if (g.state === SYM_COMMON) {
        g.commonSize = Math.max(g.commonSize, size);
        g.commonAlignment = Math.max(g.commonAlignment, alignment);
        return;
      }
      g.state = SYM_COMMON;
      g.object = object;
      g.index = i;
      g.commonSize = size;
      g.commonAlignment = alignment;
      return;
    }
    if (g.state === SYM_DEFINED) {
      if (weak) return;
      if (!g.weakDefinition) {
        const first = g.object!;
        throw new JitmemError(
          'ERR_LINK_DUPLICATE_SYMBOL',
          `duplicate definition of symbol ${JSON.stringify(name)}: in ${first.where(first.symbolSection[g.index]!, first.symbolValue[g.index]!)} and in ${object.where(shndx, object.symbolValue[i]!)}`,
          { symbol: name, first: first.name, second: object.name },
        );
      }
    }
    g.state = SYM_DEFINED;
    g.object = object;
    g.index = i;
    g.weakDefinition = weak;
  }

  /**
   * Pulls archive members for strong undefined symbols until none is left that an archive
   * defines. `load` turns a member into an InputObject (numbering it in load order).
   */
  pullArchiveMembers(load: (file: string, member: ArMember) => InputObject): void {
    if (this.archives.length === 0) return;
    while (this.pending.length > 0) {
      const g = this.pending.pop()!;
      if (g.state !== SYM_UNDEFINED) continue;
      for (let i = 0; i < this.archives.length; i++) {
        const a = this.archives[i]!;
        const member = a.index.get(g.name);
        if (member === undefined || a.loaded.has(member)) continue;
        a.loaded.add(member);
        this.addObject(load(a.file, member));
        break;
      }
    }
  }

  /** Objects loaded so far, in load order. */
  get objectCount(): number {
    return this.objects.length;
  }
}
