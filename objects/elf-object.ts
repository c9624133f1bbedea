import { isAscii } from 'node:buffer';
import { formatError, type ByteOrigin } from './format-error.js';
import {
  ELF64_EHDR_SIZE,
  ELF64_REL_SIZE,
  ELF64_RELA_SIZE,
  ELF64_SHDR_SIZE,
  ELF64_SYM_SIZE,
  ELF_MAGIC,
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ET_REL,
  EV_CURRENT,
  SHN_LORESERVE,
  SHN_XINDEX,
  SHT_GROUP,
  SHT_NOBITS,
  SHT_NULL,
  SHT_REL,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  SHT_SYMTAB_SHNDX,
} from './elf-constants.js';

/**
 * A reader for ELF64 relocatable objects (either byte order; x86-64, AArch64 and any other
 * machine, since nothing here depends on the instruction set). It reads the header and the
 * section headers eagerly and checks every offset, size, count and index against the bytes it
 * was given before using it; symbols and relocations are decoded on first use, with the same
 * checks. Section contents are views of the input (zero-copy). Malformed input throws a
 * JitmemError with an ERR_ELF_* code and the file offset of the offending field.
 */

export interface ElfSection {
  readonly index: number;
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly address: number;
  /** sh_offset: where the content starts, counted from the start of the object. */
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  /** sh_addralign as the file has it: 0 or a power of two. */
  readonly addressAlignment: number;
  readonly entrySize: number;
  /** The section's bytes, a view of the input; absent for NOBITS and NULL sections. */
  readonly content?: Uint8Array;
  /** Where this section's header starts, counted from the start of the object. */
  readonly headerOffset: number;
}

export interface ElfSymbol {
  readonly index: number;
  readonly name: string;
  readonly value: number;
  readonly size: number;
  /** STB_*: local, global, weak. */
  readonly binding: number;
  /** STT_*: notype, object, func, section, file... */
  readonly type: number;
  /** STV_*: the low two bits of st_other. */
  readonly visibility: number;
  /** The section the symbol is defined in (extended indices resolved), or SHN_UNDEF/ABS/COMMON. */
  readonly sectionIndex: number;
}

export interface ElfRelocation {
  /** Offset of the place to fix up, inside the target section. */
  readonly offset: number;
  /** The machine-specific relocation type (R_X86_64_*, R_AARCH64_*). */
  readonly type: number;
  /** Index into the object's symbol table; 0 means no symbol. */
  readonly symbolIndex: number;
  /** The explicit addend (RELA) or 0 for REL sections, whose addend sits in the target bytes. */
  readonly addend: number;
}

/** Field offsets in the ELF64 file header (Elf64_Ehdr), after e_ident. */
const EHDR = {
  type: 16,
  machine: 18,
  version: 20,
  shoff: 40,
  flags: 48,
  ehsize: 52,
  shentsize: 58,
  shnum: 60,
  shstrndx: 62,
} as const;
/** Field offsets in an ELF64 section header (Elf64_Shdr). */
const SHDR = {
  name: 0,
  type: 4,
  flags: 8,
  addr: 16,
  offset: 24,
  size: 32,
  link: 40,
  info: 44,
  addralign: 48,
  entsize: 56,
} as const;
/** Field offsets in an ELF64 symbol (Elf64_Sym). */
const SYM = { name: 0, info: 4, other: 5, shndx: 6, value: 8, size: 16 } as const;
/**
 * Field offsets in an ELF64 relocation (Elf64_Rel, Elf64_Rela): r_info holds the type in its low 32
 * bits, the symbol in its high 32.
 */
const RELA = { offset: 0, info: 8, infoHigh: 12, addend: 16 } as const;
/** st_info and st_other: the symbol type is the low four bits of st_info, its visibility the low two of st_other. */
const STT_MASK = 0xf;
const STV_MASK = 0x3;
/** An SHT_SYMTAB_SHNDX or SHT_GROUP entry is one 32-bit word. */
const WORD_SIZE = 4;

const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');
const NON_ASCII = /[^\x00-\x7f]/;

/** Section types that are tables of fixed-size entries, with the ELF64 entry size. */
const TABLE_ENTRY_SIZES = new Map<number, number>([
  [SHT_SYMTAB, ELF64_SYM_SIZE],
  [SHT_RELA, ELF64_RELA_SIZE],
  [SHT_REL, ELF64_REL_SIZE],
  [SHT_SYMTAB_SHNDX, WORD_SIZE],
  [SHT_GROUP, WORD_SIZE],
]);
const TWO_POW_32 = 2 ** 32;
/** Whether this host's words are little-endian: then a little-endian object's tables can be read as host words. */
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Field access at offsets the caller has already checked against the input's length. */
class Fields {
  constructor(
    readonly origin: ByteOrigin,
    readonly view: DataView,
    readonly littleEndian: boolean,
  ) {}

  u8(offset: number): number {
    return this.view.getUint8(offset);
  }

  u16(offset: number): number {
    return this.view.getUint16(offset, this.littleEndian);
  }

  u32(offset: number): number {
    return this.view.getUint32(offset, this.littleEndian);
  }

  /** A u64 that must fit a JS number; `field` names it in the error. */
  u64(offset: number, field: string): number {
    const lo = this.view.getUint32(offset + (this.littleEndian ? 0 : 4), this.littleEndian);
    const hi = this.view.getUint32(offset + (this.littleEndian ? 4 : 0), this.littleEndian);
    if (hi >= 0x200000) {
      throw formatError(
        'ERR_ELF_VALUE_TOO_LARGE',
        this.origin,
        offset,
        `${field} is 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}, above 2^53, larger than any object file or address jitmem handles`,
        { field },
      );
    }
    return hi * TWO_POW_32 + lo;
  }

  /** An i64 that must fit a JS number. */
  i64(offset: number, field: string): number {
    const value = this.view.getBigInt64(offset, this.littleEndian);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw formatError(
        'ERR_ELF_VALUE_TOO_LARGE',
        this.origin,
        offset,
        `${field} is ${value}, outside the range of safe integers (±2^53)`,
        { field },
      );
    }
    return Number(value);
  }
}

function isPowerOfTwoOrZero(value: number): boolean {
  // Exact for every safe integer, unlike bitwise operators, which work on 32 bits.
  if (value === 0) return true;
  let v = value;
  while (v > 1) {
    if (v % 2 !== 0) return false;
    v /= 2;
  }
  return true;
}

/** Offsets in e_ident. */
const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;

/** Checks e_ident (magic, class, data encoding, version) and the header's length; returns EI_DATA. */
function checkIdentification(bytes: Uint8Array, origin: ByteOrigin): number {
  const length = bytes.length;
  for (let i = 0; i < 4; i++) {
    if (i >= length || bytes[i] !== ELF_MAGIC[i]) {
      const seen = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
      throw formatError(
        'ERR_ELF_BAD_MAGIC',
        origin,
        0,
        `expected the ELF magic 7f 45 4c 46; found ${seen || 'an empty file'}`,
      );
    }
  }
  if (length < 16)
    throw formatError(
      'ERR_ELF_TRUNCATED',
      origin,
      length,
      `the ELF identification needs 16 bytes; the object has ${length}`,
    );
  const elfClass = bytes[EI_CLASS]!;
  if (elfClass !== ELFCLASS64) {
    throw formatError(
      'ERR_ELF_UNSUPPORTED_CLASS',
      origin,
      4,
      elfClass === ELFCLASS32
        ? 'this is a 32-bit ELF object; jitmem reads ELF64 only'
        : `EI_CLASS is ${elfClass}; expected 2 (ELFCLASS64)`,
      { value: elfClass },
    );
  }
  const encoding = bytes[EI_DATA]!;
  if (encoding !== ELFDATA2LSB && encoding !== ELFDATA2MSB) {
    throw formatError(
      'ERR_ELF_BAD_ENCODING',
      origin,
      5,
      `EI_DATA is ${encoding}; expected 1 (little-endian) or 2 (big-endian)`,
      { value: encoding },
    );
  }
  if (bytes[EI_VERSION] !== EV_CURRENT) {
    throw formatError(
      'ERR_ELF_BAD_VERSION',
      origin,
      EI_VERSION,
      `EI_VERSION is ${bytes[EI_VERSION]}; expected 1 (EV_CURRENT)`,
      {
        value: bytes[EI_VERSION],
      },
    );
  }
  if (length < ELF64_EHDR_SIZE) {
    throw formatError(
      'ERR_ELF_TRUNCATED',
      origin,
      length,
      `the ELF64 header needs ${ELF64_EHDR_SIZE} bytes; the object has ${length}`,
    );
  }
  return encoding;
}

/**
 * The section headers, held as numbers in one typed array (SECTION_FIELDS per section) rather
 * than one object per section: an LLVM archive member has hundreds of sections (a COMDAT group
 * per inline function), a link of LLVM reads a quarter of a million, and the linker looks at
 * most of them once. Names and content views are made when asked for.
 *
 * The array is a Uint32Array when every 64-bit field of the object fits in 32 bits (every
 * relocatable object short of 4 GB), a Float64Array otherwise. The difference matters in a
 * process's first link, which runs in V8's interpreter: a value read from a Float64Array is a
 * new heap number there, and so is every sum made from it, and a field that is ever given one
 * (a section's size, say) boxes every later read of it; a Uint32Array's values under 2^31 are
 * small integers, which allocate nothing.
 */
const HEADER_FIELDS = {
  type: 0,
  flags: 1,
  address: 2,
  offset: 3,
  size: 4,
  link: 5,
  info: 6,
  addressAlignment: 7,
  entrySize: 8,
  nameOffset: 9,
} as const;
const SECTION_FIELDS = 10;

export class ElfObject {
  readonly origin: ByteOrigin;
  /** The object's bytes (a view of the file, or of the archive holding it). */
  readonly bytes: Uint8Array;
  readonly littleEndian: boolean;
  /** e_machine: EM_X86_64, EM_AARCH64... */
  readonly machine: number;
  /** e_flags (machine-specific). */
  readonly flags: number;
  /** e_shnum (or section 0's sh_size under extended numbering). */
  readonly sectionCount: number;
  /** The SHT_SYMTAB section, if the object has one. */
  readonly symbolTable: ElfSection | undefined;
  private readonly fields: Fields;
  /** e_shoff: where section header i starts is sectionTableOffset + 64 * i. */
  private readonly sectionTableOffset: number;
  /** SECTION_FIELDS numbers per section (HEADER_FIELDS), checked when read. */
  private readonly headers: Float64Array | Uint32Array;
  /** The section-name table (e_shstrndx) and its index; undefined when the object has none. */
  private readonly sectionNames: Uint8Array | undefined;
  private readonly sectionNamesIndex: number;
  /** The same bytes as a Buffer (no copy), for its latin1 decoding of one name. */
  private readonly sectionNamesBuffer: Buffer | undefined;
  private sectionNamesAscii: boolean | undefined;
  private cachedSections: readonly ElfSection[] | undefined;
  private cachedSymbols: readonly ElfSymbol[] | undefined;
  /**
   * Decoded string tables, or null for those that are not all ASCII; made on first use (a link
   * reads names through its own tables, and a WeakMap per object is an allocation and work for
   * every mark-compact).
   */
  private tableTexts: WeakMap<Uint8Array, string | null> | undefined;

  /** Reads the header and section headers of `bytes`; throws ERR_ELF_* on malformed input. */
  constructor(bytes: Uint8Array, origin: ByteOrigin) {
    this.origin = origin;
    this.bytes = bytes;
    const length = bytes.length;
    const encoding = checkIdentification(bytes, origin);
    this.littleEndian = encoding === ELFDATA2LSB;
    const f = (this.fields = new Fields(
      origin,
      new DataView(bytes.buffer, bytes.byteOffset, length),
      this.littleEndian,
    ));

    const type = f.u16(EHDR.type);
    if (type !== ET_REL) {
      const kind =
        type === 2
          ? 'an executable'
          : type === 3
            ? 'a shared object or PIE'
            : type === 4
              ? 'a core file'
              : `of type ${type}`;
      throw formatError(
        'ERR_ELF_NOT_RELOCATABLE',
        origin,
        EHDR.type,
        `the file is ${kind}; expected a relocatable object (e_type 1, ET_REL), as 'cc -c' makes`,
        { value: type },
      );
    }
    this.machine = f.u16(EHDR.machine);
    if (f.u32(EHDR.version) !== EV_CURRENT)
      throw formatError(
        'ERR_ELF_BAD_VERSION',
        origin,
        EHDR.version,
        `e_version is ${f.u32(EHDR.version)}; expected 1`,
        {
          value: f.u32(EHDR.version),
        },
      );
    this.flags = f.u32(EHDR.flags);
    const headerSize = f.u16(EHDR.ehsize);
    if (headerSize !== ELF64_EHDR_SIZE) {
      throw formatError(
        'ERR_ELF_BAD_HEADER',
        origin,
        EHDR.ehsize,
        `e_ehsize is ${headerSize}; expected ${ELF64_EHDR_SIZE} for ELF64`,
        { value: headerSize },
      );
    }

    const table = this.readSectionTable(length);
    this.sectionTableOffset = table.offset;
    this.sectionCount = table.count;
    this.headers = table.headers;
    this.sectionNamesIndex = table.namesIndex;
    const names = (this.sectionNames = this.sectionNameTable(table.namesIndex));
    this.sectionNamesBuffer = names && Buffer.from(names.buffer, names.byteOffset, names.length);
    this.checkSectionNames();
    let symbolTable = -1;
    for (let index = 0; index < this.sectionCount; index++) {
      const sectionType = this.sectionType(index);
      if (TABLE_ENTRY_SIZES.has(sectionType)) this.checkLinks(index);
    }
    for (let index = 0; index < this.sectionCount; index++) {
      if (this.sectionType(index) !== SHT_SYMTAB) continue;
      if (symbolTable >= 0) {
        throw formatError(
          'ERR_ELF_BAD_SECTION',
          origin,
          this.sectionHeaderOffset(index) + SHDR.type,
          `section [${index}] is a second symbol table (the first is [${symbolTable}]); an object has at most one`,
        );
      }
      symbolTable = index;
    }
    this.symbolTable = symbolTable >= 0 ? this.section(symbolTable) : undefined;
  }

  /** sh_type of section `index` (an index below sectionCount, as every accessor below takes). */
  sectionType(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.type]!;
  }

  sectionFlags(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.flags]!;
  }

  /** sh_offset: where the content starts, counted from the start of the object. */
  sectionOffset(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.offset]!;
  }

  sectionSize(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.size]!;
  }

  sectionLink(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.link]!;
  }

  sectionInfo(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.info]!;
  }

  /** sh_addralign as the file has it: 0 or a power of two. */
  sectionAlignment(index: number): number {
    return this.headers[index * SECTION_FIELDS + HEADER_FIELDS.addressAlignment]!;
  }

  /** Where section `index`'s header starts, counted from the start of the object. */
  sectionHeaderOffset(index: number): number {
    return this.sectionTableOffset + index * ELF64_SHDR_SIZE;
  }

  /** The section's name (checked when the object was read). */
  sectionName(index: number): string {
    const names = this.sectionNamesBuffer;
    if (names === undefined) return '';
    const nameOffset = this.headers[index * SECTION_FIELDS + HEADER_FIELDS.nameOffset]!;
    const end = names.indexOf(0, nameOffset);
    if (nameOffset >= names.length || end < 0) {
      // string() throws the error that says which.
      return this.string(
        names,
        this.sectionNamesIndex,
        nameOffset,
        this.sectionHeaderOffset(index),
        () => `the name of section [${index}]`,
      );
    }
    // Each name its own string, not a slice of the whole table decoded: a slice would keep the
    // table alive, and LLVM's tables hold thousands of names of sections a link never keeps.
    if (end === nameOffset) return '';
    this.sectionNamesAscii ??= isAscii(names);
    return this.sectionNamesAscii
      ? names.toString('latin1', nameOffset, end)
      : utf8.decode(names.subarray(nameOffset, end));
  }

  /**
   * Whether the section is named `name` (an ASCII name), compared in place: no string is made
   * for the many sections whose names a link only tests.
   */
  sectionNameIs(index: number, name: string): boolean {
    const names = this.sectionNames;
    if (names === undefined) return name === '';
    const nameOffset = this.headers[index * SECTION_FIELDS + HEADER_FIELDS.nameOffset]!;
    const length = name.length;
    if (nameOffset + length >= names.length || names[nameOffset + length] !== 0) return false;
    for (let i = 0; i < length; i++) if (names[nameOffset + i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** The section's bytes, a view of the input; undefined for NOBITS and NULL sections. */
  sectionContent(index: number): Uint8Array | undefined {
    const type = this.sectionType(index);
    if (type === SHT_NOBITS || type === SHT_NULL) return undefined;
    // A plain view, not the Buffer's subarray: a Buffer's views are made by a JS constructor, run
    // in V8's interpreter for each of a first link's sections.
    const bytes = this.bytes;
    return new Uint8Array(bytes.buffer, bytes.byteOffset + this.sectionOffset(index), this.sectionSize(index));
  }

  /** Section `index` as one object (made on each call unless `sections` was asked for). */
  section(index: number): ElfSection {
    const cached = this.cachedSections?.[index];
    if (cached !== undefined) return cached;
    const at = index * SECTION_FIELDS;
    const h = this.headers;
    const section: { -readonly [K in keyof ElfSection]: ElfSection[K] } = {
      index,
      type: h[at + HEADER_FIELDS.type]!,
      flags: h[at + HEADER_FIELDS.flags]!,
      address: h[at + HEADER_FIELDS.address]!,
      offset: h[at + HEADER_FIELDS.offset]!,
      size: h[at + HEADER_FIELDS.size]!,
      link: h[at + HEADER_FIELDS.link]!,
      info: h[at + HEADER_FIELDS.info]!,
      addressAlignment: h[at + HEADER_FIELDS.addressAlignment]!,
      entrySize: h[at + HEADER_FIELDS.entrySize]!,
      headerOffset: this.sectionHeaderOffset(index),
      name: this.sectionName(index),
    };
    const content = this.sectionContent(index);
    if (content !== undefined) section.content = content;
    return section;
  }

  /**
   * Every section as an object, made on first use and kept: for readers that want them all.
   * The linker uses the per-field accessors above, which make no object per section.
   */
  get sections(): readonly ElfSection[] {
    if (this.cachedSections === undefined) {
      const sections: ElfSection[] = new Array(this.sectionCount);
      const symbolTable = this.symbolTable;
      for (let index = 0; index < this.sectionCount; index++)
        sections[index] = index === symbolTable?.index ? symbolTable : this.section(index);
      this.cachedSections = sections;
    }
    return this.cachedSections;
  }

  private readSectionTable(length: number): {
    offset: number;
    count: number;
    namesIndex: number;
    headers: Float64Array | Uint32Array;
  } {
    const { origin } = this;
    const f = this.fields;
    const tableOffset = f.u64(EHDR.shoff, 'e_shoff');
    let count = f.u16(EHDR.shnum);
    let namesIndex = f.u16(EHDR.shstrndx);
    if (tableOffset === 0) {
      if (count !== 0)
        throw formatError(
          'ERR_ELF_BAD_HEADER',
          origin,
          EHDR.shnum,
          `e_shnum is ${count} but e_shoff is 0 (no section header table)`,
          { value: count },
        );
      return { offset: 0, count: 0, namesIndex, headers: new Uint32Array(0) };
    }
    const entrySize = f.u16(EHDR.shentsize);
    if (entrySize !== ELF64_SHDR_SIZE) {
      throw formatError(
        'ERR_ELF_BAD_HEADER',
        origin,
        EHDR.shentsize,
        `e_shentsize is ${entrySize}; expected ${ELF64_SHDR_SIZE} for ELF64`,
        { value: entrySize },
      );
    }
    if (tableOffset > length - ELF64_SHDR_SIZE) {
      throw formatError(
        'ERR_ELF_TRUNCATED',
        origin,
        EHDR.shoff,
        `e_shoff ${tableOffset} leaves no room for a ${ELF64_SHDR_SIZE}-byte section header before the end of the object (${length} bytes)`,
        {
          value: tableOffset,
        },
      );
    }
    // Extended numbering: with 65280 or more sections, the counts live in section 0.
    if (count === 0) count = f.u64(tableOffset + SHDR.size, 'the section count in section 0 (sh_size)');
    if (namesIndex === SHN_XINDEX) namesIndex = f.u32(tableOffset + SHDR.link);
    if (count > (length - tableOffset) / ELF64_SHDR_SIZE) {
      throw formatError(
        'ERR_ELF_TRUNCATED',
        origin,
        EHDR.shnum,
        `${count} section headers of ${ELF64_SHDR_SIZE} bytes from offset ${tableOffset} run past the end of the object (${length} bytes)`,
        { value: count },
      );
    }
    const words =
      this.littleEndian && LITTLE_ENDIAN_HOST ? this.readHeadersAsWords(tableOffset, count, length) : undefined;
    if (words !== undefined) return { offset: tableOffset, count, namesIndex, headers: words };
    const headers = new Float64Array(count * SECTION_FIELDS);
    for (let index = 0; index < count; index++)
      this.readHeader(headers, tableOffset + index * ELF64_SHDR_SIZE, index, length);
    return { offset: tableOffset, count, namesIndex, headers };
  }

  /**
   * The section headers of a little-endian object on a little-endian host, when every 64-bit
   * field fits in 32 bits: the table copied once into aligned words (a memcpy; archive members
   * are only 2-byte aligned), read by index into a Uint32Array, and checked as readHeader checks
   * them. Undefined otherwise: then readHeader reads them all (and refuses a value above 2^53).
   */
  private readHeadersAsWords(tableOffset: number, count: number, length: number): Uint32Array | undefined {
    const wordsPerHeader = ELF64_SHDR_SIZE / 4;
    const words = new Uint32Array(count * wordsPerHeader);
    // (a plain view, not the Buffer's subarray: a Buffer's views are made by a JS constructor)
    const bytes = this.bytes;
    new Uint8Array(words.buffer).set(
      new Uint8Array(bytes.buffer, bytes.byteOffset + tableOffset, count * ELF64_SHDR_SIZE),
    );
    let high = 0;
    // The high words of sh_flags, sh_addr, sh_offset, sh_size, sh_addralign and sh_entsize.
    for (let w = 0; w < words.length; w += wordsPerHeader)
      high |= words[w + 3]! | words[w + 5]! | words[w + 7]! | words[w + 9]! | words[w + 13]! | words[w + 15]!;
    if (high !== 0) return undefined;
    const headers = new Uint32Array(count * SECTION_FIELDS);
    for (let index = 0, w = 0, h = 0; index < count; index++, w += wordsPerHeader, h += SECTION_FIELDS) {
      headers[h + HEADER_FIELDS.nameOffset] = words[w]!;
      headers[h + HEADER_FIELDS.type] = words[w + 1]!;
      headers[h + HEADER_FIELDS.flags] = words[w + 2]!;
      headers[h + HEADER_FIELDS.address] = words[w + 4]!;
      headers[h + HEADER_FIELDS.offset] = words[w + 6]!;
      headers[h + HEADER_FIELDS.size] = words[w + 8]!;
      headers[h + HEADER_FIELDS.link] = words[w + 10]!;
      headers[h + HEADER_FIELDS.info] = words[w + 11]!;
      headers[h + HEADER_FIELDS.addressAlignment] = words[w + 12]!;
      headers[h + HEADER_FIELDS.entrySize] = words[w + 14]!;
      this.checkHeader(headers, tableOffset + index * ELF64_SHDR_SIZE, index, length);
    }
    return headers;
  }

  /** The section-name table (e_shstrndx), checked; undefined when the object has none. */
  private sectionNameTable(namesIndex: number): Uint8Array | undefined {
    const { origin } = this;
    if (namesIndex >= this.sectionCount) {
      throw formatError(
        'ERR_ELF_BAD_SECTION_INDEX',
        origin,
        EHDR.shstrndx,
        `the section-name table index (e_shstrndx) is ${namesIndex}; the object has ${this.sectionCount} sections`,
        {
          value: namesIndex,
        },
      );
    }
    if (namesIndex === 0) return undefined;
    const namesType = this.sectionType(namesIndex);
    if (namesType !== SHT_STRTAB) {
      throw formatError(
        'ERR_ELF_BAD_SECTION',
        origin,
        this.sectionHeaderOffset(namesIndex) + SHDR.type,
        `the section-name table [${namesIndex}] has type ${namesType}; expected SHT_STRTAB (3)`,
        {
          section: namesIndex,
        },
      );
    }
    const offset = this.sectionOffset(namesIndex);
    return this.bytes.subarray(offset, offset + this.sectionSize(namesIndex));
  }

  /**
   * Checks every section's name (inside the table, NUL-terminated) as the object is read, so
   * that a bad one is refused up front although names are made only when asked for.
   */
  private checkSectionNames(): void {
    const names = this.sectionNames;
    if (names === undefined) return;
    const lastNul = names.lastIndexOf(0);
    for (let index = 0; index < this.sectionCount; index++) {
      const nameOffset = this.headers[index * SECTION_FIELDS + HEADER_FIELDS.nameOffset]!;
      // Out of range or unterminated: string() throws the error that says which.
      if (nameOffset >= names.length || nameOffset > lastNul) this.sectionName(index);
    }
  }

  /** One section header, checked: its content lies inside the object, its alignment is 0 or a power of two. */
  private readHeader(headers: Float64Array, at: number, index: number, length: number): void {
    const f = this.fields;
    const type = f.u32(at + SHDR.type);
    const offset = f.u64(at + SHDR.offset, 'sh_offset');
    const size = f.u64(at + SHDR.size, 'sh_size');
    const h = index * SECTION_FIELDS;
    headers[h + HEADER_FIELDS.nameOffset] = f.u32(at + SHDR.name);
    headers[h + HEADER_FIELDS.type] = type;
    headers[h + HEADER_FIELDS.flags] = f.u64(at + SHDR.flags, 'sh_flags');
    headers[h + HEADER_FIELDS.address] = f.u64(at + SHDR.addr, 'sh_addr');
    headers[h + HEADER_FIELDS.offset] = offset;
    headers[h + HEADER_FIELDS.size] = size;
    headers[h + HEADER_FIELDS.link] = f.u32(at + SHDR.link);
    headers[h + HEADER_FIELDS.info] = f.u32(at + SHDR.info);
    const addressAlignment = f.u64(at + SHDR.addralign, 'sh_addralign');
    headers[h + HEADER_FIELDS.addressAlignment] = addressAlignment;
    headers[h + HEADER_FIELDS.entrySize] = f.u64(at + SHDR.entsize, 'sh_entsize');
    this.checkHeader(headers, at, index, length);
  }

  /** The checks of a header read into `headers`: its content inside the object, a sane alignment. */
  private checkHeader(headers: Float64Array | Uint32Array, at: number, index: number, length: number): void {
    const { origin } = this;
    const h = index * SECTION_FIELDS;
    const type = headers[h + HEADER_FIELDS.type]!;
    const offset = headers[h + HEADER_FIELDS.offset]!;
    const size = headers[h + HEADER_FIELDS.size]!;
    const addressAlignment = headers[h + HEADER_FIELDS.addressAlignment]!;
    if (type !== SHT_NOBITS && type !== SHT_NULL && (offset > length || size > length - offset)) {
      throw formatError(
        'ERR_ELF_TRUNCATED',
        origin,
        at + SHDR.offset,
        `section [${index}] claims ${size} bytes at offset ${offset}, past the end of the object (${length} bytes)`,
        { section: index, sectionOffset: offset, size },
      );
    }
    if (!isPowerOfTwoOrZero(addressAlignment)) {
      throw formatError(
        'ERR_ELF_BAD_ALIGNMENT',
        origin,
        at + SHDR.addralign,
        `section [${index}] has sh_addralign ${addressAlignment}; expected 0 or a power of two`,
        {
          section: index,
          value: addressAlignment,
        },
      );
    }
  }

  /** Checks the fixed entry sizes and the sh_link/sh_info indices of tables the linker will read. */
  private checkLinks(index: number): void {
    const type = this.sectionType(index);
    const entrySize = TABLE_ENTRY_SIZES.get(type)!;
    const { origin } = this;
    const at = this.sectionHeaderOffset(index);
    const sectionEntrySize = this.headers[index * SECTION_FIELDS + HEADER_FIELDS.entrySize]!;
    const size = this.sectionSize(index);
    const quotedName = () => JSON.stringify(this.sectionName(index));
    if (sectionEntrySize !== entrySize) {
      throw formatError(
        'ERR_ELF_BAD_ENTRY_SIZE',
        origin,
        at + SHDR.entsize,
        `section [${index}] ${quotedName()} has sh_entsize ${sectionEntrySize}; expected ${entrySize}`,
        {
          section: index,
          value: sectionEntrySize,
        },
      );
    }
    if (size % entrySize !== 0) {
      throw formatError(
        'ERR_ELF_BAD_SECTION',
        origin,
        at + SHDR.size,
        `section [${index}] ${quotedName()} has size ${size}, not a multiple of its entry size ${entrySize}`,
        {
          section: index,
          value: size,
        },
      );
    }
    const linkType = type === SHT_SYMTAB ? SHT_STRTAB : SHT_SYMTAB;
    const link = this.sectionLink(index);
    const linkedType = link < this.sectionCount ? this.sectionType(link) : undefined;
    if (linkedType !== linkType) {
      throw formatError(
        'ERR_ELF_BAD_SECTION_INDEX',
        origin,
        at + SHDR.link,
        `section [${index}] ${quotedName()} links to section ${link}, which is ${linkedType !== undefined ? `of type ${linkedType}` : 'missing'}; expected ${linkType === SHT_STRTAB ? 'a string table' : 'the symbol table'}`,
        { section: index, value: link },
      );
    }
    const info = this.sectionInfo(index);
    if ((type === SHT_RELA || type === SHT_REL) && (info === 0 || info >= this.sectionCount)) {
      throw formatError(
        'ERR_ELF_BAD_SECTION_INDEX',
        origin,
        at + SHDR.info,
        `relocation section [${index}] ${quotedName()} applies to section ${info}; expected 1..${this.sectionCount - 1}`,
        { section: index, value: info },
      );
    }
  }

  /** A NUL-terminated string at `nameOffset` in the string table `table` (section `tableIndex`). */
  private string(
    table: Uint8Array,
    tableIndex: number,
    nameOffset: number,
    fieldOffset: number,
    what: () => string,
  ): string {
    if (nameOffset >= table.length) {
      throw formatError(
        'ERR_ELF_BAD_STRING',
        this.origin,
        fieldOffset,
        `${what()} is at offset ${nameOffset} of string table [${tableIndex}], which has ${table.length} bytes`,
        {
          value: nameOffset,
        },
      );
    }
    // An all-ASCII table (the usual case) is decoded once and names are slices of it: one
    // decoder call per table instead of one per name.
    const texts = (this.tableTexts ??= new WeakMap());
    let text = texts.get(table);
    if (text === undefined) {
      const whole = latin1.decode(table);
      text = NON_ASCII.test(whole) ? null : whole;
      texts.set(table, text);
    }
    const end = text !== null ? text.indexOf('\0', nameOffset) : table.indexOf(0, nameOffset);
    if (end < 0) {
      throw formatError(
        'ERR_ELF_BAD_STRING',
        this.origin,
        fieldOffset,
        `${what()} at offset ${nameOffset} of string table [${tableIndex}] runs to the table's end without a terminating NUL`,
        {
          value: nameOffset,
        },
      );
    }
    if (end === nameOffset) return '';
    return text !== null ? text.slice(nameOffset, end) : utf8.decode(table.subarray(nameOffset, end));
  }

  /** The symbol table, decoded and checked on first use; empty when the object has none. */
  symbols(): readonly ElfSymbol[] {
    return (this.cachedSymbols ??= this.readSymbols());
  }

  private readSymbols(): ElfSymbol[] {
    const table = this.symbolTable;
    if (!table) return [];
    const f = this.fields;
    const stringsIndex = table.link;
    const names = this.sectionContent(stringsIndex)!;
    const count = table.size / ELF64_SYM_SIZE;
    const extended = this.extendedIndexSection(table.index);
    const sectionCount = this.sectionCount;
    const symbols: ElfSymbol[] = new Array(count);
    for (let index = 0; index < count; index++) {
      const at = table.offset + index * ELF64_SYM_SIZE;
      const info = f.u8(at + SYM.info);
      let sectionIndex = f.u16(at + SYM.shndx);
      let indexField = at + SYM.shndx;
      if (sectionIndex === SHN_XINDEX) {
        if (extended < 0 || (index + 1) * WORD_SIZE > this.sectionSize(extended)) {
          throw formatError(
            'ERR_ELF_BAD_SECTION_INDEX',
            this.origin,
            at + SYM.shndx,
            `symbol ${index} uses an extended section index (SHN_XINDEX) but no SHT_SYMTAB_SHNDX entry holds it`,
            {
              symbol: index,
            },
          );
        }
        indexField = this.sectionOffset(extended) + index * WORD_SIZE;
        sectionIndex = f.u32(indexField);
        if (sectionIndex >= sectionCount) {
          throw formatError(
            'ERR_ELF_BAD_SECTION_INDEX',
            this.origin,
            indexField,
            `symbol ${index} is defined in section ${sectionIndex}; the object has ${sectionCount} sections`,
            {
              symbol: index,
              value: sectionIndex,
            },
          );
        }
      } else if (sectionIndex < SHN_LORESERVE && sectionIndex >= sectionCount) {
        throw formatError(
          'ERR_ELF_BAD_SECTION_INDEX',
          this.origin,
          indexField,
          `symbol ${index} is defined in section ${sectionIndex}; the object has ${sectionCount} sections`,
          {
            symbol: index,
            value: sectionIndex,
          },
        );
      }
      symbols[index] = {
        index,
        name: this.string(names, stringsIndex, f.u32(at + SYM.name), at, () => `the name of symbol ${index}`),
        value: f.u64(at + SYM.value, `the value of symbol ${index}`),
        size: f.u64(at + SYM.size, `the size of symbol ${index}`),
        binding: info >> 4,
        type: info & STT_MASK,
        visibility: f.u8(at + SYM.other) & STV_MASK,
        sectionIndex,
      };
    }
    return symbols;
  }

  /** The SHT_SYMTAB_SHNDX section holding extended indices for symbol table `table`, or -1. */
  extendedIndexSection(table: number): number {
    for (let index = 0; index < this.sectionCount; index++)
      if (this.sectionType(index) === SHT_SYMTAB_SHNDX && this.sectionLink(index) === table) return index;
    return -1;
  }

  /** The SHT_RELA and SHT_REL sections, each applying to the section `info` names. */
  relocationSections(): ElfSection[] {
    return this.sections.filter((s) => s.type === SHT_RELA || s.type === SHT_REL);
  }

  /**
   * The relocations of a SHT_RELA or SHT_REL section of this object, checked against their target and
   * the symbol table.
   */
  relocations(section: ElfSection): ElfRelocation[] {
    if (this.sections[section.index] !== section || (section.type !== SHT_RELA && section.type !== SHT_REL)) {
      throw formatError(
        'ERR_ELF_BAD_SECTION',
        this.origin,
        section.headerOffset + SHDR.type,
        `section [${section.index}] ${JSON.stringify(section.name)} is not a relocation section of this object`,
      );
    }
    const f = this.fields;
    const withAddend = section.type === SHT_RELA;
    const entrySize = withAddend ? ELF64_RELA_SIZE : ELF64_REL_SIZE;
    const target = this.sections[section.info]!;
    const symbolCount = this.sections[section.link]!.size / ELF64_SYM_SIZE;
    const count = section.size / entrySize;
    const relocations: ElfRelocation[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = section.offset + i * entrySize;
      const offset = f.u64(at + RELA.offset, `r_offset of relocation ${i}`);
      if (offset >= target.size) {
        throw formatError(
          'ERR_ELF_BAD_RELOCATION',
          this.origin,
          at,
          `relocation ${i} of [${section.index}] ${JSON.stringify(section.name)} patches offset ${offset} of section [${target.index}] ${JSON.stringify(target.name)}, which has ${target.size} bytes`,
          { section: section.index, relocation: i, value: offset },
        );
      }
      const symbolIndex = f.u32(at + (this.littleEndian ? RELA.infoHigh : RELA.info));
      if (symbolIndex >= symbolCount) {
        throw formatError(
          'ERR_ELF_BAD_RELOCATION',
          this.origin,
          at + RELA.info,
          `relocation ${i} of [${section.index}] ${JSON.stringify(section.name)} names symbol ${symbolIndex}; the symbol table has ${symbolCount}`,
          { section: section.index, relocation: i, value: symbolIndex },
        );
      }
      relocations[i] = {
        offset,
        type: f.u32(at + (this.littleEndian ? RELA.info : RELA.infoHigh)),
        symbolIndex,
        addend: withAddend ? f.i64(at + RELA.addend, `r_addend of relocation ${i}`) : 0,
      };
    }
    return relocations;
  }
}

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Reads an ELF64 relocatable object; see ElfObject. */
export function readElfObject(bytes: Uint8Array, origin: ByteOrigin): ElfObject {
  return new ElfObject(bytes, origin);
}
