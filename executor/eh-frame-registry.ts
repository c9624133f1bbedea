import * as native from '../native/index.js';
import { hex } from '../core/errors.js';
import { PROT_R, PROT_W, type AddressSpace } from './address-space.js';
import { parseEHFrame, type EHFrameParse } from './eh-frame.js';
import { RemoteError } from './remote-error.js';

/**
 * The EH frames this executor has handed to the process's unwinder. libgcc keeps only the
 * pointer and reads the records later, whenever anything in the process unwinds; so a frame is
 * parsed before it is registered (eh-frame.ts), must lie in a live segment no request can
 * write, and is taken back from the unwinder before its memory changes or goes: when its region
 * is deinitialized or released, or the session ends. libgcc aborts the process on a
 * deregistration it does not know; here that is a typed error.
 */

interface Registered {
  readonly start: number;
  /** End of the bytes the unwinder walks (the zero terminator included). */
  readonly end: number;
  /** A section that starts with its terminator: libgcc registers nothing for it. */
  readonly empty: boolean;
}

export class EHFrameRegistry {
  private readonly frames = new Map<number, Registered>();

  constructor(private readonly space: AddressSpace) {}

  get size(): number {
    return this.frames.size;
  }

  has(start: number): boolean {
    return this.frames.has(start);
  }

  /** Everything register checks, without registering: throws ERR_INVALID_EH_FRAME or ERR_EH_FRAME_ALREADY_REGISTERED. */
  check(start: number, end: number, what: string): EHFrameParse {
    if (end < start) throw new RemoteError('ERR_INVALID_EH_FRAME', `${what}: EH-frame range [${hex(start)}, ${hex(end)}) ends before it starts`);
    if (this.frames.has(start)) {
      throw new RemoteError('ERR_EH_FRAME_ALREADY_REGISTERED', `${what}: the EH frame at ${hex(start)} is already registered; deregister it first`);
    }
    const bytes = this.read(start, end, what);
    return parseEHFrame(bytes, start, end - start, (lo, hi) => this.owns(lo, hi), what);
  }

  /** Parses the section [start, end) and registers it with the unwinder. */
  register(start: number, end: number, what: string): void {
    const parsed = this.check(start, end, what);
    const empty = parsed.walkedBytes === 4;
    if (!empty) {
      try {
        native.registerFrame(start);
      } catch (err) {
        throw new RemoteError('ERR_EH_FRAME_UNSUPPORTED', `${what}: ${(err as Error).message}`);
      }
    }
    this.frames.set(start, { start, end: start + parsed.walkedBytes, empty });
  }

  /** Takes a registered frame back; one never registered is a typed error, not libgcc's abort. */
  deregister(start: number, end: number, what: string): void {
    const f = this.frames.get(start);
    if (!f) {
      throw new RemoteError('ERR_EH_FRAME_NOT_REGISTERED', `${what}: no EH frame is registered at ${hex(start)} (range [${hex(start)}, ${hex(end)})); deregistering it would abort the process`);
    }
    this.take(f);
  }

  /** True when some registered frame's bytes overlap [lo, hi). */
  overlaps(lo: number, hi: number): boolean {
    for (const f of this.frames.values()) if (f.start < hi && lo < f.end) return true;
    return false;
  }

  /** Deregisters every frame whose bytes overlap [lo, hi) (memory about to change or go); returns how many. */
  releaseWithin(lo: number, hi: number): number {
    let n = 0;
    for (const f of [...this.frames.values()]) {
      if (f.start < hi && lo < f.end) {
        this.take(f);
        n++;
      }
    }
    return n;
  }

  releaseAll(): void {
    for (const f of [...this.frames.values()]) this.take(f);
  }

  private take(f: Registered): void {
    this.frames.delete(f.start);
    if (f.empty) return;
    try {
      native.deregisterFrame(f.start);
    } catch {
      // Only fails when the process has no unwinder, in which case nothing was registered.
    }
  }

  /** [lo, hi) lies in memory of this executor (FDEs describe JIT'd code, nothing else). */
  private owns(lo: number, hi: number): boolean {
    const r = this.space.containing(lo);
    return r !== undefined && hi <= r.base + r.size;
  }

  /**
   * The section's bytes, and the 4 after it when readable (the terminator may sit right after
   * the section, where JITLink puts it). The section must be readable and not writable: the
   * unwinder reads it long after this check.
   */
  private read(start: number, end: number, what: string): Uint8Array {
    this.space.requireAccess(start, end - start, PROT_R, `${what}: EH-frame section`);
    const total = end - start + 4;
    let n = end - start;
    try {
      this.space.requireAccess(start, total, PROT_R, `${what}: EH-frame terminator`);
      n = total;
    } catch {
      // The terminator must then be inside the section; the parse says so if it is not.
    }
    if (n > 0) this.requireNotWritable(start, n, what);
    const out = new Uint8Array(n);
    if (n > 0) native.copyOut(start, out);
    return out;
  }

  private requireNotWritable(start: number, n: number, what: string): void {
    const page = this.space.pageSize;
    for (let p = start - (start % page); p < start + n; p += page) {
      let writable = true;
      try {
        this.space.requireAccess(p, 1, PROT_W, what);
      } catch {
        writable = false;
      }
      if (writable) {
        throw new RemoteError(
          'ERR_INVALID_EH_FRAME',
          `${what}: the EH-frame section [${hex(start)}, ${hex(start + n)}) lies in writable memory (the page at ${hex(p)}); the unwinder reads it lazily, so it must be in a read-only segment`,
        );
      }
    }
  }
}
