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

import type { ExportedSymbol } from '../jitlink/link.js';

export type { ExportedSymbol } from '../jitlink/link.js';

const EHDR = 64;
const PHDR = 56;
const SYM = 24;
const SHN_ABS = 0xfff1;
const STB_GLOBAL = 1;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PF_R = 4;
const PF_W = 2;
const DT_NULL = 0;
const DT_HASH = 4;
const DT_STRTAB = 5;
const DT_SYMTAB = 6;
const DT_STRSZ = 10;
const DT_SYMENT = 11;
const DT_SONAME = 14;

/** The SysV ELF hash of a symbol name. */
export function elfHash(name: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) {
    h = ((h << 4) + name[i]!) >>> 0;
    const g = h & 0xf0000000;
    if (g !== 0) h ^= g >>> 24;
    h = (h & ~g) >>> 0;
  }
  return h >>> 0;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function set64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32) >>> 0, true);
}

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
  const hashSize = 4 * (2 + nbucket + count);
  const symAt = align(hashAt + hashSize, 8);
  const strAt = symAt + count * SYM;
  const dynAt = align(strAt + strSize, 8);
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

  // ELF header.
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  view.setUint16(16, 3, true); // ET_DYN
  view.setUint16(18, 62, true); // EM_X86_64
  view.setUint32(20, 1, true);
  set64(view, 32, EHDR); // e_phoff
  view.setUint16(52, EHDR, true);
  view.setUint16(54, PHDR, true);
  view.setUint16(56, 2, true);
  view.setUint16(58, 64, true);

  // PT_LOAD over everything (writable: the dynamic loader may update .dynamic in place), PT_DYNAMIC.
  const ph = (at: number, type: number, offset: number, filesz: number, alignment: number) => {
    view.setUint32(at, type, true);
    view.setUint32(at + 4, PF_R | PF_W, true);
    set64(view, at + 8, offset);
    set64(view, at + 16, offset);
    set64(view, at + 24, offset);
    set64(view, at + 32, filesz);
    set64(view, at + 40, filesz);
    set64(view, at + 48, alignment);
  };
  ph(EHDR, PT_LOAD, 0, size, 0x1000);
  ph(EHDR + PHDR, PT_DYNAMIC, dynAt, dynamic.length * 16, 8);

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

  // .hash: nbucket, nchain, buckets, chains; each bucket's chain links through the chain array.
  view.setUint32(hashAt, nbucket, true);
  view.setUint32(hashAt + 4, count, true);
  const buckets = hashAt + 8;
  const chains = buckets + 4 * nbucket;
  for (let i = count - 1; i >= 1; i--) {
    const b = elfHash(names[i - 1]!) % nbucket;
    view.setUint32(chains + 4 * i, view.getUint32(buckets + 4 * b, true), true);
    view.setUint32(buckets + 4 * b, i, true);
  }

  dynamic.forEach(([tag, value], i) => {
    set64(view, dynAt + 16 * i, tag);
    set64(view, dynAt + 16 * i + 8, value);
  });
  return bytes;
}
