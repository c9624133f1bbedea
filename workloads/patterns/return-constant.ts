import { JitmemError } from '../../core/errors.js';
import { allocGroup, R, W, X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';

/**
 * The smallest program whose behaviour shows a patch took: `int f(void) { return VALUE; }` as
 * machine code for this process's architecture. Patching its immediate changes what f returns.
 */

function checkValue(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `a returned constant must be an integer in 0..2^31-1; got ${String(value)}`,
      { value },
    );
  }
  return value;
}

/** Machine code for `return value;` on `arch` (a Node process.arch name): x64 or arm64. */
export function returnConstantCode(value: number, arch: string = process.arch): Uint8Array {
  checkValue(value);
  if (arch === 'x64') {
    // mov eax, imm32; ret
    const code = Uint8Array.of(0xb8, 0, 0, 0, 0, 0xc3);
    new DataView(code.buffer).setUint32(1, value, true);
    return code;
  }
  if (arch === 'arm64') {
    // movz w0, #lo16; movk w0, #hi16, lsl #16; ret
    const code = new Uint8Array(12);
    const words = new DataView(code.buffer);
    words.setUint32(0, 0x52800000 | ((value & 0xffff) << 5), true);
    words.setUint32(4, (0x72a00000 | ((value >>> 16) << 5)) >>> 0, true);
    words.setUint32(8, 0xd65f03c0, true);
    return code;
  }
  throw new JitmemError(
    'ERR_UNSUPPORTED_ARCH',
    `returnConstantCode knows x64 and arm64 machine code; this is ${arch}`,
    { arch },
  );
}

/** A graph whose `.text` is `return value;`, and a 4 KiB `.data` beside it so that it has more than code. */
export function returnConstantGraph(value: number, name = 'return-constant', arch: string = process.arch): LinkGraph {
  const code = returnConstantCode(value, arch);
  return {
    name,
    sections: [
      { name: '.text', group: allocGroup(R | X), alignment: 16, size: code.length, content: code },
      { name: '.data', group: allocGroup(R | W), alignment: 8, size: 4096, content: new Uint8Array(4096) },
    ],
  };
}
