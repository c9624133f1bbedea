import { hex } from '../core/errors.js';
import { RemoteError } from './remote-error.js';

/**
 * A parse of an .eh_frame section, before it goes to the process's unwinder. libgcc's
 * __register_frame only stores the pointer; the records are read later, lazily, the next time
 * anything in the process unwinds, and read trustingly: a record length that runs on, an FDE's
 * CIE pointer that points anywhere, a pointer encoding it does not know (abort), a personality
 * read through a wild pointer. So every record is checked here as libgcc will read it, and the
 * code ranges the FDEs claim must lie in memory this executor owns.
 *
 * Not checked: the call-frame instructions themselves. They run only when the unwinder walks
 * through a pc of this frame's FDEs, which lie in JIT'd code, whose correctness is its own.
 */

const DW_EH_PE_omit = 0xff;
const DW_EH_PE_indirect = 0x80;

/** Pointer formats libgcc reads (low nibble). */
const FORMAT_SIZE = new Map<number, number>([
  [0x00, 8], // absptr (64-bit targets)
  [0x01, -1], // uleb128
  [0x02, 2], // udata2
  [0x03, 4], // udata4
  [0x04, 8], // udata8
  [0x09, -1], // sleb128
  [0x0a, 2], // sdata2
  [0x0b, 4], // sdata4
  [0x0c, 8], // sdata8
]);

export interface EHFrameFde {
  /** Where the FDE record starts, as an executor address. */
  readonly at: number;
  readonly pcBegin: number;
  readonly pcEnd: number;
}

export interface EHFrameParse {
  /** Bytes from the section start to the zero terminator (terminator included). */
  readonly walkedBytes: number;
  readonly cies: number;
  readonly fdes: readonly EHFrameFde[];
}

interface Cie {
  fdeEncoding: number;
  hasAugmentationData: boolean;
}

class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    readonly dv: DataView,
    public pos: number,
    readonly end: number,
    readonly fail: (msg: string) => never,
  ) {}

  need(n: number, what: string): void {
    if (this.pos + n > this.end) this.fail(`${what} runs past the end of its record`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  uleb(what: string): number {
    return this.leb(what, false);
  }

  sleb(what: string): number {
    return this.leb(what, true);
  }

  /** A LEB128 number of at most 10 bytes; signed ones extend the sign bit of their last byte. */
  private leb(what: string, signed: boolean): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.u8(what);
      result += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) return signed && b & 0x40 ? result - scale : result;
    }
    return this.fail(`${what} is a LEB128 number longer than 10 bytes`);
  }

  cstring(what: string): string {
    const nul = this.bytes.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) this.fail(`${what} has no NUL inside its record`);
    const s = String.fromCharCode(...this.bytes.subarray(this.pos, nul));
    this.pos = nul + 1;
    return s;
  }

  /** A pointer in `encoding`, as libgcc's read_encoded_value reads it; `at` is the executor address of the field (for pcrel). */
  encoded(encoding: number, fieldAddr: number, what: string): number {
    const format = encoding & 0x0f;
    const size = FORMAT_SIZE.get(format);
    if (size === undefined) this.fail(`${what} uses pointer encoding ${hex(encoding)}, which the unwinder does not know`);
    let value: number;
    if (size === -1) value = format === 0x01 ? this.uleb(what) : this.sleb(what);
    else {
      this.need(size, what);
      const p = this.pos;
      if (size === 2) value = format === 0x0a ? this.dv.getInt16(p, true) : this.dv.getUint16(p, true);
      else if (size === 4) value = format === 0x0b ? this.dv.getInt32(p, true) : this.dv.getUint32(p, true);
      else {
        const big = format === 0x0c ? this.dv.getBigInt64(p, true) : this.dv.getBigUint64(p, true);
        value = Number(big);
      }
      this.pos += size;
    }
    return (encoding & 0x70) === 0x10 ? fieldAddr + value : value;
  }
}

function checkEncoding(encoding: number, what: string, allowIndirect: boolean, fail: (m: string) => never): void {
  if (encoding === DW_EH_PE_omit) return;
  if (!FORMAT_SIZE.has(encoding & 0x0f)) fail(`${what} ${hex(encoding)} has a pointer format the unwinder does not know`);
  // absptr or pcrel: the unwinder gives registered frames no text or data base, and aborts on
  // funcrel; aligned is never emitted for .eh_frame.
  const application = encoding & 0x70;
  if (application !== 0x00 && application !== 0x10) fail(`${what} ${hex(encoding)} is relative to a base registered frames do not have (only absolute and pc-relative pointers are accepted)`);
  if (encoding & DW_EH_PE_indirect && !allowIndirect) fail(`${what} ${hex(encoding)} is indirect, which only a personality pointer may be`);
}

/**
 * Parses the .eh_frame section at `sectionAddr` whose bytes (from the section start, possibly
 * with the 4 bytes after its end) are `bytes`; `sectionSize` is the size the action named.
 * `codeInRange(lo, hi)` says whether [lo, hi) lies in memory the executor owns. Throws
 * ERR_INVALID_EH_FRAME naming the record and the field.
 */
export function parseEHFrame(bytes: Uint8Array, sectionAddr: number, sectionSize: number, codeInRange: (lo: number, hi: number) => boolean, what: string): EHFrameParse {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cies = new Map<number, Cie>();
  const fdeOffsets: number[] = [];
  let at = 0;
  // Pass 1: the record walk libgcc makes (lengths up to a zero terminator), and every CIE.
  for (;;) {
    const failAt = (msg: string): never => {
      throw new RemoteError('ERR_INVALID_EH_FRAME', `${what}: EH-frame record at ${hex(sectionAddr + at)} (offset ${at} of [${hex(sectionAddr)}, ${hex(sectionAddr + sectionSize)})): ${msg}`);
    };
    if (at + 4 > bytes.length || at > sectionSize) failAt('the section has no zero terminator inside or right after it');
    const length = dv.getUint32(at, true);
    if (length === 0) {
      at += 4;
      break;
    }
    if (at + 4 > sectionSize) failAt('a record starts past the end of the section');
    if (length === 0xffffffff) failAt('a 64-bit length, which this executor does not register');
    if (length < 4) failAt(`a length of ${length} bytes leaves no room for the CIE id`);
    const end = at + 4 + length;
    if (end > sectionSize) failAt(`its length ${length} runs ${end - sectionSize} bytes past the end of the section`);
    const id = dv.getUint32(at + 4, true);
    if (id === 0) cies.set(at, parseCie(new Cursor(bytes, dv, at + 8, end, failAt), failAt));
    else fdeOffsets.push(at);
    at = end;
  }
  const walkedBytes = at;
  // Pass 2: every FDE, against the CIE it points to.
  const fdes: EHFrameFde[] = [];
  for (const fdeAt of fdeOffsets) {
    const failAt = (msg: string): never => {
      throw new RemoteError('ERR_INVALID_EH_FRAME', `${what}: EH-frame FDE at ${hex(sectionAddr + fdeAt)} (offset ${fdeAt}): ${msg}`);
    };
    const end = fdeAt + 4 + dv.getUint32(fdeAt, true);
    const ciePointer = dv.getUint32(fdeAt + 4, true);
    // The CIE pointer counts back from the pointer's own field.
    const cieAt = fdeAt + 4 - ciePointer;
    const cie = cieAt >= 0 ? cies.get(cieAt) : undefined;
    if (!cie) failAt(`its CIE pointer ${ciePointer} leads to offset ${cieAt}, which is not the start of a CIE of this section`);
    const c = new Cursor(bytes, dv, fdeAt + 8, end, failAt);
    const pcField = sectionAddr + c.pos;
    const rawBegin = c.encoded(cie!.fdeEncoding & 0x0f, 0, 'pc_begin');
    const pcBegin = (cie!.fdeEncoding & 0x70) === 0x10 ? pcField + rawBegin : rawBegin;
    const range = c.encoded(cie!.fdeEncoding & 0x0f, 0, 'pc_range');
    if (cie!.hasAugmentationData) {
      const n = c.uleb('the augmentation data length');
      c.need(n, 'the augmentation data');
    }
    // An FDE of a discarded function: libgcc skips a pc_begin of 0 (in the bits the encoding
    // holds); a linker that resolves the pc-relative pointer to 0 leaves it pointing at itself,
    // which covers no code. Neither is code to check.
    const width = FORMAT_SIZE.get(cie!.fdeEncoding & 0x0f)!;
    const low = width >= 8 ? pcBegin : pcBegin % 2 ** (8 * width);
    if (low === 0 || rawBegin === 0) continue;
    if (!Number.isSafeInteger(pcBegin) || range < 0 || !Number.isSafeInteger(pcBegin + range) || !codeInRange(pcBegin, pcBegin + range)) {
      failAt(`it describes code at [${hex(Math.max(0, pcBegin))}, +${range}), which is not memory of this executor`);
    }
    fdes.push({ at: sectionAddr + fdeAt, pcBegin, pcEnd: pcBegin + range });
  }
  return { walkedBytes, cies: cies.size, fdes };
}

function parseCie(c: Cursor, fail: (m: string) => never): Cie {
  const version = c.u8('the CIE version');
  if (version !== 1 && version !== 3) fail(`CIE version ${version}; the unwinder reads versions 1 and 3`);
  const augmentation = c.cstring('the augmentation string');
  // libgcc finds the FDE encoding by a scan that knows P, L and R, and stops at anything else.
  if (augmentation !== '' && !/^z(?:([PLR])(?!.*\1))*S?$/.test(augmentation)) {
    fail(`augmentation ${JSON.stringify(augmentation)}; accepted: "" or "z" followed by each of P, L, R at most once, then optionally S`);
  }
  c.uleb('the code alignment factor');
  c.sleb('the data alignment factor');
  if (version === 1) c.u8('the return address register');
  else c.uleb('the return address register');
  let fdeEncoding = 0x00;
  if (augmentation === '') return { fdeEncoding, hasAugmentationData: false };
  const dataLength = c.uleb('the augmentation data length');
  c.need(dataLength, 'the augmentation data');
  const dataEnd = c.pos + dataLength;
  const d = new Cursor(c.bytes, c.dv, c.pos, dataEnd, fail);
  for (const ch of augmentation.slice(1)) {
    if (ch === 'R') {
      fdeEncoding = d.u8('the FDE pointer encoding');
      if (fdeEncoding === DW_EH_PE_omit) fail('the FDE pointer encoding is "omit", which leaves FDEs without a pc');
      checkEncoding(fdeEncoding, 'the FDE pointer encoding', false, fail);
      // libgcc sizes FDE pointers with size_of_encoded_value, which aborts on LEB128.
      if ((FORMAT_SIZE.get(fdeEncoding & 0x0f) ?? -1) < 0) fail(`the FDE pointer encoding ${hex(fdeEncoding)} is LEB128, which the unwinder cannot size`);
    } else if (ch === 'P') {
      const enc = d.u8('the personality encoding');
      if (enc === DW_EH_PE_omit) fail('the personality encoding is "omit" while "P" says there is one');
      checkEncoding(enc, 'the personality encoding', true, fail);
      d.encoded(enc & 0x7f, 0, 'the personality pointer');
    } else if (ch === 'L') {
      checkEncoding(d.u8('the LSDA encoding'), 'the LSDA encoding', false, fail);
    }
  }
  c.pos = dataEnd;
  return { fdeEncoding, hasAugmentationData: true };
}
