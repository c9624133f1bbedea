import type { InputObject } from './input-object.js';

/** A relocation section whose target is allocated: what the scan and fixup passes walk. */
export class RelocationList {
  constructor(
    readonly object: InputObject,
    /** File offset (within the object) of the first entry: where messages point. */
    readonly offset: number,
    /**
     * Index of the first entry in the link's relocation words: every entry copied into one
     * aligned Uint32Array, six words each (offset lo/hi, type, symbol, addend lo/hi), which the
     * scan and fixup loops index directly instead of calling DataView methods per field.
     */
    readonly first: number,
    readonly count: number,
    /** The section the relocations patch. */
    readonly target: number,
    readonly targetSize: number,
    /** Relocations of .eh_frame may name discarded COMDAT code: those FDEs become inert. */
    readonly inEhFrame: boolean,
  ) {}

  /** The target section's name, for messages: made when asked for, not held per list. */
  get name(): string {
    return this.object.elf.sectionName(this.target);
  }
}

/** Words per relocation entry in the link's relocation words (an Elf64_Rela is 24 bytes). */
export const RELOCATION_WORDS = 6;
