import path from 'node:path';
import { JitmemError } from './errors.js';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { readRegularFile, type ReadLimits } from './files.js';

/**
 * What a file given as an object is, from its first bytes, so that every command that takes
 * objects (run, bench --objects, workloads) answers a wrong file the same way and says what to
 * do: C or C++ source is compiled first, a shared library is preloaded, an object for another
 * machine cannot be linked here. The linker's readers check the rest of the format.
 */

/** The largest object file or archive read: what one Buffer holds. */
export const MAX_OBJECT_BYTES = 2 ** 31 - 1;

const EM_X86_64 = 62;
const MACHINES: Record<number, string> = {
  3: 'i386',
  8: 'MIPS',
  20: 'PowerPC',
  21: 'PowerPC64',
  22: 'S/390',
  40: 'ARM',
  183: 'AArch64',
  243: 'RISC-V',
  258: 'LoongArch',
};

export type ObjectKind = 'relocatable' | 'archive';

/**
 * What the object is for: linking and running (x86-64 relocatable objects only), or its
 * sections as a workload (any machine).
 */
export type ObjectUse = 'link' | 'sections';

function hexStart(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Mostly printable text (UTF-8 or ASCII) in the first few KiB: source, a script, a listing. */
function looksLikeText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 4096);
  if (n === 0) return false;
  let control = 0;
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b === 0) return false;
    if (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12) control++;
  }
  return control / n < 0.01;
}

/** Which source language a text file is written in, by its name and then its first lines. */
function sourceLanguage(file: string, text: string): 'C' | 'C++' | 'assembly' | undefined {
  const ext = path.extname(file).toLowerCase();
  if (['.cc', '.cpp', '.cxx', '.c++', '.hpp', '.hh', '.hxx'].includes(ext)) return 'C++';
  if (['.c', '.h'].includes(ext)) return 'C';
  if (['.s', '.asm'].includes(ext)) return 'assembly';
  if (
    /^\s*#\s*include\s*<(iostream|vector|string|memory|map|cstdio|cstdlib|cstring)>/m.test(text) ||
    /\bnamespace\s+\w+\s*\{|\btemplate\s*<|\bstd::/.test(text)
  )
    return 'C++';
  if (
    /^\s*#\s*(include|define|ifn?def|pragma)\b/m.test(text) ||
    /\b(int|void|char|static|struct)\s+\w+\s*\([^)]*\)\s*\{/.test(text)
  )
    return 'C';
  if (/^\s*\.(text|globl|section|intel_syntax)\b/m.test(text)) return 'assembly';
  return undefined;
}

/** Whether an ELF64 file's program headers (those within `bytes`) include PT_INTERP. */
function hasInterpreter(bytes: Uint8Array, little: boolean): boolean {
  if (bytes.length < 64) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(32, little));
  const phentsize = view.getUint16(54, little);
  const phnum = view.getUint16(56, little);
  if (phentsize < 4) return false;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > bytes.length) return false;
    if (view.getUint32(at, little) === 3) return true;
  }
  return false;
}

/**
 * Checks that `bytes` (read from `file`) are an x86-64 ELF relocatable object or an ar archive;
 * anything else is a JitmemError saying what the file is and what to do with it:
 * - ERR_OBJECT_UNKNOWN_FORMAT: neither ELF nor ar (C, C++ or assembly source named as such,
 *   LLVM bitcode, other text, anything else by its first bytes);
 * - ERR_LINK_SHARED_OBJECT: a shared library (load it with --preload);
 * - ERR_ELF_NOT_RELOCATABLE: an executable or core file;
 * - ERR_ELF_UNSUPPORTED_CLASS: a 32-bit object;
 * - ERR_OBJECT_WRONG_MACHINE: an object for another machine than x86-64.
 * Messages read as the object readers' do: "FILE: at byte offset N (0xN): what".
 */
export function checkObjectKind(bytes: Uint8Array, file: string, use: ObjectUse = 'link'): ObjectKind {
  if (bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1') === '!<arch>\n')
    return 'archive';
  const isElf = bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
  if (isElf) {
    // Workloads take the sections of any machine's objects (their sizes and protections are
    // all they use); the ELF reader checks the rest.
    if (use === 'sections') return 'relocatable';
    const error = (code: string, offset: number, what: string, kind: string, extra: Record<string, unknown> = {}) =>
      new JitmemError(code, `${file}: at byte offset ${offset} (0x${offset.toString(16)}): ${what}`, {
        file,
        offset,
        kind,
        ...extra,
      });
    if (bytes.length < 20)
      throw error(
        'ERR_ELF_TRUNCATED',
        bytes.length,
        `the ELF header is cut short (${bytes.length} bytes; it takes 64)`,
        'truncated',
      );
    if (bytes[4] !== 2)
      throw error(
        'ERR_ELF_UNSUPPORTED_CLASS',
        4,
        `this is a ${bytes[4] === 1 ? '32-bit' : `class ${bytes[4]}`} ELF object; jitmem links x86-64 (64-bit) objects: build it with \`cc -c\` (no -m32)`,
        'foreign-class',
      );
    const little = bytes[5] === 1;
    const u16 = (at: number) => (little ? bytes[at]! | (bytes[at + 1]! << 8) : (bytes[at]! << 8) | bytes[at + 1]!);
    const machine = u16(18);
    if (machine !== EM_X86_64) {
      const arch = MACHINES[machine] ?? `machine ${machine}`;
      throw error(
        'ERR_OBJECT_WRONG_MACHINE',
        18,
        `this is an object for ${arch}; jitmem links x86-64 objects: build it for x86-64 (\`cc -c\` on x86-64, or \`clang --target=x86_64-linux-gnu -c\`)`,
        'foreign-machine',
        { machine },
      );
    }
    const type = u16(16);
    // A PIE executable is ET_DYN too: it names a program interpreter (PT_INTERP) a library does not.
    if (type === 3 && hasInterpreter(bytes, little)) {
      throw error(
        'ERR_ELF_NOT_RELOCATABLE',
        16,
        'this is an executable (position-independent), not a relocatable object: give the .o files it was linked from (`cc -c` makes them)',
        'not-relocatable',
        { type },
      );
    }
    if (type === 3)
      throw new JitmemError(
        'ERR_LINK_SHARED_OBJECT',
        `${file} is a shared library, not a relocatable object: load it into the executor with --preload ${file}`,
        { file, kind: 'shared-library' },
      );
    if (type !== 1) {
      const what = type === 2 ? 'an executable' : type === 4 ? 'a core dump' : `an ELF file of type ${type}`;
      throw error(
        'ERR_ELF_NOT_RELOCATABLE',
        16,
        `this is ${what}, not a relocatable object: give the .o files it was linked from (\`cc -c\` makes them)`,
        'not-relocatable',
        { type },
      );
    }
    return 'relocatable';
  }
  const unknown = (what: string, kind: string) =>
    new JitmemError('ERR_OBJECT_UNKNOWN_FORMAT', `${file}: at byte offset 0 (0x0): ${what}`, { file, offset: 0, kind });
  if (bytes.length === 0)
    throw unknown('the file is empty; expected an ELF object (7f 45 4c 46) or an ar archive ("!<arch>\\n")', 'empty');
  if (bytes.length >= 4 && bytes[0] === 0x42 && bytes[1] === 0x43 && bytes[2] === 0xc0 && bytes[3] === 0xde) {
    throw unknown(
      'this is LLVM bitcode, not an object file: compile it with `clang -c` (without -flto)',
      'llvm-bitcode',
    );
  }
  if (looksLikeText(bytes)) {
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4096)).toString('utf8');
    const language = sourceLanguage(file, text);
    if (language === 'C')
      throw unknown(`this is C source: compile it with \`cc -c ${file}\` and give the .o file`, 'c-source');
    if (language === 'C++')
      throw unknown(`this is C++ source: compile it with \`c++ -c ${file}\` and give the .o file`, 'c++-source');
    if (language === 'assembly')
      throw unknown(
        `this is assembly source: assemble it with \`cc -c ${file}\` and give the .o file`,
        'assembly-source',
      );
    throw unknown(`this is a text file; expected an ELF object (7f 45 4c 46) or an ar archive ("!<arch>\\n")`, 'text');
  }
  throw unknown(
    `neither an ELF object (7f 45 4c 46) nor an ar archive ("!<arch>\\n"); it starts with ${hexStart(bytes)}`,
    'unknown',
  );
}

/**
 * Reads an object file or archive given on a command line: a regular file (never a FIFO, which
 * would block, or a device, which never ends) of at most MAX_OBJECT_BYTES, of a kind
 * checkObjectKind accepts.
 */
export function readObjectInput(file: string, use: ObjectUse = 'link'): { bytes: Buffer; kind: ObjectKind } {
  const bytes = readRegularFile(file, OBJECT_READ_LIMITS);
  return { bytes, kind: checkObjectKind(bytes, file, use) };
}

/** What an object input may be (readRegularFile's limits), for every way of reading one. */
export const OBJECT_READ_LIMITS: ReadLimits = {
  what: 'object file',
  maxBytes: MAX_OBJECT_BYTES,
  limitText: '2 GiB - 1',
  unreadableCode: 'ERR_OBJECT_UNREADABLE',
  tooLargeCode: 'ERR_OBJECT_TOO_LARGE',
};

/**
 * Checks an object input before any work starts (an executor spawned, a bench planned): the
 * same checks as readObjectInput on the first 4 KiB only, so a command can refuse every bad
 * file at once and cheaply.
 */
export function checkObjectInput(file: string): ObjectKind {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    // readObjectInput words every open failure; it reads nothing more than this check would.
    return readObjectInput(file).kind;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_OBJECT_BYTES) return readObjectInput(file).kind;
    const head = Buffer.alloc(Math.min(4096, st.size));
    const n = head.length ? readSync(fd, head, 0, head.length, 0) : 0;
    return checkObjectKind(head.subarray(0, n), file);
  } finally {
    closeSync(fd);
  }
}
