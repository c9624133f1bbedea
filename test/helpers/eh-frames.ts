/**
 * .eh_frame sections as a compiler emits them for x86-64 (one CIE "zR" with pc-relative sdata4
 * pointers, FDEs for functions), built for a given load address so that tests can register
 * real frames, and mutate them into malformed ones.
 */

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function pad4(body: number[]): number[] {
  // DW_CFA_nop up to a multiple of 4, with the 4-byte length in front.
  while ((body.length + 4) % 4 !== 0) body.push(0);
  return [...u32(body.length), ...body];
}

/**
 * The CIE: version 1, "zR", code align 1, data align -8, return address r16, FDE pointers
 * pcrel|sdata4, CFA = rsp+8, rip at CFA-8.
 */
export function cieRecord(): number[] {
  return pad4([...u32(0), 1, 0x7a, 0x52, 0, ...uleb(1), 0x78, 16, ...uleb(1), 0x1b, 0x0c, 0x07, 0x08, 0x90, 0x01]);
}

/**
 * An .eh_frame section at `sectionAddr`: one CIE, then one FDE per function [start, start+size),
 * then a zero terminator.
 */
export function ehFrameSection(
  sectionAddr: number,
  functions: ReadonlyArray<{ start: number; size: number }>,
): Uint8Array {
  const bytes = cieRecord();
  for (const f of functions) {
    const at = bytes.length;
    // CIE pointer: from this field back to the CIE at offset 0.
    const ciePointer = at + 4;
    const pcBeginField = sectionAddr + at + 8;
    const pcRel = f.start - pcBeginField;
    const body = [...u32(ciePointer), ...u32(pcRel | 0), ...u32(f.size), ...uleb(0), 0x41, 0x0e, 0x10];
    bytes.push(...pad4(body));
  }
  bytes.push(0, 0, 0, 0);
  return Uint8Array.from(bytes);
}
