/**
 * x86-64 ELF relocation types (System V x86-64 psABI, table 4.9) and how jitmem's linker
 * treats each: applied, applied through a GOT entry or PLT stub, or refused with a reason.
 */

export const R_X86_64_NONE = 0;
export const R_X86_64_64 = 1;
export const R_X86_64_PC32 = 2;
export const R_X86_64_GOT32 = 3;
export const R_X86_64_PLT32 = 4;
export const R_X86_64_COPY = 5;
export const R_X86_64_GLOB_DAT = 6;
export const R_X86_64_JUMP_SLOT = 7;
export const R_X86_64_RELATIVE = 8;
export const R_X86_64_GOTPCREL = 9;
export const R_X86_64_32 = 10;
export const R_X86_64_32S = 11;
export const R_X86_64_16 = 12;
export const R_X86_64_PC16 = 13;
export const R_X86_64_8 = 14;
export const R_X86_64_PC8 = 15;
export const R_X86_64_DTPMOD64 = 16;
export const R_X86_64_DTPOFF64 = 17;
export const R_X86_64_TPOFF64 = 18;
export const R_X86_64_TLSGD = 19;
export const R_X86_64_TLSLD = 20;
export const R_X86_64_DTPOFF32 = 21;
export const R_X86_64_GOTTPOFF = 22;
export const R_X86_64_TPOFF32 = 23;
export const R_X86_64_PC64 = 24;
export const R_X86_64_GOTOFF64 = 25;
export const R_X86_64_GOTPC32 = 26;
export const R_X86_64_GOT64 = 27;
export const R_X86_64_GOTPCREL64 = 28;
export const R_X86_64_GOTPC64 = 29;
export const R_X86_64_GOTPLT64 = 30;
export const R_X86_64_PLTOFF64 = 31;
export const R_X86_64_SIZE32 = 32;
export const R_X86_64_SIZE64 = 33;
export const R_X86_64_GOTPC32_TLSDESC = 34;
export const R_X86_64_TLSDESC_CALL = 35;
export const R_X86_64_TLSDESC = 36;
export const R_X86_64_IRELATIVE = 37;
export const R_X86_64_RELATIVE64 = 38;
export const R_X86_64_GOTPCRELX = 41;
export const R_X86_64_REX_GOTPCRELX = 42;

const NAMES: Record<number, string> = {
  0: 'R_X86_64_NONE',
  1: 'R_X86_64_64',
  2: 'R_X86_64_PC32',
  3: 'R_X86_64_GOT32',
  4: 'R_X86_64_PLT32',
  5: 'R_X86_64_COPY',
  6: 'R_X86_64_GLOB_DAT',
  7: 'R_X86_64_JUMP_SLOT',
  8: 'R_X86_64_RELATIVE',
  9: 'R_X86_64_GOTPCREL',
  10: 'R_X86_64_32',
  11: 'R_X86_64_32S',
  12: 'R_X86_64_16',
  13: 'R_X86_64_PC16',
  14: 'R_X86_64_8',
  15: 'R_X86_64_PC8',
  16: 'R_X86_64_DTPMOD64',
  17: 'R_X86_64_DTPOFF64',
  18: 'R_X86_64_TPOFF64',
  19: 'R_X86_64_TLSGD',
  20: 'R_X86_64_TLSLD',
  21: 'R_X86_64_DTPOFF32',
  22: 'R_X86_64_GOTTPOFF',
  23: 'R_X86_64_TPOFF32',
  24: 'R_X86_64_PC64',
  25: 'R_X86_64_GOTOFF64',
  26: 'R_X86_64_GOTPC32',
  27: 'R_X86_64_GOT64',
  28: 'R_X86_64_GOTPCREL64',
  29: 'R_X86_64_GOTPC64',
  30: 'R_X86_64_GOTPLT64',
  31: 'R_X86_64_PLTOFF64',
  32: 'R_X86_64_SIZE32',
  33: 'R_X86_64_SIZE64',
  34: 'R_X86_64_GOTPC32_TLSDESC',
  35: 'R_X86_64_TLSDESC_CALL',
  36: 'R_X86_64_TLSDESC',
  37: 'R_X86_64_IRELATIVE',
  38: 'R_X86_64_RELATIVE64',
  41: 'R_X86_64_GOTPCRELX',
  42: 'R_X86_64_REX_GOTPCRELX',
  43: 'R_X86_64_CODE_4_GOTPCRELX',
  44: 'R_X86_64_CODE_4_GOTTPOFF',
  45: 'R_X86_64_CODE_4_GOTPC32_TLSDESC',
};

export function relocationName(type: number): string {
  return NAMES[type] ?? `relocation type ${type}`;
}

/**
 * What the scan pass does with a relocation type. Bits, so one table lookup answers every
 * question the hot loops ask.
 */
export const KIND_SUPPORTED = 1;
/** Needs a GOT entry for its target (unless relaxed). */
export const KIND_GOT = 2;
/** A branch that goes through a PLT stub when its target lies outside the graph. */
export const KIND_BRANCH = 4;
/** GOTPCRELX: may be relaxed to a direct reference when the target is in the graph. */
export const KIND_RELAXABLE = 8;
/** Refers to the GOT's own address (_GLOBAL_OFFSET_TABLE_), so the GOT must exist. */
export const KIND_GOT_BASE = 16;
/** A thread-local storage type (supported or not). */
export const KIND_TLS = 32;
/** Only a dynamic linker sees these; in a relocatable object they mean a broken input. */
export const KIND_DYNAMIC = 64;
/** An access to a thread-local in one of the four models (see passes/plan-tls.ts). */
export const KIND_TLS_ACCESS = 128;

export const relocationKinds = new Uint8Array(64);
for (const t of [
  R_X86_64_64,
  R_X86_64_PC32,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_16,
  R_X86_64_PC16,
  R_X86_64_8,
  R_X86_64_PC8,
  R_X86_64_PC64,
  R_X86_64_SIZE32,
  R_X86_64_SIZE64,
]) {
  relocationKinds[t] = KIND_SUPPORTED;
}
relocationKinds[R_X86_64_NONE] = KIND_SUPPORTED;
relocationKinds[R_X86_64_PLT32] = KIND_SUPPORTED | KIND_BRANCH;
relocationKinds[R_X86_64_PLTOFF64] = KIND_SUPPORTED | KIND_BRANCH | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOTPCREL] = KIND_SUPPORTED | KIND_GOT;
relocationKinds[R_X86_64_GOTPCREL64] = KIND_SUPPORTED | KIND_GOT;
relocationKinds[R_X86_64_GOTPCRELX] = KIND_SUPPORTED | KIND_GOT | KIND_RELAXABLE;
relocationKinds[R_X86_64_REX_GOTPCRELX] = KIND_SUPPORTED | KIND_GOT | KIND_RELAXABLE;
relocationKinds[R_X86_64_GOT32] = KIND_SUPPORTED | KIND_GOT | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOT64] = KIND_SUPPORTED | KIND_GOT | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOTPLT64] = KIND_SUPPORTED | KIND_GOT | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOTOFF64] = KIND_SUPPORTED | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOTPC32] = KIND_SUPPORTED | KIND_GOT_BASE;
relocationKinds[R_X86_64_GOTPC64] = KIND_SUPPORTED | KIND_GOT_BASE;
for (const t of [
  R_X86_64_DTPMOD64,
  R_X86_64_DTPOFF64,
  R_X86_64_TPOFF64,
  R_X86_64_TLSGD,
  R_X86_64_TLSLD,
  R_X86_64_DTPOFF32,
  R_X86_64_GOTTPOFF,
  R_X86_64_TPOFF32,
  R_X86_64_GOTPC32_TLSDESC,
  R_X86_64_TLSDESC_CALL,
  R_X86_64_TLSDESC,
  44,
  45,
]) {
  relocationKinds[t] = KIND_TLS;
}
// The TLS descriptor dialect (-mtls-dialect=gnu2) and DTPMOD64 (a dynamic linker's) stay refused.
for (const t of [
  R_X86_64_TLSGD,
  R_X86_64_TLSLD,
  R_X86_64_DTPOFF32,
  R_X86_64_DTPOFF64,
  R_X86_64_GOTTPOFF,
  R_X86_64_TPOFF32,
  R_X86_64_TPOFF64,
]) {
  relocationKinds[t] = KIND_SUPPORTED | KIND_TLS | KIND_TLS_ACCESS;
}
for (const t of [
  R_X86_64_COPY,
  R_X86_64_GLOB_DAT,
  R_X86_64_JUMP_SLOT,
  R_X86_64_RELATIVE,
  R_X86_64_IRELATIVE,
  R_X86_64_RELATIVE64,
]) {
  relocationKinds[t] = KIND_DYNAMIC;
}
