import { isAscii } from 'node:buffer';
import { JitmemError, hex } from '../core/errors.js';
import {
  EM_X86_64,
  SHF_ALLOC,
  SHF_EXCLUDE,
  SHF_TLS,
  SHN_ABS,
  SHN_COMMON,
  SHN_LORESERVE,
  SHN_UNDEF,
  SHN_XINDEX,
  SHT_GROUP,
  SHT_NOBITS,
  SHT_NULL,
  SHT_REL,
  SHT_RELA,
  STB_LOCAL,
  STT_SECTION,
  machineName,
} from '../objects/elf-constants.js';
import type { ElfObject, ElfSection } from '../objects/elf-object.js';
import { formatError, originName } from '../objects/format-error.js';
import type { GlobalSymbol } from './symbol-table.js';
import { ScratchArray } from './scratch-array.js';

/**
 * One relocatable object taking part in a link, with its symbol table decoded into typed
 * arrays (only global names become strings) and its sections sorted into what the link does
 * with them. Everything is a view of the file's bytes; nothing is copied.
 */

/** What the link does with a section. */
export const SECTION_SKIP = 0;
/** Allocated: becomes a section of the link graph (or a piece of a merged one). */
export const SECTION_ALLOC = 1;
/** A member of a COMDAT group another object already provided. */
export const SECTION_DISCARDED = 2;
/** Thread-local storage (.tdata, .tbss): the program's TLS image. */
export const SECTION_TLS = 3;

const GRP_COMDAT = 1;
const SHN_X86_64_LCOMMON = 0xff02;
const TWO_32 = 2 ** 32;
/** The symbol and relocation words are read as host words: x86-64's byte order. */
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Scratch words for the symbol table being read (readSymbols): the copy lives only while one table is read. */
const symbolWords = new ScratchArray((n) => new Uint32Array(n), 1 << 18);

export class InputObject {
  readonly elf: ElfObject;
  /** file or file(member), as messages show it. */
  readonly name: string;
  /** Load order: objects given on the command line first, then archive members as pulled. */
  readonly order: number;
  readonly view: DataView;
  readonly bytes: Uint8Array;

  readonly symbolCount: number;
  /** Index of the first non-local symbol (the symbol table's sh_info). */
  readonly firstGlobal: number;
  readonly symbolSection: Uint32Array;
  readonly symbolValue: Float64Array;
  readonly symbolSize: Float64Array;
  /** st_info: binding << 4 | type. */
  readonly symbolInfo: Uint8Array;
  /** STV_*: the low two bits of st_other. */
  readonly symbolVisibility: Uint8Array;
  /**
   * Names of the global symbols (index - firstGlobal) while the object is being entered in the
   * symbol table: until then a name may be a slice of the whole string table decoded at once;
   * entering replaces each with the table's own string (ownGlobalName). Once entered
   * (namesEntered) the list goes, since each entry's name is then its table entry's (`globals`):
   * a list per object kept for the whole link is what a process's first link copies through its
   * young generation and promotes; a local symbol past sh_info is named from the string table.
   */
  globalNames: string[];
  private entered = false;
  /** Offset of each global's name in the string table (index - firstGlobal). */
  private readonly globalNameOffset: Uint32Array;
  /** The table entry each global symbol of this object resolved to (index - firstGlobal). */
  readonly globals: GlobalSymbol[];

  /** SECTION_* per section index. */
  readonly sectionKind: Uint8Array;
  /** Index of the link-graph section holding each allocated section, -1 for none. */
  readonly placeSection: Int32Array;
  /** Offset of each allocated section inside its link-graph section (merged sections). */
  readonly placeOffset: Float64Array;
  /** Position in the link's object list (SymbolTable.objects), once entered; -1 before. */
  slot = -1;
  /** The object has thread-local sections of its own (set by classifySections). */
  hasTls = false;
  /** GOT slot of local symbols reached through the GOT (rare: hand-written assembly). */
  localGot: Map<number, number> | undefined;

  private readonly strings: Buffer;
  /** The string table is all ASCII (the usual case): names are read as latin1, the fastest. */
  private stringsAscii: boolean | undefined;

  constructor(elf: ElfObject, order: number) {
    this.elf = elf;
    this.order = order;
    this.name = originName(elf.origin);
    this.bytes = elf.bytes;
    this.view = new DataView(elf.bytes.buffer, elf.bytes.byteOffset, elf.bytes.length);
    if (elf.machine !== EM_X86_64 || !elf.littleEndian) {
      throw new JitmemError(
        'ERR_LINK_UNSUPPORTED_MACHINE',
        `${this.name} is an ${machineName(elf.machine)}${elf.littleEndian ? '' : ' big-endian'} object; jitmem's linker links x86-64 objects only`,
        { file: elf.origin.file, machine: elf.machine },
      );
    }
    if (!LITTLE_ENDIAN_HOST)
      throw new JitmemError(
        'ERR_LINK_UNSUPPORTED_HOST',
        "jitmem's linker links x86-64 objects on a little-endian host only",
        {},
      );
    const sectionCount = elf.sectionCount;
    const table = elf.symbolTable;
    if (!table) {
      this.symbolCount = 0;
      this.firstGlobal = 0;
      this.strings = Buffer.alloc(0);
    } else {
      this.symbolCount = table.size / 24;
      this.firstGlobal = Math.min(table.info, this.symbolCount);
      const strtab = elf.sectionContent(table.link)!;
      this.strings = Buffer.from(strtab.buffer, strtab.byteOffset, strtab.length);
    }
    const n = this.symbolCount;
    const globalCount = n - this.firstGlobal;
    // The per-symbol and per-section arrays are views of one buffer: one allocation per object
    // rather than nine (a process's first link makes them in V8's interpreter, a few each ms).
    const buffer = new ArrayBuffer(
      8 * (2 * n + sectionCount) + 4 * (n + globalCount + sectionCount) + 2 * n + sectionCount,
    );
    let at = 0;
    this.symbolValue = new Float64Array(buffer, at, n);
    this.symbolSize = new Float64Array(buffer, (at += 8 * n), n);
    this.placeOffset = new Float64Array(buffer, (at += 8 * n), sectionCount);
    this.symbolSection = new Uint32Array(buffer, (at += 8 * sectionCount), n);
    this.globalNameOffset = new Uint32Array(buffer, (at += 4 * n), globalCount);
    this.placeSection = new Int32Array(buffer, (at += 4 * globalCount), sectionCount).fill(-1);
    this.symbolInfo = new Uint8Array(buffer, (at += 4 * sectionCount), n);
    this.symbolVisibility = new Uint8Array(buffer, (at += n), n);
    this.sectionKind = new Uint8Array(buffer, (at += n), sectionCount);
    this.globalNames = new Array(globalCount);
    this.globals = new Array(globalCount);
    if (table) this.readSymbols(table);
  }

  private corrupt(code: string, localOffset: number, what: string, extra: Record<string, unknown> = {}): JitmemError {
    return formatError(code, this.elf.origin, localOffset, what, extra);
  }

  private readSymbols(table: ElfSection): void {
    const view = this.view;
    const sectionCount = this.elf.sectionCount;
    // The SHT_SYMTAB_SHNDX section, looked for only when a symbol needs it (objects of more than
    // 65,280 sections): a search of every section header per object otherwise.
    let extendedOffset = 0;
    let extendedSize = -2;
    // The table copied once into aligned words (a memcpy; archive members are only 2-byte
    // aligned), read by index: a process's first link runs this loop in V8's interpreter, where
    // an element load costs a fraction of a DataView call.
    const words = symbolWords.take(this.symbolCount * 6);
    // (a plain view, not the Buffer's subarray: a Buffer's views are made by a JS constructor)
    const bytes = this.bytes;
    new Uint8Array(words.buffer, 0, this.symbolCount * 24).set(
      new Uint8Array(bytes.buffer, bytes.byteOffset + table.offset, this.symbolCount * 24),
    );
    // An all-ASCII string table (the usual case) is decoded once and the names sliced from it:
    // one native call per object rather than two per name.
    this.stringsAscii ??= isAscii(this.strings);
    const text = this.stringsAscii && this.symbolCount > this.firstGlobal ? this.strings.toString('latin1') : undefined;
    for (let i = 0, at = table.offset, k = 0; i < this.symbolCount; i++, at += 24, k += 6) {
      const infoWord = words[k + 1]!;
      const info = infoWord & 0xff;
      let shndx = infoWord >>> 16;
      if (shndx === SHN_XINDEX) {
        if (extendedSize === -2) {
          const extendedIndex = this.elf.extendedIndexSection(table.index);
          extendedOffset = extendedIndex < 0 ? 0 : this.elf.sectionOffset(extendedIndex);
          extendedSize = extendedIndex < 0 ? -1 : this.elf.sectionSize(extendedIndex);
        }
        if (i * 4 + 4 > extendedSize) {
          throw this.corrupt(
            'ERR_ELF_BAD_SECTION_INDEX',
            at + 6,
            `symbol ${i} uses an extended section index but no SHT_SYMTAB_SHNDX entry holds it`,
            { symbol: i },
          );
        }
        shndx = view.getUint32(extendedOffset + i * 4, true);
        if (shndx >= sectionCount) {
          throw this.corrupt(
            'ERR_ELF_BAD_SECTION_INDEX',
            extendedOffset + i * 4,
            `symbol ${i} is defined in section ${shndx}; the object has ${sectionCount} sections`,
            { symbol: i },
          );
        }
      } else if (shndx >= sectionCount && shndx < SHN_LORESERVE) {
        throw this.corrupt(
          'ERR_ELF_BAD_SECTION_INDEX',
          at + 6,
          `symbol ${i} is defined in section ${shndx}; the object has ${sectionCount} sections`,
          { symbol: i, value: shndx },
        );
      } else if (shndx === SHN_X86_64_LCOMMON) {
        shndx = SHN_COMMON; // large-model COMMON (.lbss): the same to a linker that places everything itself
      } else if (shndx >= SHN_LORESERVE && shndx !== SHN_ABS && shndx !== SHN_COMMON) {
        throw this.corrupt(
          'ERR_ELF_BAD_SECTION_INDEX',
          at + 6,
          `symbol ${i} has the reserved section index ${hex(shndx)}, which means nothing to an x86-64 linker`,
          { symbol: i, value: shndx },
        );
      }
      const valueHi = words[k + 3]!;
      const sizeHi = words[k + 5]!;
      // Absolute symbols may hold any 64-bit value; section offsets and sizes must be sane.
      if ((valueHi >= 0x200000 && shndx !== SHN_ABS) || sizeHi >= 0x200000) {
        throw this.corrupt('ERR_ELF_VALUE_TOO_LARGE', at + 8, `symbol ${i} has a value or size above 2^53`, {
          symbol: i,
        });
      }
      this.symbolInfo[i] = info;
      this.symbolVisibility[i] = (infoWord >>> 8) & 3;
      this.symbolSection[i] = shndx;
      // (a high word of 0 stored as is: in V8's interpreter the sum would be a heap number each time)
      this.symbolValue[i] =
        valueHi === 0
          ? words[k + 2]!
          : valueHi >= 0x200000
            ? Number(view.getBigUint64(at + 8, true))
            : valueHi * TWO_32 + words[k + 2]!;
      this.symbolSize[i] = sizeHi === 0 ? words[k + 4]! : sizeHi * TWO_32 + words[k + 4]!;
      if (i >= this.firstGlobal) {
        const nameAt = words[k]!;
        this.globalNameOffset[i - this.firstGlobal] = nameAt;
        this.globalNames[i - this.firstGlobal] =
          text === undefined ? this.stringAt(nameAt, at, i) : this.sliceName(text, nameAt, at, i);
      }
    }
  }

  /** The NUL-terminated name at `offset` of the decoded (ASCII) string table, checked as stringAt checks. */
  private sliceName(text: string, offset: number, fieldAt: number, symbol: number): string {
    const end = offset < text.length ? text.indexOf('\0', offset) : -1;
    return end < 0 ? this.stringAt(offset, fieldAt, symbol) : text.slice(offset, end);
  }

  /**
   * Global `index`'s name as a string of its own: a slice of the decoded string table would
   * keep the whole table (every local name) alive for as long as the symbol table keeps the
   * name, and a link of LLVM keeps a quarter of a million of them.
   */
  ownGlobalName(index: number): string {
    const name = this.globalNames[index - this.firstGlobal]!;
    if (!this.stringsAscii || name.length < 13) return name; // V8 copies slices under 13 characters
    const offset = this.globalNameOffset[index - this.firstGlobal]!;
    return this.strings.toString('latin1', offset, offset + name.length);
  }

  private stringAt(offset: number, fieldAt: number, symbol: number): string {
    const strings = this.strings;
    if (offset >= strings.length) {
      throw this.corrupt(
        'ERR_ELF_BAD_STRING',
        fieldAt,
        `the name of symbol ${symbol} is at offset ${offset} of a ${strings.length}-byte string table`,
        { symbol },
      );
    }
    const end = strings.indexOf(0, offset);
    if (end < 0)
      throw this.corrupt(
        'ERR_ELF_BAD_STRING',
        fieldAt,
        `the name of symbol ${symbol} runs past the end of its string table without a NUL`,
        { symbol },
      );
    // Each name is its own string (not a slice of the whole table decoded, which would keep
    // every local name of every object alive for as long as one global name is): a link of
    // LLVM keeps a quarter of a million of them.
    this.stringsAscii ??= isAscii(strings);
    return this.stringsAscii ? strings.toString('latin1', offset, end) : strings.toString('utf8', offset, end);
  }

  /** Called once every global of the object is in the symbol table: see globalNames. */
  namesEntered(): void {
    this.globalNames = [];
    this.entered = true;
  }

  /** A symbol's name for messages: its own, or for a section symbol its section's. */
  symbolName(index: number): string {
    if (index >= this.firstGlobal) {
      if (!this.entered) return this.globalNames[index - this.firstGlobal]!;
      const g = this.globals[index - this.firstGlobal];
      if (g !== undefined) return g.name;
      const at = this.elf.symbolTable!.offset + index * 24;
      return this.stringAt(this.view.getUint32(at, true), at, index);
    }
    if ((this.symbolInfo[index]! & 0xf) === STT_SECTION) {
      const section = this.symbolSection[index]!;
      return section < this.elf.sectionCount ? this.elf.sectionName(section) : `section symbol ${index}`;
    }
    const at = this.elf.symbolTable!.offset + index * 24;
    try {
      return this.stringAt(this.view.getUint32(at, true), at, index) || `local symbol ${index}`;
    } catch {
      return `local symbol ${index}`;
    }
  }

  isLocal(index: number): boolean {
    return index < this.firstGlobal || this.symbolInfo[index]! >> 4 === STB_LOCAL;
  }

  /**
   * The COMDAT groups of this object: signature and member sections. Called before the
   * symbols are entered, so that a group already seen discards its members first.
   */
  comdatGroups(): Array<{ signature: string; members: number[]; section: number }> {
    const groups: Array<{ signature: string; members: number[]; section: number }> = [];
    const elf = this.elf;
    const sectionCount = elf.sectionCount;
    for (let s = 0; s < sectionCount; s++) {
      if (elf.sectionType(s) !== SHT_GROUP) continue;
      const size = elf.sectionSize(s);
      if (size < 4)
        throw this.corrupt(
          'ERR_ELF_BAD_SECTION',
          elf.sectionHeaderOffset(s),
          `group section [${s}] has ${size} bytes; it needs a 4-byte flags word`,
        );
      const at = elf.sectionOffset(s);
      if ((this.view.getUint32(at, true) & GRP_COMDAT) === 0) continue;
      const info = elf.sectionInfo(s);
      if (info >= this.symbolCount) {
        throw this.corrupt(
          'ERR_ELF_BAD_SECTION_INDEX',
          elf.sectionHeaderOffset(s) + 44,
          `group section [${s}] names signature symbol ${info}; the symbol table has ${this.symbolCount}`,
        );
      }
      const members: number[] = [];
      for (let p = 4; p + 4 <= size; p += 4) {
        const m = this.view.getUint32(at + p, true);
        if (m === 0 || m >= sectionCount) {
          throw this.corrupt(
            'ERR_ELF_BAD_SECTION_INDEX',
            at + p,
            `group section [${s}] lists section ${m}; the object has ${sectionCount}`,
          );
        }
        members.push(m);
      }
      groups.push({ signature: this.symbolName(info), members, section: s });
    }
    return groups;
  }

  /** Sorts the sections into allocated, discarded (set beforehand), TLS and skipped ones. */
  classifySections(): void {
    const elf = this.elf;
    for (let index = 0; index < elf.sectionCount; index++) {
      if (this.sectionKind[index] === SECTION_DISCARDED) continue;
      const flags = elf.sectionFlags(index);
      const type = elf.sectionType(index);
      if (!(flags & SHF_ALLOC) || flags & SHF_EXCLUDE || type === SHT_NULL) continue;
      if (type === SHT_GROUP || type === SHT_RELA || type === SHT_REL) continue;
      if (elf.sectionNameIs(index, '.note.GNU-stack') || elf.sectionNameIs(index, '.note.gnu.property')) continue;
      this.sectionKind[index] = flags & SHF_TLS ? SECTION_TLS : SECTION_ALLOC;
      if (flags & SHF_TLS) this.hasTls = true;
    }
  }

  /** True when the symbol has an address in this object (a kept allocated section, or absolute). */
  definesAt(index: number): boolean {
    const shndx = this.symbolSection[index]!;
    return (
      shndx === SHN_ABS || (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && this.sectionKind[shndx] === SECTION_ALLOC)
    );
  }

  isCommon(index: number): boolean {
    return this.symbolSection[index] === SHN_COMMON;
  }

  isNoBits(sectionIndex: number): boolean {
    return this.elf.sectionType(sectionIndex) === SHT_NOBITS;
  }

  /** "section .text+0x1c of foo.o", for messages. */
  where(sectionIndex: number, offset: number): string {
    const name = sectionIndex < this.elf.sectionCount ? this.elf.sectionName(sectionIndex) : `section ${sectionIndex}`;
    return `${name}+${hex(offset)} in ${this.name}`;
  }
}
