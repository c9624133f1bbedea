import { JitmemError } from '../core/errors.js';

/**
 * Memory protections and allocation groups, with LLVM's encoding: R=1, W=2, X=4, and an
 * AllocGroup id of `prot | lifetime << 3` (finalize lifetime sets bit 3). Segments are laid out
 * in ascending id order, which puts R--, RW-, R-X first and finalize-lifetime groups last.
 */

export type Lifetime = 'standard' | 'finalize';

export interface AllocGroup {
  readonly prot: number;
  readonly lifetime: Lifetime;
}

export const R = 1;
export const W = 2;
export const X = 4;
/** Every protection bit: a protection is a mask within it. */
export const PROT_MASK = R | W | X;
/** The bit an AllocGroup id sets for the finalize lifetime (LLVM's `lifetime << 3`). */
const FINALIZE_BIT = 8;
/** The largest AllocGroup id. */
const MAX_ALLOC_GROUP_ID = PROT_MASK | FINALIZE_BIT;

export function allocGroup(prot: number, lifetime: Lifetime = 'standard'): AllocGroup {
  if (!Number.isInteger(prot) || prot < 0 || prot > PROT_MASK) {
    throw new JitmemError('ERR_INVALID_PROTECTION', `an AllocGroup's protection must be a mask of R=1, W=2, X=4 (0..7); got ${String(prot)}`, { prot });
  }
  if (lifetime !== 'standard' && lifetime !== 'finalize') {
    throw new JitmemError('ERR_INVALID_LIFETIME', `an AllocGroup's lifetime must be "standard" or "finalize"; got ${JSON.stringify(lifetime)}`, { lifetime });
  }
  return { prot, lifetime };
}

/** LLVM's numeric id: prot | lifetime << 3. It is also the wire form (SPSRemoteAllocGroup). */
export function allocGroupId(group: AllocGroup): number {
  return group.prot | (group.lifetime === 'finalize' ? FINALIZE_BIT : 0);
}

export function allocGroupFromId(id: number): AllocGroup {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ALLOC_GROUP_ID) {
    throw new JitmemError('ERR_INVALID_ALLOC_GROUP', `an AllocGroup id must be 0..15 (prot | finalize << 3); got ${String(id)}`, { id });
  }
  return { prot: id & PROT_MASK, lifetime: id & FINALIZE_BIT ? 'finalize' : 'standard' };
}

/** "r-x", "rw-", "r--", with "+finalize" for finalize-lifetime groups. */
export function protName(prot: number): string {
  return (prot & R ? 'r' : '-') + (prot & W ? 'w' : '-') + (prot & X ? 'x' : '-');
}

export function allocGroupName(group: AllocGroup): string {
  return protName(group.prot) + (group.lifetime === 'finalize' ? '+finalize' : '');
}
