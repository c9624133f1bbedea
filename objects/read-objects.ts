import { readRegularFile } from '../core/files.js';
import { isArArchive, readArArchive } from './ar-archive.js';
import { isElf, readElfObject, type ElfObject } from './elf-object.js';
import { formatError } from './format-error.js';

/**
 * Object files and archives on disk, read as ELF objects: the file itself, or every member of
 * an archive, each a view of the file's bytes.
 */

/** Reads the ELF objects of one file: the file itself, or every member of an archive. */
export function readObjects(bytes: Uint8Array, file: string): ElfObject[] {
  if (isArArchive(bytes)) {
    const archive = readArArchive(bytes, { file, base: 0 });
    return archive.members.map((member) =>
      readElfObject(member.data, { file, member: member.name, base: member.dataOffset }),
    );
  }
  if (isElf(bytes)) return [readElfObject(bytes, { file, base: 0 })];
  const seen = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw formatError(
    'ERR_OBJECT_UNKNOWN_FORMAT',
    { file, base: 0 },
    0,
    `neither an ELF object (7f 45 4c 46) nor an ar archive ("!<arch>\\n"); it starts with ${seen || 'nothing (the file is empty)'}`,
  );
}

/**
 * The largest object file or archive read: what one Buffer holds. A real object is read in one
 * piece of exactly the size the file has, so a device, a FIFO or a sparse giant is refused up front.
 */
export const MAX_OBJECT_BYTES = 2 ** 31 - 1;

export function readObjectFile(file: string): ElfObject[] {
  const bytes = readRegularFile(file, {
    what: 'object file',
    maxBytes: MAX_OBJECT_BYTES,
    limitText: '2 GiB - 1',
    unreadableCode: 'ERR_OBJECT_UNREADABLE',
    tooLargeCode: 'ERR_OBJECT_TOO_LARGE',
  });
  return readObjects(bytes, file);
}
