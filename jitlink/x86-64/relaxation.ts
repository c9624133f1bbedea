import { R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX } from './relocation-types.js';

/**
 * GOT-load relaxation (psABI §B.2, "Optimize GOTPCRELX Relocations"): when the target lies in
 * the graph, a load of its address from the GOT becomes a direct reference and needs no GOT
 * entry. The check (before anything is allocated, on the object's own bytes) and the rewrite
 * (in working memory) are here together, so that they cannot disagree.
 *
 *   mov foo@GOTPCREL(%rip), %reg   8b /r    ->  lea foo(%rip), %reg   8d /r
 *   call *foo@GOTPCREL(%rip)       ff 15    ->  addr32 call foo       67 e8
 *
 * Anything else (jmp *, test, binop) keeps its GOT entry.
 */

const MOV_LOAD = 0x8b;
const LEA = 0x8d;
const CALL_INDIRECT = [0xff, 0x15] as const;
const ADDR32_CALL = [0x67, 0xe8] as const;

/**
 * Whether the GOT load whose 4-byte field is at `field` of `bytes` (at `offset` in its section)
 * can become direct.
 */
export function isRelaxableGotLoad(bytes: Uint8Array, field: number, offset: number, type: number): boolean {
  if (offset < (type === R_X86_64_REX_GOTPCRELX ? 3 : 2)) return false;
  const op = bytes[field - 2];
  if (op === MOV_LOAD) return true;
  return type === R_X86_64_GOTPCRELX && op === CALL_INDIRECT[0] && bytes[field - 1] === CALL_INDIRECT[1];
}

/** Rewrites the instruction before the field at `at` of `view` (one isRelaxableGotLoad accepted). */
export function relaxGotLoad(view: DataView, at: number): void {
  if (view.getUint8(at - 2) === MOV_LOAD) {
    view.setUint8(at - 2, LEA);
  } else {
    view.setUint8(at - 2, ADDR32_CALL[0]);
    view.setUint8(at - 1, ADDR32_CALL[1]);
  }
}
