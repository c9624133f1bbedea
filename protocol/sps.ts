import { JitmemError, hex } from '../core/errors.js';
import { osCounts } from '../core/cost-counters.js';
// The alloc-action types are the runner's; SPS only encodes them (a type-only cycle, erased at runtime).
import type { AllocActionCallPair, WrapperCall } from './alloc-actions.js';

/**
 * SPS, ORC's Simple Packed Serialization (docs/wire-protocol.md §2): little-endian integers,
 * u64-counted sequences, no tags and no padding. The writer grows one buffer; the reader walks a
 * Uint8Array without copying and refuses anything that does not fit what is left, so a hostile
 * count can never make it allocate more than the bytes it was given.
 */

const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
const utf8Encoder = new TextEncoder();

const TWO_32 = 2 ** 32;

/** JIT symbol flags as SPSJITSymbolFlags carries them. */
export const SymbolFlags = {
  HasError: 0x01,
  Weak: 0x02,
  Common: 0x04,
  Absolute: 0x08,
  Exported: 0x10,
  Callable: 0x20,
  MaterializationSideEffectsOnly: 0x40,
} as const;

export interface WireAddrRange {
  start: number;
  end: number;
}

/** SPSSegFinalizeRequest (content present) or SPSSharedMemorySegFinalizeRequest (no content). */
export interface WireSegment {
  /** SPSRemoteAllocGroup: prot bits | finalize << 3. */
  group: number;
  addr: number;
  size: number;
  content?: Uint8Array;
  /** The content as views of the pieces of a gathered frame, instead of `content` (decodeFinalizeRequestPieces). */
  contentPieces?: readonly Uint8Array[];
}

/** Bytes of content a segment carries, in one view or in pieces. */
export function contentLength(s: WireSegment): number {
  if (s.content) return s.content.length;
  let n = 0;
  for (const p of s.contentPieces ?? []) n += p.length;
  return n;
}

export interface WireFinalizeRequest {
  segments: WireSegment[];
  actions: AllocActionCallPair[];
}

export interface WireSymbolDef {
  addr: number;
  flags: number;
  targetFlags: number;
}

export interface WireLookupElement {
  name: string;
  required: boolean;
}

/** A value or an error message, as SPSExpected carries it. */
export type WireExpected<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Writers of up to this many bytes (headroom included) take their buffer from a shared pool
 * instead of allocating one: a call's arguments are tens of bytes, and a buffer of their own
 * costs more than encoding them (a backing store outside the heap, and a DataView over it).
 */
const POOLED_WRITER_MAX = 1024;
const WRITER_POOL_SIZE = 64 * 1024;

/**
 * The pool: one ArrayBuffer and one DataView, handed out front to back in 8-byte-aligned slots
 * and never reused (a full pool is replaced by a new one), so the bytes of a finished writer,
 * which a stream may still be about to send, stay as they are for as long as anyone holds them.
 */
let writerPool = new ArrayBuffer(WRITER_POOL_SIZE);
let writerPoolView = new DataView(writerPool);
let writerPoolUsed = 0;

export class SpsWriter {
  private buf: Uint8Array;
  private dv: DataView;
  /** Where buf[0] lies in dv (a pooled buffer is a slot of the pool's view). */
  private dvAt: number;
  private pos: number;
  private readonly start: number;
  /**
   * Bytes referenced rather than copied (bytesByReference): each goes on the wire after the
   * first `at` bytes of buf. Made on the first one.
   */
  private spliced: Array<{ readonly at: number; readonly bytes: Uint8Array }> | null = null;
  private splicedBytes = 0;

  /**
   * `headroom` bytes are left free in front of the payload so that a frame header can be
   * written there and the whole frame sent without another copy.
   */
  constructor(initialCapacity = 256, headroom = 0) {
    const size = Math.max(initialCapacity + headroom, 16);
    if (size <= POOLED_WRITER_MAX) {
      const slot = (size + 7) & ~7;
      // A full pool, or one someone detached (transferred a finished writer's buffer), is replaced.
      if (writerPoolUsed + slot > WRITER_POOL_SIZE || writerPool.byteLength === 0) {
        writerPool = new ArrayBuffer(WRITER_POOL_SIZE);
        writerPoolView = new DataView(writerPool);
        writerPoolUsed = 0;
      }
      this.buf = new Uint8Array(writerPool, writerPoolUsed, size);
      this.dv = writerPoolView;
      this.dvAt = writerPoolUsed;
      writerPoolUsed += slot;
    } else {
      this.buf = new Uint8Array(size);
      this.dv = new DataView(this.buf.buffer);
      this.dvAt = 0;
    }
    this.pos = headroom;
    this.start = headroom;
  }

  /** Bytes of payload written so far, spliced ones included. */
  get length(): number {
    return this.pos - this.start + this.splicedBytes;
  }

  /** True when some bytes are referenced rather than copied: send the pieces (finishPieces). */
  get gathered(): boolean {
    return this.spliced !== null;
  }

  get headroom(): number {
    return this.start;
  }

  /**
   * A DataView over this writer's buffer and the offset of its first byte (headroom included)
   * in it: where a frame header goes (writeHeaderAt), with no DataView made for it.
   */
  get dataView(): DataView {
    return this.dv;
  }

  get dataViewOffset(): number {
    return this.dvAt;
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
    this.dvAt = 0;
  }

  /** The payload (a view, no copy). */
  finish(): Uint8Array {
    return this.buf.subarray(this.start, this.pos);
  }

  /** Headroom plus payload (a view, no copy): what a frame writer fills in and sends. */
  finishWithHeadroom(): Uint8Array {
    if (this.spliced !== null)
      throw new JitmemError(
        'ERR_INTERNAL',
        'SpsWriter: a writer with bytes spliced in by reference goes out in pieces (finishPieces)',
      );
    // A view made directly (subarray looks up a species constructor each time).
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.pos);
  }

  /**
   * Headroom plus payload as the pieces to send one after the other (a gather write): views of
   * this writer's buffer between the bytes spliced in by reference, and those bytes themselves.
   * The spliced bytes must stay as they are until the pieces have been written.
   */
  finishPieces(): Uint8Array[] {
    const pieces: Uint8Array[] = [];
    let from = 0;
    for (const s of this.spliced ?? []) {
      if (s.at > from) pieces.push(this.buf.subarray(from, s.at));
      pieces.push(s.bytes);
      from = s.at;
    }
    if (this.pos > from || pieces.length === 0) pieces.push(this.buf.subarray(from, this.pos));
    return pieces;
  }

  u8(v: number): this {
    if (this.pos + 1 > this.buf.length) this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  i8(v: number): this {
    return this.u8(v & 0xff);
  }

  i16(v: number): this {
    return this.u16(v & 0xffff);
  }

  u16(v: number): this {
    this.ensure(2);
    this.dv.setUint16(this.dvAt + this.pos, v & 0xffff, true);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.dv.setUint32(this.dvAt + this.pos, v >>> 0, true);
    this.pos += 4;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.dv.setInt32(this.dvAt + this.pos, v | 0, true);
    this.pos += 4;
    return this;
  }

  /**
   * A u64 from a non-negative safe integer or any bigint (taken modulo 2^64). Addresses, sizes
   * and counts of every call go through here, often before the code is optimized: the common
   * case takes no call but the two stores (`>>> 0` is the low 32 bits of any safe integer).
   */
  u64(v: number | bigint): this {
    if (this.pos + 8 > this.buf.length) this.ensure(8);
    const at = this.dvAt + this.pos;
    if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER && v % 1 === 0) {
      const lo = v >>> 0;
      this.dv.setUint32(at, lo, true);
      this.dv.setUint32(at + 4, (v - lo) / TWO_32, true);
    } else if (typeof v === 'bigint') {
      this.dv.setBigUint64(at, BigInt.asUintN(64, v), true);
    } else {
      throw new JitmemError(
        'ERR_SPS_VALUE',
        `an SPS u64 must be a non-negative safe integer or a bigint; got ${String(v)}`,
        { value: v },
      );
    }
    this.pos += 8;
    return this;
  }

  i64(v: number | bigint): this {
    this.ensure(8);
    this.dv.setBigInt64(this.dvAt + this.pos, BigInt.asIntN(64, BigInt(v)), true);
    this.pos += 8;
    return this;
  }

  addr(v: number): this {
    return this.u64(v);
  }

  addrRange(r: WireAddrRange): this {
    return this.u64(r.start).u64(r.end);
  }

  /** Raw bytes with no count (a piece of an already-encoded tuple). */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    osCounts.bytesCopied += bytes.length;
    return this;
  }

  /** SPSSequence<char>: u64 count, then the bytes. */
  bytes(bytes: Uint8Array): this {
    return this.u64(bytes.length).raw(bytes);
  }

  /**
   * SPSSequence<char> whose bytes are not copied into this writer: they go on the wire from
   * where they are (see finishPieces). For large content a sender holds anyway.
   */
  bytesByReference(bytes: Uint8Array): this {
    this.u64(bytes.length);
    if (bytes.length > 0) {
      (this.spliced ??= []).push({ at: this.pos, bytes });
      this.splicedBytes += bytes.length;
    }
    return this;
  }

  /** SPSString: UTF-8 bytes with a u64 count, no NUL. */
  string(s: string): this {
    const b = utf8Encoder.encode(s);
    return this.bytes(b);
  }

  sequence<T>(items: readonly T[], each: (w: this, item: T) => void): this {
    this.u64(items.length);
    for (const item of items) each(this, item);
    return this;
  }

  /** SPSMap<K,V> (and StringMap): a sequence of key-value tuples. */
  map<K, V>(entries: Iterable<readonly [K, V]>, key: (w: this, k: K) => void, value: (w: this, v: V) => void): this {
    const list = [...entries];
    this.u64(list.length);
    for (const [k, v] of list) {
      key(this, k);
      value(this, v);
    }
    return this;
  }

  optional<T>(value: T | null | undefined, each: (w: this, v: T) => void): this {
    if (value === null || value === undefined) return this.bool(false);
    this.bool(true);
    each(this, value);
    return this;
  }

  /** SPSError: 00 for success, 01 + message otherwise. */
  error(message: string | null): this {
    if (message === null) return this.bool(false);
    return this.bool(true).string(message);
  }

  expected<T>(result: WireExpected<T>, each: (w: this, v: T) => void): this {
    if (!result.ok) return this.bool(false).string(result.error);
    this.bool(true);
    each(this, result.value);
    return this;
  }

  wrapperCall(call: WrapperCall | null): this {
    if (call === null) return this.u64(0).u64(0);
    return this.addr(call.fn).bytes(call.args);
  }

  allocActionCallPair(pair: AllocActionCallPair): this {
    return this.wrapperCall(pair.finalize).wrapperCall(pair.dealloc);
  }

  remoteAllocGroup(id: number): this {
    return this.u8(id);
  }

  symbolFlags(flags: number, targetFlags: number): this {
    return this.u8(flags).u8(targetFlags);
  }

  symbolDef(def: WireSymbolDef): this {
    return this.addr(def.addr).symbolFlags(def.flags, def.targetFlags);
  }

  lookupSet(set: readonly WireLookupElement[]): this {
    return this.sequence(set, (w, e) => w.string(e.name).bool(e.required));
  }

  /**
   * SPSFinalizeRequest: segments carry their content, copied into this writer, or referenced
   * (`byReference`) when the caller sends the pieces with a gather write.
   */
  finalizeRequest(fr: WireFinalizeRequest, byReference = false): this {
    this.sequence(fr.segments, (w, s) => {
      w.remoteAllocGroup(s.group).addr(s.addr).u64(s.size);
      if (byReference) w.bytesByReference(s.content ?? new Uint8Array(0));
      else w.bytes(s.content ?? new Uint8Array(0));
    });
    return this.sequence(fr.actions, (w, a) => w.allocActionCallPair(a));
  }

  /**
   * SPSSharedMemoryFinalizeRequest: segments without content. Every shared-memory finalize is
   * one, so it is written with plain loops (no closure per sequence).
   */
  sharedMemoryFinalizeRequest(fr: WireFinalizeRequest): this {
    const segments = fr.segments;
    this.u64(segments.length);
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      this.u8(s.group).u64(s.addr).u64(s.size);
    }
    const actions = fr.actions;
    this.u64(actions.length);
    for (let i = 0; i < actions.length; i++) this.allocActionCallPair(actions[i]!);
    return this;
  }
}

/**
 * Bytes SpsWriter.sharedMemoryFinalizeRequest writes for `segments` segments and `actions`: the
 * two counts, a group, address and size per segment, and per action pair two wrapper calls
 * (address and counted arguments). A caller sizes its writer with it, so that the request is
 * encoded where the writer starts and never copied to a larger buffer.
 */
export function sharedMemoryFinalizeRequestSize(segments: number, actions: readonly AllocActionCallPair[]): number {
  let n = 8 + segments * 17 + 8;
  for (let i = 0; i < actions.length; i++) {
    const a = actions[i]!;
    n += 32 + (a.finalize?.args.length ?? 0) + (a.dealloc?.args.length ?? 0);
  }
  return n;
}

/** Encodes with a fresh writer and returns the payload. */
export function sps(build: (w: SpsWriter) => void, capacity = 64): Uint8Array {
  const w = new SpsWriter(capacity);
  build(w);
  return w.finish();
}

export class SpsReader {
  private readonly dv: DataView;
  private pos = 0;

  constructor(
    readonly bytes: Uint8Array,
    /** Names the thing being decoded in error messages ("reserve arguments", "Setup"). */
    readonly what = 'SPS data',
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  malformed(message: string, details: Record<string, unknown> = {}): JitmemError {
    return new JitmemError('ERR_SPS_MALFORMED', `malformed ${this.what} at byte offset ${this.pos}: ${message}`, {
      offset: this.pos,
      length: this.bytes.length,
      ...details,
    });
  }

  private need(n: number, what: string): void {
    if (this.bytes.length - this.pos < n) {
      throw this.malformed(`${what} needs ${n} bytes but only ${this.bytes.length - this.pos} remain`, { needed: n });
    }
  }

  /** Fails unless every byte was consumed: trailing bytes mean the sender and we disagree on the type. */
  end(): void {
    if (this.pos !== this.bytes.length) {
      throw this.malformed(`${this.bytes.length - this.pos} unexpected trailing bytes`);
    }
  }

  u8(): number {
    this.need(1, 'a u8');
    return this.bytes[this.pos++]!;
  }

  bool(): boolean {
    this.need(1, 'a bool');
    const b = this.bytes[this.pos]!;
    if (b > 1) throw this.malformed(`a bool must be 0 or 1; got ${b}`, { value: b });
    this.pos++;
    return b === 1;
  }

  i8(): number {
    return (this.u8() << 24) >> 24;
  }

  i16(): number {
    return (this.u16() << 16) >> 16;
  }

  u16(): number {
    this.need(2, 'a u16');
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'a u32');
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i32(): number {
    this.need(4, 'an i32');
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64Big(): bigint {
    this.need(8, 'a u64');
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  i64Big(): bigint {
    this.need(8, 'an i64');
    const v = this.dv.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 that must be a safe integer (sizes, addresses, counts). */
  u64(what = 'a u64'): number {
    this.need(8, what);
    const lo = this.dv.getUint32(this.pos, true);
    const hi = this.dv.getUint32(this.pos + 4, true);
    if (hi >= 0x200000) {
      throw this.malformed(`${what} of ${hex(this.dv.getBigUint64(this.pos, true))} is beyond 2^53`);
    }
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  addr(what = 'an address'): number {
    return this.u64(what);
  }

  addrRange(): WireAddrRange {
    const start = this.addr('a range start');
    const end = this.addr('a range end');
    return { start, end };
  }

  /**
   * A sequence count, checked against the bytes left: each element takes at least
   * `minElementSize` bytes, so a count that cannot fit is refused before anything is allocated.
   */
  count(minElementSize: number): number {
    const at = this.pos;
    const n = this.u64('a sequence count');
    if (n * minElementSize > this.bytes.length - this.pos) {
      this.pos = at;
      throw this.malformed(
        `a sequence of ${n} elements of at least ${minElementSize} bytes each needs more than the ${this.bytes.length - at - 8} bytes that remain`,
        { count: n },
      );
    }
    return n;
  }

  /** `n` raw bytes as a view into the input (no copy). */
  raw(n: number): Uint8Array {
    this.need(n, `${n} bytes`);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** SPSSequence<char> as a view into the input (no copy). */
  bytesView(): Uint8Array {
    const n = this.count(1);
    return this.raw(n);
  }

  string(): string {
    return utf8Decoder.decode(this.bytesView());
  }

  sequence<T>(minElementSize: number, each: (r: this) => T): T[] {
    const n = this.count(minElementSize);
    const out: T[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = each(this);
    return out;
  }

  /** SPSMap<K,V> as a Map; a repeated key is malformed (StringMap decoding fails on one). */
  map<K, V>(minEntrySize: number, key: (r: this) => K, value: (r: this) => V): Map<K, V> {
    const n = this.count(minEntrySize);
    const out = new Map<K, V>();
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const k = key(this);
      if (out.has(k)) {
        this.pos = at;
        throw this.malformed(`duplicate map key ${JSON.stringify(k)}`);
      }
      out.set(k, value(this));
    }
    return out;
  }

  optional<T>(each: (r: this) => T): T | null {
    return this.bool() ? each(this) : null;
  }

  /** SPSError: null on success, the message otherwise. */
  error(): string | null {
    return this.bool() ? this.string() : null;
  }

  expected<T>(each: (r: this) => T): WireExpected<T> {
    if (this.bool()) return { ok: true, value: each(this) };
    return { ok: false, error: this.string() };
  }

  wrapperCall(): WrapperCall | null {
    const fn = this.addr('a wrapper function address');
    const args = this.bytesView();
    // A call to address 0 is "no call" whatever its arguments, as LLVM skips it.
    return fn === 0 ? null : { fn, args };
  }

  allocActionCallPair(): AllocActionCallPair {
    const finalize = this.wrapperCall();
    const dealloc = this.wrapperCall();
    return { finalize, dealloc };
  }

  remoteAllocGroup(): number {
    const at = this.pos;
    const id = this.u8();
    if (id > 15) {
      this.pos = at;
      throw this.malformed(`an SPSRemoteAllocGroup must be 0..15 (prot | finalize << 3); got ${id}`, { value: id });
    }
    return id;
  }

  symbolDef(): WireSymbolDef {
    const addr = this.addr();
    const flags = this.u8();
    const targetFlags = this.u8();
    return { addr, flags, targetFlags };
  }

  lookupSet(): WireLookupElement[] {
    return this.sequence(9, (r) => ({ name: r.string(), required: r.bool() }));
  }

  finalizeRequest(): WireFinalizeRequest {
    const segments = this.sequence(25, (r) => {
      const group = r.remoteAllocGroup();
      const addr = r.addr('a segment address');
      const size = r.u64('a segment size');
      const content = r.bytesView();
      return { group, addr, size, content };
    });
    const actions = this.sequence(32, (r) => r.allocActionCallPair());
    return { segments, actions };
  }

  sharedMemoryFinalizeRequest(): WireFinalizeRequest {
    const segments = this.sequence(17, (r) => {
      const group = r.remoteAllocGroup();
      const addr = r.addr('a segment address');
      const size = r.u64('a segment size');
      return { group, addr, size };
    });
    const actions = this.sequence(32, (r) => r.allocActionCallPair());
    return { segments, actions };
  }
}

/** Decodes `bytes` completely with `read`; trailing bytes are malformed. */
export function decode<T>(bytes: Uint8Array, what: string, read: (r: SpsReader) => T): T {
  const r = new SpsReader(bytes, what);
  const v = read(r);
  r.end();
  return v;
}

/** Reads a payload that is still in the pieces it arrived in, front to back. */
class PiecesCursor {
  private index = 0;
  private offset = 0;
  private consumed = 0;
  readonly total: number;

  constructor(
    private readonly pieces: readonly Uint8Array[],
    private readonly what: string,
  ) {
    let n = 0;
    for (const p of pieces) n += p.length;
    this.total = n;
  }

  get remaining(): number {
    return this.total - this.consumed;
  }

  /** The next `n` bytes in one view: of the piece itself when they lie in one, else a copy (keep n small). */
  read(n: number, field: string): Uint8Array {
    this.need(n, field);
    const piece = this.pieces[this.index]!;
    if (piece.length - this.offset >= n) {
      const out = piece.subarray(this.offset, this.offset + n);
      this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const v of this.views(n, field)) {
      out.set(v, at);
      at += v.length;
    }
    return out;
  }

  /** The next `n` bytes as views of the pieces they lie in (no copy). */
  views(n: number, field: string): Uint8Array[] {
    this.need(n, field);
    const out: Uint8Array[] = [];
    let left = n;
    while (left > 0) {
      const piece = this.pieces[this.index]!;
      const take = Math.min(left, piece.length - this.offset);
      if (take > 0) out.push(piece.subarray(this.offset, this.offset + take));
      this.advance(take);
      left -= take;
    }
    return out;
  }

  /** A reader over the next `n` bytes, which lie in one view (see read). */
  reader(n: number, field: string): SpsReader {
    return new SpsReader(this.read(n, field), `${this.what} (${field} at byte offset ${this.consumed - n})`);
  }

  private advance(n: number): void {
    this.consumed += n;
    this.offset += n;
    while (
      this.index < this.pieces.length &&
      this.offset >= this.pieces[this.index]!.length &&
      this.consumed < this.total
    ) {
      this.offset -= this.pieces[this.index]!.length;
      this.index++;
    }
  }

  private need(n: number, field: string): void {
    if (n > this.remaining) {
      throw new JitmemError(
        'ERR_SPS_MALFORMED',
        `malformed ${this.what} at byte offset ${this.consumed}: ${field} needs ${n} bytes but only ${this.remaining} remain`,
        {
          offset: this.consumed,
          length: this.total,
          needed: n,
        },
      );
    }
  }
}

/**
 * Decodes (SPSExecutorAddr, SPSFinalizeRequest), the arguments of the memory manager's
 * initialize, from a payload still in its pieces: each segment's content comes back as views of
 * the pieces (contentPieces), so that it is copied once, into target memory; only the few bytes
 * around the contents are read from copies when they straddle two pieces.
 */
export function decodeFinalizeRequestPieces(
  pieces: readonly Uint8Array[],
  what: string,
): [number, WireFinalizeRequest] {
  const c = new PiecesCursor(pieces, what);
  const instance = c.reader(8, 'the instance address').addr();
  const count = c.reader(8, 'the segment count').u64('the segment count');
  if (count * 25 > c.remaining) {
    throw new JitmemError(
      'ERR_SPS_MALFORMED',
      `malformed ${what}: ${count} segments need at least ${count * 25} bytes but only ${c.remaining} remain`,
      { count },
    );
  }
  const segments: WireSegment[] = [];
  for (let i = 0; i < count; i++) {
    const r = c.reader(25, `segment ${i}`);
    const group = r.remoteAllocGroup();
    const addr = r.addr('a segment address');
    const size = r.u64('a segment size');
    const length = r.u64('a content size');
    segments.push({ group, addr, size, contentPieces: c.views(length, `the content of segment ${i}`) });
  }
  const tail = new SpsReader(c.read(c.remaining, 'the alloc actions'), `${what} (alloc actions)`);
  const actions = tail.sequence(32, (r) => r.allocActionCallPair());
  tail.end();
  return [instance, { segments, actions }];
}
