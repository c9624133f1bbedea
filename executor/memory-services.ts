import * as native from '../native/index.js';
import { hasCode, hex } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import type { WireFinalizeRequest } from '../protocol/sps.js';
import type { ExecutorActionSite } from './actions.js';
import { AddressSpace, PROT_R, PROT_W, type Reservation } from './address-space.js';
import { deinitializeRegion, initializeRegion } from './regions.js';
import { RemoteError } from './remote-error.js';

/**
 * LLVM 22's SimpleExecutorMemoryManager (spec §5.1): anonymous RW slabs; initialize copies
 * content in. Differences on purpose: every range is checked before a byte is written, and
 * deinitialize forgets the region and puts its pages back to RW so the range can be reused.
 */
export class MemoryManagerService {
  constructor(
    private readonly space: AddressSpace,
    private readonly actions: ExecutorActionSite,
  ) {}

  reserve(size: number): number {
    if (size === 0) return 0;
    checkReservationSize(size);
    const length = alignUp(size, this.space.pageSize);
    const w = this.space.reserveWindow;
    const base = w ? native.reserveWithin(length, PROT_R | PROT_W, w.start, w.end) : native.reserve(length, PROT_R | PROT_W);
    this.space.add('anonymous', base, size, PROT_R | PROT_W);
    return base;
  }

  initialize(fr: WireFinalizeRequest): number {
    for (const s of fr.segments) {
      const r = this.space.containing(s.addr);
      if (r && r.kind !== 'anonymous') {
        throw new RemoteError('ERR_WRONG_SERVICE', `segment at ${hex(s.addr)} lies in a shared-memory reservation; initialize it through the shared-memory mapper service`);
      }
    }
    return initializeRegion(this.space, this.actions, fr, { copyContent: true }).start;
  }

  deinitialize(keys: readonly number[]): void {
    requireDistinct(keys, 'deinitialize', 'key');
    const found: Array<[Reservation, number]> = [];
    for (const key of keys) {
      const r = this.space.containing(key);
      if (!r || r.kind !== 'anonymous') {
        throw new RemoteError('ERR_UNKNOWN_KEY', `in deinitialize, address ${hex(key)} is not part of any reserved address range`);
      }
      if (!r.regions.has(key)) {
        throw new RemoteError('ERR_UNKNOWN_KEY', `in deinitialize, address ${hex(key)} does not correspond to the start of any initialized region`);
      }
      found.push([r, key]);
    }
    let failure: string | null = null;
    for (let i = found.length - 1; i >= 0; i--) {
      const [r, key] = found[i]!;
      const region = r.regions.get(key);
      if (region) failure = firstOf(failure, deinitializeRegion(this.actions, r, region));
    }
    if (failure !== null) throw new RemoteError('ERR_ALLOC_ACTION_FAILED', failure);
  }

  release(bases: readonly number[]): void {
    requireDistinct(bases, 'release', 'base');
    const found: Reservation[] = [];
    for (const base of bases) {
      const r = this.space.byBase(base);
      if (!r || r.kind !== 'anonymous') throw new RemoteError('ERR_UNKNOWN_RESERVATION', `in release, ${hex(base)} is not part of any reserved address range`);
      found.push(r);
    }
    let failure: string | null = null;
    for (let i = found.length - 1; i >= 0; i--) failure = firstOf(failure, releaseReservation(this.space, this.actions, found[i]!));
    if (failure !== null) throw new RemoteError('ERR_ALLOC_ACTION_FAILED', failure);
  }
}

/**
 * LLVM 22's ExecutorSharedMemoryMapperService (spec §5.2): each reservation is a POSIX shm
 * object mapped PROT_NONE here; the controller maps it too and writes content through its own
 * view, so initialize only changes protections and runs actions. Names are unlinked as soon as
 * the controller must have opened them (initialize) and, at the latest, when the session ends,
 * so no object outlives its session.
 */
export class SharedMemoryService {
  private counter = 0;

  constructor(
    private readonly space: AddressSpace,
    private readonly actions: ExecutorActionSite,
    /** A fresh name for the counter-th reservation (protocol/shm-names.ts). */
    private readonly nameFor: (counter: number) => string,
  ) {}

  reserve(size: number): { base: number; name: string } {
    if (size === 0) throw new RemoteError('ERR_INVALID_SIZE', 'Reserve of 0 bytes: a shared-memory reservation needs at least one byte');
    checkReservationSize(size);
    const { name, fd } = this.create(size);
    let base: number;
    try {
      const length = alignUp(size, this.space.pageSize);
      const w = this.space.reserveWindow;
      base = w ? native.mapSharedWithin(fd, length, 0, w.start, w.end) : native.mapShared(fd, length, 0);
    } catch (err) {
      tryUnlink(name);
      throw err;
    } finally {
      native.closeFd(fd);
    }
    this.space.add('shared', base, size, 0, name);
    return { base, name };
  }

  /**
   * shm_open(O_CREAT|O_EXCL) under a fresh name. Names have a random part, so EEXIST means
   * someone made that very name first (by guess or by chance): take another.
   */
  private create(size: number): { name: string; fd: number } {
    const attempts = 8;
    for (let i = 1; ; i++) {
      const name = this.nameFor(++this.counter);
      try {
        return { name, fd: native.shmCreate(name, size) };
      } catch (err) {
        if (hasCode(err, 'EEXIST') && i < attempts) continue;
        throw new RemoteError('ERR_SHM_CREATE_FAILED', `Reserve of ${size} bytes: cannot create a shared-memory object (${attempts} names tried, the last ${JSON.stringify(name)}): ${(err as Error).message}`);
      }
    }
  }

  initialize(reservationBase: number, fr: WireFinalizeRequest): number {
    const r = this.space.byBase(reservationBase);
    if (!r || r.kind !== 'shared') {
      throw new RemoteError('ERR_UNKNOWN_RESERVATION', `in initialize, ${hex(reservationBase)} is not the base of any shared-memory reservation`);
    }
    const key = initializeRegion(this.space, this.actions, fr, { copyContent: false, reservation: r }).start;
    unlinkName(r);
    return key;
  }

  /** Unknown keys are not an error, as in LLVM 22 (an abandoned allocation was never initialized). */
  deinitialize(keys: readonly number[]): void {
    let failure: string | null = null;
    for (let i = keys.length - 1; i >= 0; i--) {
      const r = this.space.containing(keys[i]!);
      const region = r?.kind === 'shared' ? r.regions.get(keys[i]!) : undefined;
      if (r && region) failure = firstOf(failure, deinitializeRegion(this.actions, r, region));
    }
    if (failure !== null) throw new RemoteError('ERR_ALLOC_ACTION_FAILED', failure);
  }

  release(bases: readonly number[]): void {
    requireDistinct(bases, 'Release', 'base');
    const found: Reservation[] = [];
    for (const base of bases) {
      const r = this.space.byBase(base);
      if (!r || r.kind !== 'shared') throw new RemoteError('ERR_UNKNOWN_RESERVATION', `in release, ${hex(base)} is not the base of any shared-memory reservation`);
      found.push(r);
    }
    let failure: string | null = null;
    for (let i = found.length - 1; i >= 0; i--) failure = firstOf(failure, releaseReservation(this.space, this.actions, found[i]!));
    if (failure !== null) throw new RemoteError('ERR_ALLOC_ACTION_FAILED', failure);
  }
}

/** Far above any slab a JIT uses (llvm-jitlink: 1 GiB), far below what would exhaust the address space. */
export const MAX_RESERVATION = 2 ** 40;

function checkReservationSize(size: number): void {
  if (size > MAX_RESERVATION) {
    throw new RemoteError('ERR_INVALID_SIZE', `reserve of ${size} bytes (${hex(size)}) is above this executor's limit of ${MAX_RESERVATION} bytes (1 TiB)`);
  }
}

/** Deinitializes what is left (newest first), unmaps, unlinks; returns the first failure. */
export function releaseReservation(space: AddressSpace, actions: ExecutorActionSite, r: Reservation): string | null {
  let failure: string | null = null;
  const regions = [...r.regions.values()];
  for (let i = regions.length - 1; i >= 0; i--) failure = firstOf(failure, deinitializeRegion(actions, r, regions[i]!));
  actions.frames.releaseWithin(r.base, r.base + r.mappedSize);
  space.remove(r);
  try {
    native.unmap(r.base, r.mappedSize);
  } catch (err) {
    failure ??= `munmap of ${hex(r.base)} failed: ${(err as Error).message}`;
  }
  unlinkName(r);
  return failure;
}

export function unlinkName(r: Reservation): void {
  if (r.shmName === null) return;
  tryUnlink(r.shmName);
  r.shmName = null;
}

function tryUnlink(name: string): void {
  try {
    native.shmUnlink(name);
  } catch {
    // ENOENT: the controller already unlinked it, which is what it is meant to do.
  }
}

/** A request that names one key twice is refused as a whole: the second would find nothing, or something else. */
function requireDistinct(values: readonly number[], op: string, what: string): void {
  if (new Set(values).size === values.length) return;
  const dup = values.find((v, i) => values.indexOf(v) !== i)!;
  throw new RemoteError('ERR_DUPLICATE_KEY', `${op} names the ${what} ${hex(dup)} more than once`);
}

/**
 * The first of two failures. Callers compute `next` before calling, so every teardown step runs
 * whatever failed before it (`failure ??= step()` would skip the step once a failure is
 * recorded, leaving regions live and reservations mapped).
 */
function firstOf(first: string | null, next: string | null): string | null {
  return first ?? next;
}
