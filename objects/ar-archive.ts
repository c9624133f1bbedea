import { formatError, type ByteOrigin } from './format-error.js';

/**
 * A reader for `ar` archives as GNU (System V) and BSD tools write them: 60-byte member
 * headers, GNU long names through the `//` table, BSD `#1/N` names, and the symbol index (GNU
 * `/` and `/SYM64/`, BSD `__.SYMDEF*`). Member contents are views of the input (zero-copy).
 * Every size, name offset and index entry is checked against the input before use; malformed
 * input throws a JitmemError with an ERR_AR_* code and the file offset of the offending field.
 */

export const AR_MAGIC = '!<arch>\n';
export const AR_THIN_MAGIC = '!<thin>\n';
const HEADER_SIZE = 60;

export interface ArMember {
  readonly name: string;
  /** Where the member's 60-byte header starts in the archive (what symbol indices point at). */
  readonly headerOffset: number;
  /** Where the member's bytes start in the archive (after a BSD long name, if any). */
  readonly dataOffset: number;
  /** The member's bytes: a view of the archive. */
  readonly data: Uint8Array;
}

export interface ArSymbol {
  readonly name: string;
  readonly member: ArMember;
}

export interface ArArchive {
  readonly origin: ByteOrigin;
  /** 'gnu' when the archive uses GNU/System V conventions, 'bsd' for BSD ones, 'plain' when it shows neither. */
  readonly flavor: 'gnu' | 'bsd' | 'plain';
  /** The ordinary members, in archive order; the symbol index and name table are not members. */
  readonly members: readonly ArMember[];
  /** The archive's symbol index (empty when it has none). */
  readonly symbols: readonly ArSymbol[];
}

const latin1 = new TextDecoder('latin1');

function text(bytes: Uint8Array, start: number, length: number): string {
  return latin1.decode(bytes.subarray(start, start + length));
}

function startsWithText(bytes: Uint8Array, prefix: string): boolean {
  return bytes.length >= prefix.length && text(bytes, 0, prefix.length) === prefix;
}

/** True when `bytes` starts like an archive (regular or thin). */
export function isArArchive(bytes: Uint8Array): boolean {
  return startsWithText(bytes, AR_MAGIC) || startsWithText(bytes, AR_THIN_MAGIC);
}

/** A decimal header field ("123" padded with spaces); `null` when it is not one. */
function decimal(field: string): number | null {
  const trimmed = field.trimEnd();
  if (!/^[0-9]{1,16}$/.test(trimmed)) return null;
  return Number(trimmed);
}

interface SymbolIndexMember {
  readonly kind: 'gnu32' | 'gnu64' | 'bsd32' | 'bsd64';
  readonly dataOffset: number;
  readonly data: Uint8Array;
}

export function readArArchive(bytes: Uint8Array, origin: ByteOrigin): ArArchive {
  if (startsWithText(bytes, AR_THIN_MAGIC)) {
    throw formatError(
      'ERR_AR_THIN_UNSUPPORTED',
      origin,
      0,
      'this is a thin archive (its members live in other files); jitmem reads regular archives only: rebuild it without --thin',
    );
  }
  if (!startsWithText(bytes, AR_MAGIC)) {
    throw formatError(
      'ERR_AR_BAD_MAGIC',
      origin,
      0,
      `expected the archive magic "!<arch>\\n"; found ${JSON.stringify(text(bytes, 0, Math.min(8, bytes.length)))}`,
    );
  }
  const length = bytes.length;
  const members: ArMember[] = [];
  let longNames: { data: Uint8Array; dataOffset: number } | undefined;
  let symbolIndex: SymbolIndexMember | undefined;
  let gnu = false;
  let bsd = false;

  let at = AR_MAGIC.length;
  while (at < length) {
    // Members start on even offsets; a lone newline pads an odd-sized member's end.
    if (at % 2 === 1) {
      at += 1;
      if (at >= length) break;
    }
    const { size, dataStart } = readMemberHeader(bytes, at, origin);
    const rawName = text(bytes, at + HEADER.name, HEADER.nameLength).trimEnd();
    let data = bytes.subarray(dataStart, dataStart + size);
    let dataOffset = dataStart;
    let name: string;

    if (rawName === '/' || rawName === '/SYM64/') {
      gnu = true;
      if (symbolIndex)
        throw formatError('ERR_AR_BAD_SYMBOL_INDEX', origin, at, 'the archive has a second symbol index');
      symbolIndex = { kind: rawName === '/' ? 'gnu32' : 'gnu64', dataOffset, data };
      at = dataStart + size;
      continue;
    }
    if (rawName === '//') {
      gnu = true;
      if (longNames)
        throw formatError('ERR_AR_BAD_NAME', origin, at, 'the archive has a second long-name table ("//")');
      longNames = { data, dataOffset };
      at = dataStart + size;
      continue;
    }
    if (rawName.startsWith('#1/')) {
      bsd = true;
      const nameLength = decimal(rawName.slice(3));
      if (nameLength === null || nameLength > size) {
        throw formatError(
          'ERR_AR_BAD_NAME',
          origin,
          at,
          `the BSD long-name field ${JSON.stringify(rawName)} must be "#1/" and a length of at most the member size ${size}`,
        );
      }
      name = text(data, 0, nameLength).replace(/\0+$/, '');
      data = data.subarray(nameLength);
      dataOffset += nameLength;
    } else if (/^\/[0-9]+$/.test(rawName)) {
      gnu = true;
      name = gnuLongName(rawName, longNames, origin, at);
    } else if (rawName.startsWith('/')) {
      throw formatError(
        'ERR_AR_BAD_NAME',
        origin,
        at,
        `member name ${JSON.stringify(rawName)} is neither a GNU special member ("/", "//", "/SYM64/") nor a long-name reference ("/" and digits)`,
      );
    } else {
      // GNU ends short names with "/"; BSD pads them with spaces only.
      if (rawName.endsWith('/')) gnu = true;
      name = rawName.endsWith('/') ? rawName.slice(0, -1) : rawName;
    }

    if (name.startsWith('__.SYMDEF')) {
      bsd = true;
      if (symbolIndex)
        throw formatError('ERR_AR_BAD_SYMBOL_INDEX', origin, at, 'the archive has a second symbol index');
      symbolIndex = { kind: name.startsWith('__.SYMDEF_64') ? 'bsd64' : 'bsd32', dataOffset, data };
    } else {
      members.push({ name, headerOffset: at, dataOffset, data });
    }
    at = dataStart + size;
  }

  const symbols = symbolIndex ? readSymbolIndex(symbolIndex, members, origin) : [];
  return { origin, flavor: gnu ? 'gnu' : bsd ? 'bsd' : 'plain', members, symbols };
}

/** Where the fields of a member header are (all text, space-padded). */
const HEADER = { name: 0, nameLength: 16, size: 48, sizeLength: 10, end: 58 } as const;
/** The two bytes every member header ends with. */
const HEADER_END = '`\n';

/** A member header's size field, checked against the bytes left, and where the member's data starts. */
function readMemberHeader(bytes: Uint8Array, at: number, origin: ByteOrigin): { size: number; dataStart: number } {
  const length = bytes.length;
  if (length - at < HEADER_SIZE) {
    throw formatError(
      'ERR_AR_TRUNCATED',
      origin,
      at,
      `a member header needs ${HEADER_SIZE} bytes; only ${length - at} are left`,
    );
  }
  if (text(bytes, at + HEADER.end, HEADER_END.length) !== HEADER_END) {
    throw formatError(
      'ERR_AR_BAD_HEADER',
      origin,
      at + HEADER.end,
      `a member header must end with "\`\\n"; found ${JSON.stringify(text(bytes, at + HEADER.end, 2))}`,
    );
  }
  const size = decimal(text(bytes, at + HEADER.size, HEADER.sizeLength));
  if (size === null) {
    throw formatError(
      'ERR_AR_BAD_HEADER',
      origin,
      at + HEADER.size,
      `the member size field is ${JSON.stringify(text(bytes, at + HEADER.size, HEADER.sizeLength))}; expected a decimal number`,
    );
  }
  const dataStart = at + HEADER_SIZE;
  if (size > length - dataStart) {
    throw formatError(
      'ERR_AR_TRUNCATED',
      origin,
      at + HEADER.size,
      `the member claims ${size} bytes from offset ${dataStart}, past the end of the archive (${length} bytes)`,
      {
        size,
      },
    );
  }
  return { size, dataStart };
}

function gnuLongName(
  rawName: string,
  table: { data: Uint8Array; dataOffset: number } | undefined,
  origin: ByteOrigin,
  at: number,
): string {
  if (!table)
    throw formatError(
      'ERR_AR_BAD_NAME',
      origin,
      at,
      `member name ${JSON.stringify(rawName)} refers to the long-name table, but no "//" member came before it`,
    );
  const offset = Number(rawName.slice(1));
  if (offset >= table.data.length) {
    throw formatError(
      'ERR_AR_BAD_NAME',
      origin,
      at,
      `member name ${JSON.stringify(rawName)} points past the end of the long-name table (${table.data.length} bytes)`,
      { value: offset },
    );
  }
  const end = table.data.indexOf(0x0a, offset);
  if (end < 0) {
    throw formatError(
      'ERR_AR_BAD_NAME',
      origin,
      table.dataOffset + offset,
      `the long name at offset ${offset} of the "//" table has no terminating "/\\n"`,
      { value: offset },
    );
  }
  const name = text(table.data, offset, end - offset);
  return name.endsWith('/') ? name.slice(0, -1) : name;
}

function readSymbolIndex(index: SymbolIndexMember, members: readonly ArMember[], origin: ByteOrigin): ArSymbol[] {
  const { data, dataOffset } = index;
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const byHeader = new Map(members.map((m) => [m.headerOffset, m]));
  const wide = index.kind === 'gnu64' || index.kind === 'bsd64';
  const word = wide ? 8 : 4;
  const bad = (offset: number, what: string, extra: Record<string, unknown> = {}) =>
    formatError('ERR_AR_BAD_SYMBOL_INDEX', origin, dataOffset + offset, what, extra);
  const read = (offset: number, littleEndian: boolean): number => {
    if (offset + word > data.length)
      throw bad(
        offset,
        `the symbol index ends (at ${data.length} bytes) inside a ${word}-byte field at offset ${offset}`,
      );
    if (!wide) return view.getUint32(offset, littleEndian);
    const value = view.getBigUint64(offset, littleEndian);
    // Any count or offset past 2^53 is wrong; saturate it so that the checks below reject it.
    return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  };
  const memberAt = (offset: number, fieldOffset: number): ArMember => {
    const member = byHeader.get(offset);
    if (!member)
      throw bad(fieldOffset, `a symbol points to archive offset ${offset}, where no member header starts`, {
        value: offset,
      });
    return member;
  };
  // The string table is decoded once (latin1 keeps byte offsets); names are slices of it.
  let decoded: { strings: Uint8Array; text: string } | undefined;
  const name = (
    strings: Uint8Array,
    stringsOffset: number,
    offset: number,
    fieldOffset: number,
  ): { name: string; end: number } => {
    if (offset >= strings.length)
      throw bad(
        fieldOffset,
        `a symbol name at offset ${offset} lies past the end of the index's string table (${strings.length} bytes)`,
        { value: offset },
      );
    if (decoded?.strings !== strings) decoded = { strings, text: latin1.decode(strings) };
    const end = decoded.text.indexOf('\0', offset);
    if (end < 0)
      throw bad(
        stringsOffset + offset,
        `the symbol name at offset ${offset} of the index's string table has no terminating NUL`,
      );
    return { name: decoded.text.slice(offset, end), end };
  };

  const symbols: ArSymbol[] = [];
  if (index.kind === 'gnu32' || index.kind === 'gnu64') {
    // Big-endian count, that many member offsets, then that many NUL-terminated names.
    const count = read(0, false);
    if (count > (data.length - word) / word) {
      throw bad(
        0,
        `the symbol index claims ${count} symbols; its ${data.length} bytes hold at most ${Math.floor((data.length - word) / word)}`,
        { value: count },
      );
    }
    const stringsOffset = word + count * word;
    const strings = data.subarray(stringsOffset);
    let cursor = 0;
    for (let i = 0; i < count; i++) {
      const entry = word + i * word;
      const member = memberAt(read(entry, false), entry);
      const parsed = name(strings, stringsOffset, cursor, stringsOffset + cursor);
      symbols.push({ name: parsed.name, member });
      cursor = parsed.end + 1;
    }
    return symbols;
  }
  // BSD: byte count of (name offset, member offset) pairs, the pairs, byte count of strings, strings.
  const pairBytes = read(0, true);
  if (pairBytes % (2 * word) !== 0 || pairBytes > data.length - 2 * word) {
    throw bad(
      0,
      `the symbol index's table size ${pairBytes} must be a multiple of ${2 * word} within its ${data.length} bytes`,
      { value: pairBytes },
    );
  }
  const stringsSize = read(word + pairBytes, true);
  const stringsOffset = 2 * word + pairBytes;
  if (stringsSize > data.length - stringsOffset) {
    throw bad(
      word + pairBytes,
      `the symbol index's string table size ${stringsSize} runs past its end (${data.length - stringsOffset} bytes left)`,
      { value: stringsSize },
    );
  }
  const strings = data.subarray(stringsOffset, stringsOffset + stringsSize);
  for (let entry = word; entry < word + pairBytes; entry += 2 * word) {
    const parsed = name(strings, stringsOffset, read(entry, true), entry);
    symbols.push({ name: parsed.name, member: memberAt(read(entry + word, true), entry + word) });
  }
  return symbols;
}
