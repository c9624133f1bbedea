import { HEADER_SIZE } from '../protocol/frame.js';
import { Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import type { ExecutorSession } from '../session/executor-session.js';
import { expectAddr, expectSuccess } from '../session/executor-session.js';
import { checkPatchBatch, type CodePatch, type PatchOptions } from './code-patch.js';
import type { AllocInfo, ExecutorAddrRange } from './memory-mapper.js';
import { reserveInWindow } from './reserve-window.js';
import { MapperBase } from './mapper-base.js';
import { checkPatchTarget, sendDeinitialize, sortKeys, type Reservation } from './reservation-table.js';
import { PendingCalls } from './call-coalescer.js';
import { throwCollected } from '../core/errors.js';

/**
 * The executor service a remote mapper drives, by its symbols' prefix in Sym: LLVM's
 * SimpleExecutorMemoryManager or its shared-memory mapper service. Errors name the calls as
 * the service does (LLVM spells the two differently).
 */
const SERVICES = {
  memMgr: { initialize: 'initialize', deinitialize: 'deinitialize', release: 'release' },
  shm: { initialize: 'Initialize', deinitialize: 'Deinitialize', release: 'Release' },
} as const;

export type RemoteServiceName = keyof typeof SERVICES;

/**
 * The skeleton both remote mappers share: the executor keeps the memory, this side keeps the
 * reservation table. Initialize and release go to the service in one call each, deinitializes
 * issued together in one call; a subclass says how a reservation is made, what working memory
 * is, how a finalize request travels, how code is patched and what else a reservation holds on
 * this side.
 */
export abstract class RemoteMemoryMapper extends MapperBase {
  readonly pageSize: number;
  protected readonly instance: number;
  /** The executor address of the service's initialize call (a call by address skips the name lookup). */
  protected readonly initializeTag: number;

  private readonly calls: { readonly deinitialize: string; readonly release: string };
  /** What the service calls initialize, for its errors. */
  private readonly initializeName: string;
  protected readonly deinitializes = new PendingCalls<readonly number[]>(() => this.settleDeinitializes());
  /** The last deinitialize call sent, answered or not. */
  private deinitializing: Promise<void> = Promise.resolve();

  constructor(
    protected readonly session: ExecutorSession,
    private readonly service: RemoteServiceName,
  ) {
    super();
    this.pageSize = session.pageSize;
    for (const call of ['Reserve', 'Initialize', 'Deinitialize', 'Release'] as const)
      session.symbol(Sym[`${service}${call}`]);
    this.instance = session.symbol(Sym[`${service}Instance`]);
    this.initializeTag = session.symbol(Sym[`${service}Initialize`]);
    this.calls = { deinitialize: Sym[`${service}Deinitialize`], release: Sym[`${service}Release`] };
    this.initializeName = SERVICES[service].initialize;
  }

  /** reserve(), inside `window`, when the executor can place reservations (jitmem's can); else null. */
  reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange | null> {
    return reserveInWindow(this.session, window, () => this.reserve(bytes));
  }

  /**
   * Sends the finalize request for a checked region of `r`; resolves with the executor's answer
   * (an SPSExpected<addr>), which initialize decodes.
   */
  protected abstract sendInitialize(info: AllocInfo, r: Reservation, key: number, end: number): Promise<Uint8Array>;

  /**
   * Rewrites code of initialized regions in the executor: a batch whose every patch is already
   * checked, each with the reservation that holds it.
   */
  protected abstract patchRemote(
    patches: readonly CodePatch[],
    holders: readonly Reservation[],
    options: PatchOptions,
  ): Promise<void>;

  /**
   * The answer is decoded and the region recorded in one step after the call, not in an async
   * function per layer: a sequential finalize waits for each of those steps in turn.
   */
  initialize(info: AllocInfo): Promise<number> {
    let begun: { r: Reservation; key: number; end: number };
    try {
      begun = this.beginInitialize(info);
    } catch (err) {
      return Promise.reject(err);
    }
    const { r, key, end } = begun;
    // Refuses an overlapping initialize until this one is answered and recorded (or refused).
    r.initializing.set(key, { end });
    let sent: Promise<Uint8Array>;
    try {
      sent = this.sendInitialize(info, r, key, end);
    } catch (err) {
      r.initializing.delete(key);
      return Promise.reject(err);
    }
    const what = this.initializeName;
    return sent.then(
      (answer) => {
        r.initializing.delete(key);
        const recorded = expectAddr(answer, what);
        r.regions.set(recorded, { end });
        return recorded;
      },
      (err: unknown) => {
        r.initializing.delete(key);
        throw err;
      },
    );
  }

  async patchCode(patches: readonly CodePatch[], options: PatchOptions = {}): Promise<void> {
    this.checkOpen();
    checkPatchBatch(patches);
    // A deinitialize issued before the patch goes out before it.
    this.settleDeinitializes();
    const holders = patches.map((p) => {
      checkPatchTarget(this.table, p.address, p.bytes.length);
      return this.table.of(p.address, p.bytes.length, 'patchCode');
    });
    await this.patchRemote(patches, holders, options);
  }

  /**
   * Deinitializes issued together (the frees of a JIT's old versions, which come one
   * allocation at a time) travel in one call, as the service takes a list of keys: the keys of
   * the later calls first, so that the executor, which tears a list down from its end, runs
   * them in the order they were issued, each call's newest region first. A failure of that one
   * call is every one of its callers' failure; a key named twice is unknown the second time, as
   * it would be one call after another. Their promises settle when the call is answered.
   */
  protected settleDeinitializes(): void {
    if (this.deinitializes.length === 0) return;
    const batch = this.deinitializes.take();
    const claimed = new Set<number>();
    const sorted = batch.map((entry) => sortKeys(this.table, entry.call, claimed));
    const remote = sorted
      .map((s) => s.remote)
      .reverse()
      .flat();
    const finish = (error: unknown) =>
      batch.forEach((entry, i) => {
        const errors = sorted[i]!.errors;
        if (error !== null && sorted[i]!.remote.length > 0) errors.push(error);
        try {
          throwCollected(errors, 'deinitialize');
          entry.resolve();
        } catch (err) {
          entry.reject(err);
        }
      });
    if (remote.length === 0) {
      finish(null);
      return;
    }
    this.deinitializing = sendDeinitialize(this.table, remote, async (keys) => {
      expectSuccess(
        await this.session.call(
          this.calls.deinitialize,
          this.args().sequence(keys, (w, k) => w.addr(k)),
        ),
        SERVICES[this.service].deinitialize,
      );
    }).then(finish);
  }

  /** Sends whatever deinitialize is pending and waits until every one sent is answered. */
  protected async settle(): Promise<void> {
    this.settleDeinitializes();
    await this.deinitializing;
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    await this.settle();
    const found = bases.map((base) => this.reservationAt(base));
    // As LLVM: this side's hold on each reservation goes first, then the executor's.
    for (const r of found) this.forget(r);
    if (found.length > 0) await this.releaseRemote(found.map((r) => r.start));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Pending deinitializes go out (or fail with the session) before anything is released.
    await this.settle().catch(() => undefined);
    const bases = [...this.table.byStart.keys()];
    try {
      if (bases.length > 0 && this.session.isOpen) await this.release(bases);
    } finally {
      for (const r of [...this.table.byStart.values()]) this.forget(r);
      this.closed = true;
    }
  }

  /** Asks the executor to give reservations back. */
  protected async releaseRemote(starts: readonly number[]): Promise<void> {
    expectSuccess(
      await this.session.call(
        this.calls.release,
        this.args().sequence(starts, (w, s) => w.addr(s)),
      ),
      SERVICES[this.service].release,
    );
  }

  /** Drops this side's record of a reservation: its working memory, and whatever a subclass holds. */
  protected forget(r: Reservation): void {
    this.table.detachViews(r, r.start, r.end);
    this.table.byStart.delete(r.start);
  }

  /** A call's arguments, starting with the service instance, with room for the frame header in front. */
  protected args(): SpsWriter {
    return callArgs().addr(this.instance);
  }
}

/** Arguments of a call, with room for the frame header in front so the frame needs no copy. */
export function callArgs(capacity = 64): SpsWriter {
  return new SpsWriter(capacity, HEADER_SIZE);
}
