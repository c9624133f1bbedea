/**
 * PLT stubs: the linker's jump to a function outside the graph, through its GOT entry.
 * `jmp *disp32(%rip)` (ff 25 disp32), then two int3 to fill the 8-byte slot.
 */

export const STUB_SIZE = 8;
export const STUB_ALIGNMENT = 16;
const STUB_BYTES = Uint8Array.of(0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc);
/** The displacement counts from the end of the 6-byte jmp. */
const JMP_LENGTH = 6;

/** The stub section's content before relocation: `count` stubs with empty displacements. */
export function stubSectionContent(count: number): Uint8Array {
  const content = new Uint8Array(count * STUB_SIZE);
  for (let i = 0; i < count; i++) content.set(STUB_BYTES, i * STUB_SIZE);
  return content;
}

/** Points stub `index` (at `stubAddress`, written at `at` of `view`) at the GOT entry at `gotEntryAddress`. */
export function writeStub(
  view: DataView,
  at: number,
  stubAddress: number,
  index: number,
  gotEntryAddress: number,
): void {
  const disp = gotEntryAddress - (stubAddress + index * STUB_SIZE + JMP_LENGTH);
  view.setInt32(at + index * STUB_SIZE + 2, disp, true);
}
