import { JitmemError, hex } from '../core/errors.js';

/**
 * Where the bytes a reader looks at came from: the file on disk, the archive member inside it
 * (if any), and the member's offset in the file. Readers count offsets from the start of the
 * bytes they were given; errors report them from the start of the file, so that a user can
 * open the file at that offset.
 */
export interface ByteOrigin {
  readonly file: string;
  readonly member?: string;
  /** Offset of the reader's first byte in `file`. */
  readonly base: number;
}

export function originName(origin: ByteOrigin): string {
  return origin.member === undefined ? origin.file : `${origin.file}(${origin.member})`;
}

/**
 * The error for malformed input: `code` says what kind of damage, `details.offset` is the
 * file offset of the field that is wrong, and the message names the file, that offset and what
 * was expected there. The codes (stable; programs switch on them):
 *
 * ELF: ERR_ELF_BAD_MAGIC, ERR_ELF_TRUNCATED (a header, table or section runs past the end),
 * ERR_ELF_UNSUPPORTED_CLASS (not ELF64), ERR_ELF_BAD_ENCODING, ERR_ELF_BAD_VERSION,
 * ERR_ELF_NOT_RELOCATABLE (an executable or shared object), ERR_ELF_BAD_HEADER (header sizes
 * and counts), ERR_ELF_VALUE_TOO_LARGE (a 64-bit field past 2^53), ERR_ELF_BAD_ALIGNMENT,
 * ERR_ELF_BAD_SECTION_INDEX (sh_link, sh_info, e_shstrndx or st_shndx out of range),
 * ERR_ELF_BAD_SECTION (wrong type or size for its role), ERR_ELF_BAD_ENTRY_SIZE,
 * ERR_ELF_BAD_STRING (a name outside its string table or unterminated), ERR_ELF_BAD_RELOCATION.
 *
 * ar: ERR_AR_BAD_MAGIC, ERR_AR_THIN_UNSUPPORTED, ERR_AR_TRUNCATED, ERR_AR_BAD_HEADER (size
 * field or header terminator), ERR_AR_BAD_NAME (long-name references), ERR_AR_BAD_SYMBOL_INDEX.
 *
 * Neither: ERR_OBJECT_UNKNOWN_FORMAT.
 */
export function formatError(
  code: string,
  origin: ByteOrigin,
  localOffset: number,
  what: string,
  extra: Record<string, unknown> = {},
): JitmemError {
  const offset = origin.base + localOffset;
  return new JitmemError(code, `${originName(origin)}: at byte offset ${offset} (${hex(offset)}): ${what}`, {
    file: origin.file,
    ...(origin.member === undefined ? {} : { member: origin.member }),
    offset,
    ...extra,
  });
}
