import { randomBytes } from 'node:crypto';
import { JitmemError } from '../core/errors.js';

/**
 * Names of the POSIX shared-memory objects an executor creates for the shared-memory mapper,
 * and the controller's check of a name that comes back from Reserve. The controller opens and
 * unlinks that name: taken on trust, a name would let whatever sits at the other end of the
 * wire make the controller delete any shm object its user owns.
 *
 * - jitmem's executor: "/jitmem_<pid>_<counter>_<16 hex digits>". The random part keeps a name
 *   from being guessed (and pre-created by another user to make Reserve fail).
 * - LLVM 22's executor: "/jitlink_<pid>_<counter>" (docs/wire-protocol.md §5.2), which a controller
 *   must also accept to drive llvm-jitlink-executor.
 */

export const JITMEM_SHM_PREFIX = '/jitmem_';
const RANDOM_HEX_DIGITS = 16;

const JITMEM_NAME = /^\/jitmem_([1-9][0-9]{0,9})_([1-9][0-9]{0,15})_([0-9a-f]{16})$/;
const LLVM_NAME = /^\/jitlink_([1-9][0-9]{0,9})_([0-9]{1,16})$/;

/** A fresh name for this executor's `counter`-th reservation. */
export function executorShmName(pid: number, counter: number, prefix = JITMEM_SHM_PREFIX): string {
  return `${prefix}${pid}_${counter}_${randomBytes(RANDOM_HEX_DIGITS / 2).toString('hex')}`;
}

export interface ShmNameExpectation {
  /** The executor's pid, when the controller knows it (it spawned the executor). */
  readonly pid?: number;
  /** Which executor speaks: jitmem's names, LLVM's, or either (a peer that connected). */
  readonly kind?: 'jitmem' | 'llvm' | 'any';
}

/**
 * Throws ERR_SHM_NAME_REFUSED unless `name` has the form the executor makes (see above), with
 * the executor's pid when it is known. Nothing is opened or unlinked before this passes.
 */
export function checkExecutorShmName(name: string, expect: ShmNameExpectation = {}): void {
  const kind = expect.kind ?? 'any';
  const m = (kind !== 'llvm' ? JITMEM_NAME.exec(name) : null) ?? (kind !== 'jitmem' ? LLVM_NAME.exec(name) : null);
  const forms =
    kind === 'jitmem'
      ? '"/jitmem_<pid>_<counter>_<16 hex digits>"'
      : kind === 'llvm'
        ? '"/jitlink_<pid>_<counter>"'
        : '"/jitmem_<pid>_<counter>_<16 hex digits>" or "/jitlink_<pid>_<counter>"';
  if (!m) {
    throw new JitmemError(
      'ERR_SHM_NAME_REFUSED',
      `the executor answered Reserve with the shared-memory name ${JSON.stringify(name)}, which is not of the form ${forms}; it is neither opened nor unlinked`,
      { name },
    );
  }
  if (expect.pid !== undefined && Number(m[1]) !== expect.pid) {
    throw new JitmemError(
      'ERR_SHM_NAME_REFUSED',
      `the executor (pid ${expect.pid}) answered Reserve with the shared-memory name ${JSON.stringify(name)}, which names pid ${m[1]}; it is neither opened nor unlinked`,
      { name, pid: expect.pid },
    );
  }
}
