import * as native from '../native/index.js';
import { JitmemError } from '../core/errors.js';
import { remoteError } from '../protocol/remote-error.js';
import { checkExecutorShmName } from '../protocol/shm-names.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { toWireActions, type AllocActionCallPair } from '../protocol/alloc-actions.js';
import { sharedMemoryFinalizeRequestSize, type WireSegment } from '../protocol/sps.js';
import { allocGroupId } from '../graph/alloc-group.js';
import type { AllocInfo } from './memory-mapper.js';
import { COHERENT_ICACHE, type CodePatch, type PatchOptions } from './code-patch.js';
import { ExecutorSession, decodeResult, expectSuccess } from '../session/executor-session.js';
import type { Reservation } from './reservation-table.js';
import { RemoteMemoryMapper, callArgs } from './remote-memory-mapper.js';

/**
 * LLVM's SharedMemoryMapper. The executor creates a POSIX shm object per reservation and maps
 * it; we open it, unlink the name at once (so it cannot outlive the two mappings), and map it
 * here too. Working memory is a zero-copy view of our mapping of the very pages the executor
 * will run, so initialize only sends segment addresses, sizes and protections.
 */
export class SharedMemoryMapper extends RemoteMemoryMapper {
  /** Our mapping of each reservation, by executor start address. */
  private readonly local = new Map<number, { address: number; size: number }>();

  constructor(session: ExecutorSession) {
    super(session, 'shm');
  }

  protected async reserveRange(bytes: number): Promise<number> {
    const out = await this.session.call(Sym.shmReserve, this.args().u64(bytes));
    const result = decodeResult(out, 'Reserve', (r) => r.expected((r) => ({ start: r.addr(), name: r.string() })));
    if (!result.ok) throw remoteError('Reserve', result.error);
    const { start, name } = result.value;
    // The name is opened and then unlinked here: only a name of the form the executor makes
    // (with its pid, when we started it) may be, or the far end could have us delete any
    // shm object of this user.
    try {
      checkExecutorShmName(name, {
        kind: this.session.isJitmem ? 'jitmem' : 'llvm',
        ...(this.session.pid !== undefined ? { pid: this.session.pid } : {}),
      });
    } catch (err) {
      await this.releaseRemote([start]).catch(() => undefined);
      throw err;
    }
    let fd: number;
    try {
      fd = native.shmOpen(name);
    } catch (err) {
      // The executor's half must not be left behind: give the reservation back before failing.
      await this.releaseRemote([start]).catch(() => undefined);
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
        throw new JitmemError(
          'ERR_SHM_TOO_SMALL',
          `reserve: the executor's shared-memory object ${JSON.stringify(name)} has ${size} bytes; expected at least ${bytes}`,
          { name, size, bytes },
        );
      }
      address = native.mapShared(fd, bytes, native.PROT_RW);
    } catch (err) {
      await this.releaseRemote([start]).catch(() => undefined);
      throw err;
    } finally {
      native.closeFd(fd);
    }
    this.local.set(start, { address, size: bytes });
    return start;
  }

  protected workingMemory(r: Reservation, addr: number, size: number): Uint8Array {
    return native.view(this.localAddress(r.start, addr), size);
  }

  protected override localWorkingAddress(r: Reservation, addr: number): number {
    return this.localAddress(r.start, addr);
  }

  protected sendInitialize(info: AllocInfo, r: Reservation, key: number, end: number): Promise<Uint8Array> {
    const local = this.local.get(r.start)!.address - r.start;
    const base = info.mappingBase;
    const segments: WireSegment[] = [];
    for (const seg of info.segments) {
      const addr = base + seg.offset;
      if (seg.zeroFillSize > 0) native.fill(local + addr + seg.contentSize, seg.zeroFillSize, 0);
      segments.push({ group: allocGroupId(seg.group), addr, size: seg.contentSize + seg.zeroFillSize });
    }
    const actions = info.actions.length === 0 ? NO_ACTIONS : toWireActions(info.actions);
    // Sized to fit (instance, reservation and the request), so the request is encoded where the
    // writer starts (a small one in the writers' shared pool) and never copied to a larger buffer.
    const w = callArgs(16 + sharedMemoryFinalizeRequestSize(segments.length, actions))
      .addr(this.instance)
      .addr(r.start)
      .sharedMemoryFinalizeRequest({ segments, actions });
    try {
      return this.session.callAddress(this.initializeTag, w);
    } finally {
      // After the request is on its way (while the executor works on it), and before the caller
      // runs again: nothing can write through a view in between.
      this.table.detachViews(r, key, end);
    }
  }

  /**
   * Rewrites code in place through our mapping of the shared pages, which is writable whatever
   * the executor's protection: every byte of the batch goes straight in, and then at most one
   * call makes the executor fetch them (a code barrier: I-cache flush per range and a serialized
   * instruction stream in every thread). Where the I-cache is coherent (x86-64) and the caller
   * says no code is running, no call is needed at all: the next call into the code crosses a
   * context switch. LLVM's executor has no barrier service; on x86-64 its threads see the bytes
   * at their next context switch, elsewhere patching needs a jitmem executor.
   */
  protected async patchRemote(
    patches: readonly CodePatch[],
    holders: readonly Reservation[],
    options: PatchOptions,
  ): Promise<void> {
    const barrier = this.session.hasSymbol(JitmemSym.codeBarrier);
    if (!barrier && !COHERENT_ICACHE) {
      throw new JitmemError(
        'ERR_UNSUPPORTED_BY_EXECUTOR',
        `patchCode on ${process.arch} needs an executor that provides ${JitmemSym.codeBarrier} (a jitmem executor)`,
        {},
      );
    }
    patches.forEach((p, i) => native.copyIn(this.localAddress(holders[i]!.start, p.address), p.bytes));
    if (!barrier || (COHERENT_ICACHE && options.codeRunning === false)) return;
    const w = callArgs(16 + patches.length * 16).sequence(patches, (w, p) =>
      w.addrRange({ start: p.address, end: p.address + p.bytes.length }),
    );
    expectSuccess(await this.session.call(JitmemSym.codeBarrier, w), 'patchCode');
  }

  /** Our mapping goes with the record. */
  protected override forget(r: Reservation): void {
    super.forget(r);
    const m = this.local.get(r.start);
    if (m) {
      this.local.delete(r.start);
      native.unmap(m.address, m.size);
    }
  }

  private localAddress(reservationStart: number, addr: number): number {
    return this.local.get(reservationStart)!.address + (addr - reservationStart);
  }
}

/** The actions of a graph that has none, as the wire takes them (never written to). */
const NO_ACTIONS: AllocActionCallPair[] = [];
