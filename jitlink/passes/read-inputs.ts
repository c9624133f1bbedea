import { checkObjectKind, readObjectInput } from '../../core/object-kind.js';
import { JitmemError } from '../../core/errors.js';
import { isArArchive, readArArchive } from '../../objects/ar-archive.js';
import { isElf, readElfObject } from '../../objects/elf-object.js';
import { formatError } from '../../objects/format-error.js';
import { InputObject } from '../input-object.js';
import type { SymbolTable } from '../symbol-table.js';

/** Bytes of a file already in memory, or a path to read. */
export type LinkInput = string | { readonly path: string; readonly bytes: Uint8Array };

/**
 * How a path given to the linker becomes bytes: the loader maps files (loader/mapped-inputs.ts);
 * by default they are read into memory. Either way a FIFO, a device or a file too large is
 * refused before anything is read.
 */
export type InputReader = (file: string) => Uint8Array;

function readInput(input: LinkInput, readFile: InputReader | undefined): { path: string; bytes: Uint8Array } {
  // A file of the wrong kind (source, a shared library, another machine's object) is refused
  // here as in every other command that takes objects.
  if (typeof input === 'string') {
    if (readFile === undefined) return { path: input, bytes: readObjectInput(input).bytes };
    const bytes = readFile(input);
    checkObjectKind(bytes, input);
    return { path: input, bytes };
  }
  checkObjectKind(input.bytes, input.path);
  return input;
}

/** e_type of a shared object. */
const ET_DYN = 3;
const EI_DATA = 5;
const E_TYPE = 16;

/**
 * Pass 1, read inputs: files, archive indices (members are read on demand while resolving),
 * ELF headers and symbol tables. Returns the plain objects in command-line order; the archives
 * go into the table.
 */
export function readInputs(
  inputs: readonly LinkInput[],
  table: SymbolTable,
  readFile: InputReader | undefined,
): InputObject[] {
  const plain: InputObject[] = [];
  for (const input of inputs) {
    const { path: file, bytes } = readInput(input, readFile);
    if (isArArchive(bytes)) {
      table.addArchive(file, readArArchive(bytes, { file, base: 0 }));
    } else if (isElf(bytes)) {
      if (bytes.length >= E_TYPE + 2 && bytes[EI_DATA] === 1 && bytes[E_TYPE] === ET_DYN && bytes[E_TYPE + 1] === 0) {
        throw new JitmemError(
          'ERR_LINK_SHARED_OBJECT',
          `${file} is a shared library, not a relocatable object: load it into the executor with --preload ${file}`,
          { file },
        );
      }
      plain.push(new InputObject(readElfObject(bytes, { file, base: 0 }), plain.length));
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
  return plain;
}
