/**
 * Thread-local relaxations (Drepper, "ELF Handling For Thread-Local Storage", x86-64 §5.5):
 * the program's own thread-locals always lie in static TLS at an offset from the thread
 * pointer that relocate() knows (see passes/plan-tls.ts), so the general-dynamic and
 * initial-exec accesses to them become local exec, as a static linker does for an executable:
 * no __tls_get_addr call, no GOT load. The check (on the object's bytes, before anything is
 * allocated) and the rewrite (in working memory) are here together. A sequence that does not
 * match keeps its model.
 *
 *   GD -> LE   66 48 8d 3d <x@tlsgd>  66 66 48 e8 <__tls_get_addr@plt>       (16 bytes)
 *          ->  64 48 8b 04 25 00 00 00 00  48 8d 80 <x@tpoff>                   mov %fs:0,%rax; lea x@tpoff(%rax),%rax
 *   IE -> LE   REX 8b /r(mod 00, rm 101) <x@gottpoff>   mov x@gottpoff(%rip), %reg
 *          ->  REX' c7 /0(mod 11) <x@tpoff>             mov $x@tpoff, %reg
 *              REX 03 /r(mod 00, rm 101) <x@gottpoff>   add x@gottpoff(%rip), %reg
 *          ->  REX' 81 /0(mod 11) <x@tpoff>             add $x@tpoff, %reg
 *   LD -> LE   48 8d 3d <x@tlsld>  e8 <__tls_get_addr@plt>                    (12 bytes)
 *          ->  66 66 66 64 48 8b 04 25 00 00 00 00                            mov %fs:0,%rax
 *              and every DTPOFF32/64 of the object becomes the thread-pointer offset. That
 *              changes what %rax means for every local-dynamic access of the object, so an
 *              object's LD sequences are relaxed all together or not at all.
 */

/** What relocate() does with a relocation the scan relaxed (by its index in the link's relocation words). */
export const RELAX_GD_TO_LE = 1;
/** The __tls_get_addr call of a relaxed GD sequence: nothing to apply. */
export const RELAX_CALL_GONE = 2;
export const RELAX_IE_TO_LE = 3;
export const RELAX_LD_TO_LE = 4;
/** A DTPOFF32/64 of an object whose LD sequences were relaxed: the offset from the thread pointer. */
export const RELAX_DTPOFF_TO_TPOFF = 5;

const GD_LEA = [0x66, 0x48, 0x8d, 0x3d] as const;
const GD_CALL = [0x66, 0x66, 0x48, 0xe8] as const;
const LD_LEA = [0x48, 0x8d, 0x3d] as const;
const CALL = 0xe8;
const LD_LE_SEQUENCE = Uint8Array.of(0x66, 0x66, 0x66, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0);
const LE_SEQUENCE = Uint8Array.of(0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0x48, 0x8d, 0x80);
const REX_W = 0x48;
const REX_R = 0x04;
const REX_B = 0x01;
const MOV_LOAD = 0x8b;
const ADD_LOAD = 0x03;
const MOV_IMM = 0xc7;
const ALU_IMM = 0x81;

/**
 * Whether the TLSGD whose field is at `field` of `bytes` (at `offset` in a section of `size`
 * bytes) heads the standard 16-byte sequence, its call patched by the next relocation (at
 * `callOffset`, against __tls_get_addr).
 */
export function isRelaxableGd(
  bytes: Uint8Array,
  field: number,
  offset: number,
  size: number,
  callOffset: number | undefined,
): boolean {
  if (offset < 4 || offset + 12 > size || callOffset !== offset + 8) return false;
  for (let i = 0; i < 4; i++)
    if (bytes[field - 4 + i] !== GD_LEA[i] || bytes[field + 4 + i] !== GD_CALL[i]) return false;
  return true;
}

/** Whether the TLSLD field at `field` heads the standard 12-byte sequence, its call patched at `callOffset`. */
export function isRelaxableLd(
  bytes: Uint8Array,
  field: number,
  offset: number,
  size: number,
  callOffset: number | undefined,
): boolean {
  if (offset < 3 || offset + 9 > size || callOffset !== offset + 5) return false;
  return (
    bytes[field - 3] === LD_LEA[0] &&
    bytes[field - 2] === LD_LEA[1] &&
    bytes[field - 1] === LD_LEA[2] &&
    bytes[field + 4] === CALL
  );
}

/** Rewrites an LD sequence (its TLSLD field at `at`) into `mov %fs:0, %rax`. */
export function relaxLdToLe(view: DataView, at: number): void {
  for (let i = 0; i < LD_LE_SEQUENCE.length; i++) view.setUint8(at - 3 + i, LD_LE_SEQUENCE[i]!);
}

/** Whether the GOTTPOFF field at `field` is a mov or add from the GOT into a 64-bit register. */
export function isRelaxableIe(bytes: Uint8Array, field: number, offset: number): boolean {
  if (offset < 3) return false;
  const rex = bytes[field - 3]!;
  const op = bytes[field - 2]!;
  const modrm = bytes[field - 1]!;
  return (rex & 0xfa) === REX_W && (op === MOV_LOAD || op === ADD_LOAD) && (modrm & 0xc7) === 0x05;
}

/** Rewrites a GD sequence (its TLSGD field at `at`) into local exec with `tpOffset`. */
export function relaxGdToLe(view: DataView, at: number, tpOffset: number): void {
  for (let i = 0; i < LE_SEQUENCE.length; i++) view.setUint8(at - 4 + i, LE_SEQUENCE[i]!);
  view.setInt32(at + 8, tpOffset, true);
}

/** Rewrites a GOTTPOFF load (its field at `at`) into an immediate `tpOffset`. */
export function relaxIeToLe(view: DataView, at: number, tpOffset: number): void {
  const rex = view.getUint8(at - 3);
  const op = view.getUint8(at - 2);
  const reg = (view.getUint8(at - 1) >> 3) & 7;
  // The register moves from ModRM.reg (REX.R) to ModRM.rm (REX.B).
  view.setUint8(at - 3, REX_W | (rex & REX_R ? REX_B : 0));
  view.setUint8(at - 2, op === MOV_LOAD ? MOV_IMM : ALU_IMM);
  view.setUint8(at - 1, 0xc0 | reg);
  view.setInt32(at, tpOffset, true);
}
