/**
 * The pieces of a minimal x86-64 ELF shared object that the loader generates (the export library
 * of a program's globals, the TLS library): header, program headers, SysV .hash, .dynamic. Both
 * libraries are opened by the executor's own dynamic linker, which reads nothing else.
 */

export const EHDR = 64;
export const PHDR = 56;
export const SYM = 24;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_TLS = 7;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
export const STB_GLOBAL = 1;
export const DT_NULL = 0;
export const DT_HASH = 4;
export const DT_STRTAB = 5;
export const DT_SYMTAB = 6;
export const DT_RELA = 7;
export const DT_RELASZ = 8;
export const DT_RELAENT = 9;
export const DT_STRSZ = 10;
export const DT_SYMENT = 11;
export const DT_SONAME = 14;

const ET_DYN = 3;
const EM_X86_64 = 62;
const EV_CURRENT = 1;

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

export function set64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / 2 ** 32) >>> 0, true);
}

/** The ELF header of a 64-bit little-endian x86-64 ET_DYN, its program headers right after it. */
export function writeElfHeader(bytes: Uint8Array, view: DataView, phnum: number): void {
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  view.setUint16(16, ET_DYN, true);
  view.setUint16(18, EM_X86_64, true);
  view.setUint32(20, EV_CURRENT, true);
  set64(view, 32, EHDR); // e_phoff
  view.setUint16(52, EHDR, true);
  view.setUint16(54, PHDR, true);
  view.setUint16(56, phnum, true);
  view.setUint16(58, 64, true);
}

export interface ProgramHeader {
  readonly type: number;
  readonly flags: number;
  /** File offset, which is also the virtual address: the libraries map their file as it is. */
  readonly offset: number;
  readonly filesz: number;
  readonly memsz: number;
  readonly align: number;
}

/** Program header number `index`. */
export function writeProgramHeader(view: DataView, index: number, ph: ProgramHeader): void {
  const at = EHDR + index * PHDR;
  view.setUint32(at, ph.type, true);
  view.setUint32(at + 4, ph.flags, true);
  set64(view, at + 8, ph.offset);
  set64(view, at + 16, ph.offset);
  set64(view, at + 24, ph.offset);
  set64(view, at + 32, ph.filesz);
  set64(view, at + 40, ph.memsz);
  set64(view, at + 48, ph.align);
}

/** The size of a SysV .hash for `count` symbols (the null symbol included) in `nbucket` buckets. */
export function hashSize(nbucket: number, count: number): number {
  return 4 * (2 + nbucket + count);
}

/**
 * .hash (SysV) over the dynamic symbols 1..names.length (0 is the null symbol): nbucket, nchain,
 * buckets, chains; each bucket's chain links through the chain array.
 */
export function writeHash(view: DataView, hashAt: number, nbucket: number, names: readonly Uint8Array[]): void {
  const count = names.length + 1;
  view.setUint32(hashAt, nbucket, true);
  view.setUint32(hashAt + 4, count, true);
  const buckets = hashAt + 8;
  const chains = buckets + 4 * nbucket;
  for (let i = count - 1; i >= 1; i--) {
    const b = elfHash(names[i - 1]!) % nbucket;
    view.setUint32(chains + 4 * i, view.getUint32(buckets + 4 * b, true), true);
    view.setUint32(buckets + 4 * b, i, true);
  }
}

/** .dynamic: (tag, value) pairs of 16 bytes, the last DT_NULL. */
export function writeDynamic(view: DataView, dynAt: number, entries: ReadonlyArray<readonly [number, number]>): void {
  entries.forEach(([tag, value], i) => {
    set64(view, dynAt + 16 * i, tag);
    set64(view, dynAt + 16 * i + 8, value);
  });
}
