import type { InputObject } from './input-object.js';
import { R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX } from './x86-64-relocations.js';

/** A relocation section whose target is allocated: what the scan and fixup passes walk. */
export interface RelocationList {
  readonly object: InputObject;
  /** File offset (within the object) of the first entry: where messages point. */
  readonly offset: number;
  /**
   * Index of the first entry in the link's relocation words: every entry copied into one
   * aligned Uint32Array, six words each (offset lo/hi, type, symbol, addend lo/hi), which the
   * scan and fixup loops index directly instead of calling DataView methods per field.
   */
  readonly first: number;
  readonly count: number;
  /** The section the relocations patch. */
  readonly target: number;
  readonly targetSize: number;
  readonly name: string;
  /** Relocations of .eh_frame may name discarded COMDAT code: those FDEs become inert. */
  readonly inEhFrame: boolean;
}

/**
 * Whether a GOT load can become a direct reference, by its instruction: `mov foo@GOTPCREL(%rip),
 * %reg` (8b) becomes `lea foo(%rip), %reg` (8d); `call *foo@GOTPCREL(%rip)` (ff 15) becomes
 * `addr32 call foo` (67 e8). Anything else keeps its GOT entry.
 */
export function isRelaxable(object: InputObject, list: RelocationList, offset: number, type: number): boolean {
  if (offset < (type === R_X86_64_REX_GOTPCRELX ? 3 : 2)) return false;
  const at = object.elf.sections[list.target]!.offset + offset;
  const op = object.bytes[at - 2];
  if (op === 0x8b) return true;
  return type === R_X86_64_GOTPCRELX && op === 0xff && object.bytes[at - 1] === 0x15;
}

