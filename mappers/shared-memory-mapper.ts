import * as native from '../native/index.js';
import { JitmemError, hex } from '../core/errors.js';
import { checkAddress, checkSize } from '../core/checks.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { remoteError } from '../protocol/remote-error.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { allocGroupId } from '../graph/alloc-group.js';
import { checkAllocInfo, checkPatch, checkReserveSize } from './alloc-info.js';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from './memory-mapper.js';
import { ExecutorSession, decodeResult, expectAddr, expectSuccess } from '../session/executor-session.js';
import { toWireActions } from './rpc-copy-mapper.js';
import { ReservationTable, checkPatchTarget, deinitializeKeys } from './reservation-table.js';
import { reserveInWindow } from './reserve-window.js';

/**
 * LLVM's SharedMemoryMapper. The executor creates a POSIX shm object per reservation and maps
 * it; we open it, unlink the name at once (so it cannot outlive the two mappings), and map it
 * here too. Working memory is a zero-copy view of our mapping of the very pages the executor
 * will run, so initialize only sends segment addresses, sizes and protections.
 */

export class SharedMemoryMapper implements MemoryMapper {
  readonly pageSize: number;
  private readonly table = new ReservationTable();
  /** Our mapping of each reservation, by executor start address. */
  private readonly local = new Map<number, { address: number; size: number }>();
  private readonly instance: number;
  private closed = false;

  constructor(private readonly session: ExecutorSession) {
    this.pageSize = session.pageSize;
    for (const name of [Sym.shmReserve, Sym.shmInitialize, Sym.shmDeinitialize, Sym.shmRelease]) session.symbol(name);
    this.instance = session.symbol(Sym.shmInstance);
  }

  async reserve(bytes: number): Promise<ExecutorAddrRange> {
    this.checkOpen();
    checkReserveSize(bytes, this.pageSize);
    const out = await this.session.call(Sym.shmReserve, args().addr(this.instance).u64(bytes));
    const result = decodeResult(out, 'Reserve', (r) => r.expected((r) => ({ start: r.addr(), name: r.string() })));
    if (!result.ok) throw remoteError('Reserve', result.error);
    const { start, name } = result.value;
    let fd: number;
    try {
      fd = native.shmOpen(name);
    } catch (err) {
      // The executor's half must not be left behind: give the reservation back before failing.
      await this.session.call(Sym.shmRelease, args().addr(this.instance).sequence([start], (w, b) => w.addr(b))).catch(() => undefined);
      const code = (err as { code?: string }).code ?? 'unknown error';
      throw new JitmemError(
        'ERR_SHM_UNREACHABLE',
        `reserve: the executor's shared-memory object ${JSON.stringify(name)} cannot be opened here (${code}): the executor is probably on another machine ` +
          `or in another IPC namespace, and shared memory needs both processes on one host. Use the RPC-copy mapper (RpcCopyMapper) instead.`,
        { name, errno: code },
        { cause: err },
      );
    }
    let address: number;
    try {
      // Unlinked as soon as it is open: from here on the object lives exactly as long as the two mappings.
      try {
        native.shmUnlink(name);
      } catch {
        // The executor may already have unlinked it; the mapping is what matters.
      }
      const size = native.fdSize(fd);
      if (size < bytes) {
        throw new JitmemError('ERR_SHM_TOO_SMALL', `reserve: the executor's shared-memory object ${JSON.stringify(name)} has ${size} bytes; expected at least ${bytes}`, { name, size, bytes });
      }
      address = native.mapShared(fd, bytes, native.PROT_RW);
    } catch (err) {
      await this.session.call(Sym.shmRelease, args().addr(this.instance).sequence([start], (w, b) => w.addr(b))).catch(() => undefined);
      throw err;
    } finally {
      native.closeFd(fd);
    }
    this.table.add(start, bytes);
    this.local.set(start, { address, size: bytes });
    return { start, end: start + bytes };
  }

  /** reserve(), inside `window`, when the executor can place reservations (jitmem's can); else null. */
  reserveWithin(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange | null> {
    return reserveInWindow(this.session, window, () => this.reserve(bytes));
  }

  prepare(addr: number, size: number): Uint8Array {
    this.checkOpen();
    checkAddress('addr', addr);
    checkSize('size', size);
    const r = this.table.of(addr, size, 'prepare');
    this.table.checkPrepare(r, addr, size);
    const v = native.view(this.localAddress(r.start, addr), size);
    this.table.addView(r, addr, v);
    return v;
  }

  async initialize(info: AllocInfo): Promise<number> {
    this.checkOpen();
    const { key, end } = checkAllocInfo(info, this.pageSize);
    const r = this.table.of(key, end - key, 'initialize');
    this.table.checkInitialize(r, key, end);
    this.table.detachViews(r, key, end);
    const segments = info.segments.map((seg) => {
      const addr = info.mappingBase + seg.offset;
      if (seg.zeroFillSize > 0) native.fill(this.localAddress(r.start, addr) + seg.contentSize, seg.zeroFillSize, 0);
      return { group: allocGroupId(seg.group), addr, size: seg.contentSize + seg.zeroFillSize };
    });
    const w = args().addr(this.instance).addr(r.start).sharedMemoryFinalizeRequest({ segments, actions: toWireActions(info.actions) });
    const result = expectAddr(await this.session.call(Sym.shmInitialize, w), 'Initialize');
    r.regions.set(result, { end });
    return result;
  }

  /**
   * Rewrites code in an initialized segment in place. Our mapping of the shared pages is
   * writable whatever the executor's protection, so the bytes go straight in; the executor only
   * flushes its I-cache before it answers (x86 keeps it coherent, and LLVM's executor has no
   * flush service, so there the call is skipped).
   */
  async patchCode(address: number, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    checkPatch(address, bytes);
    checkPatchTarget(this.table, address, bytes.length);
    const r = this.table.of(address, bytes.length, 'patchCode');
    const flush = this.session.hasSymbol(JitmemSym.flushICache);
    if (!flush && process.arch !== 'x64' && process.arch !== 'ia32') {
      throw new JitmemError('ERR_UNSUPPORTED_BY_EXECUTOR', `patchCode on ${process.arch} needs an executor that provides ${JitmemSym.flushICache} (a jitmem executor)`, {});
    }
    native.copyIn(this.localAddress(r.start, address), bytes);
    if (flush) {
      expectSuccess(await this.session.call(JitmemSym.flushICache, args().addrRange({ start: address, end: address + bytes.length })), 'patchCode');
    }
  }

  async deinitialize(keys: readonly number[]): Promise<void> {
    this.checkOpen();
    await deinitializeKeys(this.table, keys, async (remote) => {
      expectSuccess(await this.session.call(Sym.shmDeinitialize, args().addr(this.instance).sequence(remote, (w, k) => w.addr(k))), 'Deinitialize');
    });
  }

  async release(bases: readonly number[]): Promise<void> {
    this.checkOpen();
    const found = bases.map((base) => {
      checkAddress('base', base);
      const r = this.table.byStart.get(base);
      if (!r) throw new JitmemError('ERR_UNKNOWN_RESERVATION', `release: ${hex(base)} is not the start of a reservation`, { base });
      return r;
    });
    // As LLVM: our mapping goes first, then the executor's.
    for (const r of found) this.unmapLocal(r.start);
    if (found.length > 0) {
      expectSuccess(await this.session.call(Sym.shmRelease, args().addr(this.instance).sequence(found, (w, r) => w.addr(r.start))), 'Release');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const bases = [...this.table.byStart.keys()];
    try {
      if (bases.length > 0 && this.session.isOpen) await this.release(bases);
    } finally {
      for (const start of [...this.table.byStart.keys()]) this.unmapLocal(start);
      this.closed = true;
    }
  }

  private unmapLocal(start: number): void {
    const r = this.table.byStart.get(start);
    if (r) this.table.detachViews(r, r.start, r.end);
    this.table.byStart.delete(start);
    const m = this.local.get(start);
    if (m) {
      this.local.delete(start);
      native.unmap(m.address, m.size);
    }
  }

  private localAddress(reservationStart: number, addr: number): number {
    return this.local.get(reservationStart)!.address + (addr - reservationStart);
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MAPPER_CLOSED', 'this SharedMemoryMapper is closed', {});
  }
}

function args(): SpsWriter {
  return new SpsWriter(64, HEADER_SIZE);
}
