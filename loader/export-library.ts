/**
 * A shared library that defines nothing but absolute symbols: the JIT'd program's global
 * symbols at their executor addresses. Opened RTLD_GLOBAL in the executor, it lets libraries
 * the program dlopen()s find the program's own symbols, as a natively linked program exports
 * them with --export-dynamic (CPython's extension modules call back into the interpreter this
 * way). glibc (2.28 and later) does not add the load address to SHN_ABS symbols.
 *
 * The image: ELF header, two program headers (PT_LOAD over the whole file, PT_DYNAMIC), then
 * .hash (SysV), .dynsym, .dynstr and .dynamic. No section headers, no relocations.
 */

import { alignUp } from '../core/checks.js';
import type { ExportedSymbol } from '../jitlink/link.js';
import {
  DT_HASH,
  DT_NULL,
  DT_SONAME,
  DT_STRSZ,
  DT_STRTAB,
  DT_SYMENT,
  DT_SYMTAB,
  EHDR,
  hashSize,
  PF_R,
  PF_W,
  PHDR,
  PT_DYNAMIC,
  PT_LOAD,
  set64,
  STB_GLOBAL,
  SYM,
  writeDynamic,
  writeElfHeader,
  writeHash,
  writeProgramHeader,
} from './shared-object.js';

export type { ExportedSymbol } from '../jitlink/link.js';
export { elfHash } from './shared-object.js';

const SHN_ABS = 0xfff1;

export function buildExportLibrary(soname: string, symbols: readonly ExportedSymbol[]): Uint8Array {
  const encoder = new TextEncoder();
  const names = symbols.map((s) => encoder.encode(s.name));
  const sonameBytes = encoder.encode(soname);
  // .dynstr: "\0", soname, then every name.
  let strSize = 1 + sonameBytes.length + 1;
  const nameOffsets = names.map((n) => {
    const at = strSize;
    strSize += n.length + 1;
    return at;
  });
  const count = symbols.length + 1; // entry 0 is the null symbol
  const nbucket = Math.max(1, Math.floor(count / 2) | 1);

  const hashAt = EHDR + 2 * PHDR;
  const symAt = alignUp(hashAt + hashSize(nbucket, count), 8);
  const strAt = symAt + count * SYM;
  const dynAt = alignUp(strAt + strSize, 8);
  const dynamic: Array<[number, number]> = [
    [DT_HASH, hashAt],
    [DT_STRTAB, strAt],
    [DT_SYMTAB, symAt],
    [DT_STRSZ, strSize],
    [DT_SYMENT, SYM],
    [DT_SONAME, 1],
    [DT_NULL, 0],
  ];
  const size = dynAt + dynamic.length * 16;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);

  writeElfHeader(bytes, view, 2);
  // PT_LOAD over everything (writable: the dynamic loader may update .dynamic in place), PT_DYNAMIC.
  const rw = PF_R | PF_W;
  writeProgramHeader(view, 0, { type: PT_LOAD, flags: rw, offset: 0, filesz: size, memsz: size, align: 0x1000 });
  const dynSize = dynamic.length * 16;
  writeProgramHeader(view, 1, {
    type: PT_DYNAMIC,
    flags: rw,
    offset: dynAt,
    filesz: dynSize,
    memsz: dynSize,
    align: 8,
  });

  // .dynstr
  bytes.set(sonameBytes, strAt + 1);
  names.forEach((n, i) => bytes.set(n, strAt + nameOffsets[i]!));

  // .dynsym
  symbols.forEach((s, i) => {
    const at = symAt + (i + 1) * SYM;
    view.setUint32(at, nameOffsets[i]!, true);
    view.setUint8(at + 4, (STB_GLOBAL << 4) | s.type);
    view.setUint16(at + 6, SHN_ABS, true);
    set64(view, at + 8, s.address);
    set64(view, at + 16, s.size);
  });

  writeHash(view, hashAt, nbucket, names);
  writeDynamic(view, dynAt, dynamic);
  return bytes;
}
