import { JitmemError, hex } from '../core/errors.js';
import { osCounts } from '../core/cost-counters.js';

/**
 * SimpleRemoteEPC framing (docs/wire-protocol.md §1): a 32-byte header of four little-endian u64s
 * (MsgSize including the header, OpCode, SeqNo, TagAddr), then MsgSize-32 payload bytes.
 */

export const HEADER_SIZE = 32;

export const OpCode = {
  Setup: 0,
  Hangup: 1,
  Result: 2,
  CallWrapper: 3,
} as const;
export type OpCode = (typeof OpCode)[keyof typeof OpCode];

/** Frames larger than this are refused unless the channel is told otherwise (a 1 GiB slab never travels whole). */
export const DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024;

export interface Frame {
  readonly opcode: OpCode;
  readonly seq: number;
  readonly tag: number;
  /**
   * A view into the received bytes where possible; valid until the handler returns or copies it.
   * For a gathered frame it is assembled (one copy) when first read.
   */
  readonly payload: Uint8Array;
  /**
   * Set for a large payload that arrived in several chunks, when the parser was asked to gather
   * such payloads: the chunks' views in order, so that a reader can take the bytes from where
   * they are instead of from one assembled copy.
   */
  readonly pieces?: readonly Uint8Array[];
}

/** A frame whose payload stays in its pieces until someone reads `payload`. */
function gatheredFrame(opcode: OpCode, seq: number, tag: number, pieces: Uint8Array[]): Frame {
  let assembled: Uint8Array | undefined;
  return {
    opcode,
    seq,
    tag,
    pieces,
    get payload(): Uint8Array {
      if (!assembled) {
        let n = 0;
        for (const p of pieces) n += p.length;
        assembled = new Uint8Array(n);
        let at = 0;
        for (const p of pieces) {
          assembled.set(p, at);
          at += p.length;
        }
      }
      return assembled;
    },
  };
}

const TWO_32 = 2 ** 32;

/**
 * Writes a header into bytes [0, 32) of `frame`. MsgSize is `frame`'s length, or `size` for a
 * frame sent in several pieces of which `frame` is the first.
 */
export function writeHeader(frame: Uint8Array, opcode: number, seq: number, tag: number, size = frame.length): void {
  writeHeaderAt(new DataView(frame.buffer, frame.byteOffset, HEADER_SIZE), 0, opcode, seq, tag, size);
}

/**
 * Writes a header of MsgSize `size` at byte `at` of `dv`: for a sender that already holds a
 * DataView over the frame's buffer (an SpsWriter's), which saves making one per frame.
 */
export function writeHeaderAt(dv: DataView, at: number, opcode: number, seq: number, tag: number, size: number): void {
  putU64(dv, at, size);
  putU64(dv, at + 8, opcode);
  putU64(dv, at + 16, seq);
  putU64(dv, at + 24, tag);
}

/** A whole frame in one buffer (header + copy of the payload). */
export function encodeFrame(
  opcode: number,
  seq: number,
  tag: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const f = new Uint8Array(HEADER_SIZE + payload.length);
  f.set(payload, HEADER_SIZE);
  osCounts.bytesCopied += payload.length;
  writeHeader(f, opcode, seq, tag);
  return f;
}

function putU64(dv: DataView, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new JitmemError(
      'ERR_INVALID_FRAME_FIELD',
      `a frame header field must be a non-negative safe integer; got ${String(v)}`,
      { value: v },
    );
  }
  dv.setUint32(at, v % TWO_32, true);
  dv.setUint32(at + 4, Math.floor(v / TWO_32), true);
}

/** A u64 header field as a number, or null when it does not fit in 2^53. */
function getU64(dv: DataView, at: number): number | null {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  return hi >= 0x200000 ? null : hi * TWO_32 + lo;
}

export class FrameError extends JitmemError {}

/**
 * Incremental frame parser over a byte stream. Chunks are kept as they arrive; a payload that
 * lies inside one chunk is handed out as a view of it, and one spread over several chunks is
 * assembled once into a buffer of exactly its size (checked against the limit first), or, when
 * it is at least `gatherFrom` bytes, handed out as its pieces (Frame.pieces).
 */
export class FrameParser {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private header: { size: number; opcode: number; seq: number; tag: number } | null = null;

  constructor(
    private readonly maxFrameSize: number,
    private readonly gatherFrom = Number.POSITIVE_INFINITY,
  ) {}

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.buffered;
  }

  /** True when the stream may end here: between frames. */
  get atBoundary(): boolean {
    return this.buffered === 0 && this.header === null;
  }

  /** Feeds bytes and returns the frames they complete; throws FrameError on a bad header. */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    for (;;) {
      if (this.header === null) {
        if (this.buffered < HEADER_SIZE) break;
        this.header = this.parseHeader(this.take(HEADER_SIZE));
      }
      const payloadSize = this.header.size - HEADER_SIZE;
      if (this.buffered < payloadSize) break;
      const h = this.header;
      this.header = null;
      if (payloadSize >= this.gatherFrom && this.chunks[0]!.length < payloadSize) {
        frames.push(gatheredFrame(h.opcode as OpCode, h.seq, h.tag, this.takePieces(payloadSize)));
      } else {
        frames.push({ opcode: h.opcode as OpCode, seq: h.seq, tag: h.tag, payload: this.take(payloadSize) });
      }
    }
    return frames;
  }

  private parseHeader(bytes: Uint8Array): { size: number; opcode: number; seq: number; tag: number } {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
    const size = getU64(dv, 0);
    const opcode = getU64(dv, 8);
    const seq = getU64(dv, 16);
    const tag = getU64(dv, 24);
    if (size === null || size > this.maxFrameSize) {
      const shown = size === null ? hex(dv.getBigUint64(0, true)) : `${size}`;
      throw new FrameError(
        'ERR_FRAME_TOO_LARGE',
        `frame size ${shown} is above the limit of ${this.maxFrameSize} bytes`,
        {
          size: size ?? dv.getBigUint64(0, true),
          limit: this.maxFrameSize,
        },
      );
    }
    if (size < HEADER_SIZE) {
      throw new FrameError('ERR_FRAME_TOO_SMALL', `frame size ${size} is below the 32-byte header it must include`, {
        size,
      });
    }
    if (opcode === null || opcode > OpCode.CallWrapper) {
      throw new FrameError(
        'ERR_UNKNOWN_OPCODE',
        `unknown opcode ${opcode === null ? hex(dv.getBigUint64(8, true)) : opcode}; expected 0 (Setup), 1 (Hangup), 2 (Result) or 3 (CallWrapper)`,
        { opcode: opcode ?? dv.getBigUint64(8, true) },
      );
    }
    if (seq === null) {
      throw new FrameError(
        'ERR_BAD_SEQUENCE_NUMBER',
        `sequence number ${hex(dv.getBigUint64(16, true))} is beyond 2^53`,
        {
          seq: dv.getBigUint64(16, true),
        },
      );
    }
    if (tag === null) {
      throw new FrameError(
        'ERR_UNKNOWN_TAG',
        `tag address ${hex(dv.getBigUint64(24, true))} is beyond 2^53 and names nothing`,
        {
          tag: dv.getBigUint64(24, true),
        },
      );
    }
    return { size, opcode, seq, tag };
  }

  /** Removes `n` buffered bytes from the front as views of the chunks they lie in (no copy). */
  private takePieces(n: number): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        pieces.push(c);
        left -= c.length;
        this.chunks.shift();
      } else {
        pieces.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return pieces;
  }

  /** Removes `n` buffered bytes from the front: a view when they lie in one chunk, else one copy. */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        out.set(c, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        out.set(c.subarray(0, want), filled);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    this.buffered -= n;
    return out;
  }
}
