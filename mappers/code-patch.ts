import { JitmemError, hex } from '../core/errors.js';
import { checkAddress } from '../core/checks.js';

/**
 * Batched in-place code patching, part of the MemoryMapper contract (`patchCode`). A batch is
 * what a JIT rewrites at one time (the call sites of a tier-up, the breakpoints of a debugger
 * command, the inline caches of a deoptimization): every patch of a batch is checked before any
 * byte is written, and the transport pays its fixed cost (a write window, an I-cache flush, a
 * round trip) once per batch rather than once per patch.
 */

export interface CodePatch {
  /** Executor address of the first byte to overwrite; the patch lies inside one initialized segment. */
  readonly address: number;
  readonly bytes: Uint8Array;
}

export interface PatchOptions {
  /**
   * Whether a thread of the executor may be running the patched code while the batch goes in
   * (default true: assume it may). When the caller knows no code is running (it stopped the
   * threads, or runs code only through calls that begin after the patch resolves), a transport
   * whose writes reach the target's pages directly may skip the executor altogether on a
   * coherent-I-cache architecture (x86-64): the next call into the code crosses a context
   * switch, which serializes instruction fetch anyway.
   */
  readonly codeRunning?: boolean;
}

/** True where instruction fetch sees data writes without a flush (a serializing event suffices). */
export const COHERENT_ICACHE = process.arch === 'x64' || process.arch === 'ia32';

/** Checks the shape of a batch: a non-empty array of {address, non-empty bytes}. */
export function checkPatchBatch(patches: unknown): readonly CodePatch[] {
  if (!Array.isArray(patches) || patches.length === 0) {
    throw new JitmemError(
      'ERR_INVALID_PATCH',
      `patchCode takes a non-empty array of {address, bytes} patches; got ${Array.isArray(patches) ? 'an empty array' : typeof patches}`,
      {},
    );
  }
  for (const [i, p] of (patches as unknown[]).entries()) {
    if (typeof p !== 'object' || p === null) {
      throw new JitmemError(
        'ERR_INVALID_PATCH',
        `patchCode: patch ${i} must be an object {address, bytes}; got ${p === null ? 'null' : typeof p}`,
        { index: i },
      );
    }
    const { address, bytes } = p as { address?: unknown; bytes?: unknown };
    checkAddress(`patch ${i}: address`, address);
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
      throw new JitmemError(
        'ERR_INVALID_PATCH',
        `patchCode: patch ${i} at ${hex(address as number)} needs at least one byte to write`,
        { index: i, address },
      );
    }
  }
  return patches as readonly CodePatch[];
}

/** Total bytes of a batch (for sizing the one request that carries it). */
export function patchBytes(patches: readonly CodePatch[]): number {
  let n = 0;
  for (const p of patches) n += p.bytes.length;
  return n;
}

/** A page-rounded run of an initialized region with one protection, as the in-process mappers keep them. */
export interface PatchableSegment {
  readonly start: number;
  readonly length: number;
  readonly prot: number;
}

/**
 * The segment of `region` (the initialized region holding `address`, if one does) that holds all
 * of [address, address + size), or a typed error.
 */
export function segmentHolding<S extends PatchableSegment>(
  region: { readonly segments: readonly S[] } | undefined,
  address: number,
  size: number,
): S {
  const segment = region?.segments.find((s) => address >= s.start && address < s.start + s.length);
  if (segment) {
    if (address + size > segment.start + segment.length) {
      throw new JitmemError(
        'ERR_PATCH_OUT_OF_SEGMENT',
        `patchCode: [${hex(address)}, ${hex(address + size)}) runs past its segment [${hex(segment.start)}, ${hex(segment.start + segment.length)})`,
        { address, size },
      );
    }
    return segment;
  }
  throw new JitmemError('ERR_NOT_INITIALIZED', `patchCode: ${hex(address)} is not inside an initialized segment`, {
    address,
    size,
  });
}

/**
 * The patches of a batch grouped by the segment `find` says holds each (every patch is found
 * before the first group is returned).
 */
export function groupBySegment<S>(patches: readonly CodePatch[], find: (p: CodePatch) => S): Map<S, CodePatch[]> {
  const groups = new Map<S, CodePatch[]>();
  for (const p of patches) {
    const s = find(p);
    const g = groups.get(s);
    if (g) g.push(p);
    else groups.set(s, [p]);
  }
  return groups;
}
