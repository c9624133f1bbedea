import test from 'ava';
import { createHash } from 'node:crypto';
import { alignUp } from '../core/checks.js';
import { PROT_MASK, R, W, X } from '../graph/alloc-group.js';
import * as native from '../native/index.js';
import { ExecutorSession } from '../session/executor-session.js';
import { JitmemSym, Sym } from '../protocol/setup.js';
import { SpsReader, SpsWriter } from '../protocol/sps.js';
import { seededRandom } from '../harness/statistics.js';
import { ehFrameSection } from './helpers/eh-frames.js';
import { processExists, shmObjects } from './helpers/executor-process.js';

/**
 * Structured fuzzing of one executor session, beside the frame fuzzer (executor-fuzz): every
 * request is well-formed SPS, so it reaches the services, but its contents are chosen to hurt:
 * zero-size, overlapping, unaligned, out-of-range and reordered segments; segments at the base
 * of live regions; alloc actions of every kind with arguments inside, beside and far from the
 * request's memory; EH frames registered, deregistered, never registered, malformed, or left
 * registered when their memory goes away; deinitialize and release of keys live, stale and
 * invented. After every refusal the fuzzer checks that the live regions' bytes are as they
 * were, that their code still runs, and that a write into live code is still refused; and now
 * and then it makes the executor unwind a stack (the unwinder reads every registered frame).
 * 0 crashes, 0 hangs, 0 leaks.
 *
 * JITMEM_FUZZ_REQUESTS=N runs N requests instead of 10,000; JITMEM_FUZZ_SEED picks the seed.
 */

const REQUESTS = Number(process.env.JITMEM_FUZZ_REQUESTS ?? 10_000);
const SEED = Number(process.env.JITMEM_FUZZ_SEED ?? 15);
const CALL_TIMEOUT_MS = 15_000;
const PAGE = native.pageSize();
const RESERVATION_PAGES = 32;
const MAX_RESERVATIONS = 4;
/** The executor's diagnostic service that walks its own stack through the unwinder. */
const UNWIND_PROBE = 'jitmem_unwind_probe_wrapper';

/** x86-64: lea eax, [rdi+1]; ret. */
const INC_CODE = Uint8Array.of(0x8d, 0x47, 0x01, 0xc3);
/**
 * Code the fuzzer may name as an alloc action: a NOP sled into "xor eax,eax; xor edx,edx; ret",
 * a wrapper function returning the empty buffer (which the executor reports as a failed
 * action). Entered anywhere in the sled, it returns cleanly.
 */
function actionCode(size: number): Uint8Array {
  const code = new Uint8Array(size).fill(0x90);
  code.set([0x31, 0xc0, 0x31, 0xd2, 0xc3], size - 5);
  return code;
}

interface Segment {
  group: number;
  addr: number;
  size: number;
  content?: Uint8Array;
}

interface LiveRegion {
  key: number;
  segments: Array<{ addr: number; size: number; prot: number }>;
  /** sha256 of each readable segment, as read back when the region went live. */
  digests: Map<number, string>;
}

interface Reservation {
  kind: 'anonymous' | 'shared';
  base: number;
  size: number;
  regions: Map<number, LiveRegion>;
}

class FuzzFailure extends Error {}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FuzzFailure(`hang: ${what} not answered within ${CALL_TIMEOUT_MS} ms`)),
      CALL_TIMEOUT_MS,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const codeOf = (message: string): string => / \[(ERR_[A-Z0-9_]+)\]$/.exec(message)?.[1] ?? 'ERR_NO_CODE';

class Fuzzer {
  readonly random: () => number;
  readonly reservations: Reservation[] = [];
  readonly refusals = new Map<string, number>();
  /** Deinitialize and release that went through but reported a failing dealloc action (as LLVM does). */
  tornDownWithFailure = 0;
  checks = 0;
  unwinds = 0;
  /** Accepted requests whose finalize actions registered an EH frame. */
  framesRegistered = 0;
  sentinel = 0;
  private sentinelReservation: Reservation | null = null;
  lastRequest = '';
  /** The last requests sent, for the message when something goes wrong. */
  private readonly recent: string[] = [];
  private readonly sym: ReadonlyMap<string, number>;

  constructor(
    readonly session: ExecutorSession,
    seed: number,
  ) {
    this.random = seededRandom(seed);
    this.sym = session.symbols;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  /** Requests sent to the executor, the fuzzer's checks (checksum, run sentinel) not counted. */
  sent = 0;
  /** Calls the checks made. */
  checkCalls = 0;

  private async call(
    name: string,
    args: SpsWriter | Uint8Array,
    what: string,
    purpose: 'request' | 'check' = 'request',
  ): Promise<Uint8Array> {
    if (purpose === 'request') this.sent++;
    else this.checkCalls++;
    this.lastRequest = what;
    this.recent.push(what);
    if (this.recent.length > 6) this.recent.shift();
    try {
      return await withTimeout(this.session.call(name, args), what);
    } catch (err) {
      if (err instanceof FuzzFailure) throw err;
      const exit = await Promise.race([
        this.session.exited(),
        new Promise((r) => setTimeout(() => r('still running'), 2000)),
      ]);
      throw new FuzzFailure(
        `the executor stopped answering at request ${this.sent} (${what}): ${(err as Error).message}; exit ${JSON.stringify(exit)}; stderr: ${this.session.stderr.slice(-2000)}; last requests: ${this.recent.join(' | ')}`,
      );
    }
  }

  /** An SPSExpected<addr> or SPSError result: the value, or the refusal's code. */
  private outcome(
    bytes: Uint8Array,
    kind: 'addr' | 'error',
  ): { ok: true; value: number } | { ok: false; code: string; message: string } {
    const r = new SpsReader(bytes, 'result');
    if (kind === 'error') {
      const m = r.error();
      return m === null ? { ok: true, value: 0 } : { ok: false, code: codeOf(m), message: m };
    }
    const e = r.expected((r) => r.addr());
    return e.ok ? { ok: true, value: e.value } : { ok: false, code: codeOf(e.error), message: e.error };
  }

  private refused(code: string): void {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  // --- Reservations and the sentinel ---------------------------------------------------------

  async reserve(kind: Reservation['kind']): Promise<Reservation | null> {
    const size = RESERVATION_PAGES * PAGE;
    if (kind === 'anonymous') {
      const out = this.outcome(
        await this.call(
          Sym.memMgrReserve,
          new SpsWriter().addr(this.sym.get(Sym.memMgrInstance)!).u64(size),
          'reserve',
        ),
        'addr',
      );
      if (!out.ok) throw new FuzzFailure(`reserve of ${size} bytes refused: ${out.message}`);
      const r: Reservation = { kind, base: out.value, size, regions: new Map() };
      this.reservations.push(r);
      return r;
    }
    const bytes = await this.call(
      Sym.shmReserve,
      new SpsWriter().addr(this.sym.get(Sym.shmInstance)!).u64(size),
      'shm Reserve',
    );
    const e = new SpsReader(bytes).expected((r) => ({ base: r.addr(), name: r.string() }));
    if (!e.ok) throw new FuzzFailure(`shm Reserve refused: ${e.error}`);
    const r: Reservation = { kind, base: e.value.base, size, regions: new Map() };
    this.reservations.push(r);
    return r;
  }

  /** A region with a known function, never deinitialized by the fuzzer: its code must keep running. */
  async makeSentinel(): Promise<void> {
    const r = (await this.reserve('anonymous'))!;
    this.sentinelReservation = r;
    const segments: Segment[] = [
      { group: R | X, addr: r.base, size: INC_CODE.length, content: INC_CODE },
      { group: R, addr: r.base + PAGE, size: 64, content: Uint8Array.from({ length: 64 }, (_, i) => i) },
      { group: R | W, addr: r.base + 2 * PAGE, size: 100, content: new Uint8Array(100).fill(0x5a) },
    ];
    const out = this.outcome(
      await this.call(Sym.memMgrInitialize, this.initializeArgs('anonymous', r, segments, []), 'sentinel initialize'),
      'addr',
    );
    if (!out.ok) throw new FuzzFailure(`the sentinel region was refused: ${out.message}`);
    await this.track(r, out.value, segments);
    this.sentinel = r.base;
  }

  private initializeArgs(
    kind: Reservation['kind'],
    r: Reservation,
    segments: Segment[],
    actions: Array<{
      finalize: { fn: number; args: Uint8Array } | null;
      dealloc: { fn: number; args: Uint8Array } | null;
    }>,
  ): SpsWriter {
    if (kind === 'anonymous')
      return new SpsWriter().addr(this.sym.get(Sym.memMgrInstance)!).finalizeRequest({ segments, actions });
    return new SpsWriter()
      .addr(this.sym.get(Sym.shmInstance)!)
      .addr(r.base)
      .sharedMemoryFinalizeRequest({ segments, actions });
  }

  /** Records a region that went live, with the digests of its readable segments as the executor holds them now. */
  private async track(r: Reservation, key: number, segments: readonly Segment[]): Promise<void> {
    const live = segments
      .filter((s) => s.size > 0)
      .map((s) => ({ addr: s.addr, size: s.size, prot: s.group & PROT_MASK }));
    const region: LiveRegion = { key, segments: live, digests: new Map() };
    const readable = live.filter((s) => s.prot & R);
    if (readable.length > 0) {
      const digests = await this.checksum(readable);
      readable.forEach((s, i) => region.digests.set(s.addr, digests[i]!));
    }
    // Segments may all lie in another reservation than the one the request was aimed at.
    const home = this.reservations.find((x) => key >= x.base && key < x.base + x.size) ?? r;
    home.regions.set(key, region);
  }

  private async checksum(ranges: ReadonlyArray<{ addr: number; size: number }>): Promise<string[]> {
    if (!this.session.isJitmem) {
      // LLVM's executor has no checksum service: the bytes come back and are hashed here.
      const out = await this.call(
        Sym.readBuffers,
        new SpsWriter().sequence(ranges, (w, s) => w.addrRange({ start: s.addr, end: s.addr + s.size })),
        'read_buffers',
        'check',
      );
      return new SpsReader(out).sequence(8, (r) => createHash('sha256').update(r.bytesView()).digest('hex'));
    }
    const bytes = await this.call(
      JitmemSym.checksum,
      new SpsWriter().sequence(ranges, (w, s) => w.addrRange({ start: s.addr, end: s.addr + s.size })),
      'checksum',
      'check',
    );
    const e = new SpsReader(bytes).expected((r) => r.sequence(8, (r) => Buffer.from(r.bytesView()).toString('hex')));
    if (!e.ok)
      throw new FuzzFailure(
        `checksum of live readable segments refused after request ${this.sent} (${this.lastRequest}): ${e.error}`,
      );
    return e.value;
  }

  // --- The invariants ------------------------------------------------------------------------

  /** After a refusal: every live region's bytes as they were, and the sentinel's code runs. */
  async checkUnchanged(after: string): Promise<void> {
    this.checks++;
    const readable: Array<{ addr: number; size: number; digest: string }> = [];
    for (const r of this.reservations)
      for (const region of r.regions.values())
        for (const s of region.segments) if (s.prot & R) readable.push({ ...s, digest: region.digests.get(s.addr)! });
    const digests = await this.checksum(readable);
    readable.forEach((s, i) => {
      if (digests[i] !== s.digest)
        throw new FuzzFailure(`after a refused ${after}, live segment [0x${s.addr.toString(16)}, +${s.size}) changed`);
    });
    const k = this.int(0, 1 << 20);
    const ran = await this.call(Sym.runAsInt, new SpsWriter().addr(this.sentinel).i32(k), 'run sentinel', 'check');
    const got = new SpsReader(ran).i32();
    if (got !== k + 1) throw new FuzzFailure(`after a refused ${after}, the sentinel returned ${got} for ${k}`);
  }

  // --- Generators ----------------------------------------------------------------------------

  private anyLiveKey(): number | undefined {
    const keys = this.reservations.flatMap((r) => [...r.regions.keys()]);
    return keys.length ? this.pick(keys) : undefined;
  }

  /** True when [addr, addr+size) touches a page of a live writable segment (the fuzzer keeps out of those). */
  private touchesLiveWritable(addr: number, size: number): boolean {
    const lo = addr - (addr % PAGE);
    const hi = addr + Math.max(size, 1);
    for (const r of this.reservations) {
      for (const region of r.regions.values()) {
        for (const s of region.segments) {
          const end = alignUp(s.addr + s.size, PAGE);
          if (s.prot & W && s.addr < hi && lo < end) return true;
        }
      }
    }
    return false;
  }

  /** An address no request may write through: unmapped, the token page, live non-writable code or data. */
  private wildAddress(): number {
    const live = this.reservations.flatMap((r) =>
      [...r.regions.values()].flatMap((g) => g.segments.filter((s) => !(s.prot & W))),
    );
    const choices: Array<() => number> = [
      () => 0,
      () => 8,
      () => 0x1000,
      () => 2 ** 47 - PAGE,
      () => 2 ** 52 + 8 * this.int(0, 1000),
      () => this.sym.get(Sym.memMgrInstance)!,
      () => this.sym.get(JitmemSym.traceAction) ?? this.sentinel,
      () => (live.length ? this.pick(live).addr + 8 * this.int(0, 8) : 0x10),
      () => this.sentinel + PAGE,
    ];
    return this.pick(choices)();
  }

  /**
   * A function address no action may call: unmapped, data, a token. Never live code: the
   * executor runs JIT'd code it is asked to (that is its job), and code of the fuzzer's own
   * making would do anything.
   */
  private wildFunction(request: readonly Segment[] = []): number {
    const data = this.reservations.flatMap((r) =>
      [...r.regions.values()].flatMap((g) => g.segments.filter((s) => !(s.prot & X))),
    );
    const choices: Array<() => number> = [
      () => 8,
      () => 0x1000,
      () => 2 ** 47 - PAGE,
      () => this.sym.get(Sym.memMgrInstance)!,
      () => (data.length ? this.pick(data).addr : 0x10),
      () => this.sentinel + PAGE,
      () => this.pick(this.reservations).base + this.int(0, RESERVATION_PAGES - 1) * PAGE,
    ];
    let fn = this.pick(choices)();
    // A reserved page no live segment covers is RW; one a live code segment covers is not for us.
    const code = [
      ...this.reservations.flatMap((r) => [...r.regions.values()].flatMap((g) => g.segments)),
      ...request.map((s) => ({ ...s, prot: s.group & PROT_MASK })),
    ];
    // The request's own executable segments count too: they are live by the time its actions run.
    for (const s of code) if (s.prot & X && fn >= s.addr && fn < alignUp(s.addr + s.size, PAGE)) fn = 8;
    return fn;
  }

  private segmentsFor(r: Reservation): {
    segments: Segment[];
    code: Segment | null;
    eh: Segment | null;
    rw: Segment | null;
  } {
    const n = this.int(1, 4);
    let page = this.int(0, RESERVATION_PAGES - 1);
    const segments: Segment[] = [];
    let code: Segment | null = null;
    let eh: Segment | null = null;
    let rw: Segment | null = null;
    for (let i = 0; i < n; i++) {
      const kind = this.pick(['code', 'eh', 'data', 'rw', 'zero', 'any'] as const);
      let addr = r.base + page * PAGE;
      let size: number;
      let group: number;
      let content: Uint8Array | undefined;
      switch (kind) {
        case 'code':
          size = this.pick([PAGE, 64, 4 * PAGE]);
          group = this.pick([5, 13]);
          content = actionCode(size);
          break;
        case 'eh':
          size = PAGE;
          group = this.pick([1, 9]);
          break;
        case 'data':
          size = this.int(1, 2 * PAGE);
          group = R;
          content = Uint8Array.from({ length: this.int(0, Math.min(size, 256)) }, () => this.int(0, 255));
          break;
        case 'rw':
          size = this.pick([64, PAGE, 3 * PAGE]);
          group = this.pick([3, 11]);
          content = new Uint8Array(Math.min(size, 64));
          break;
        case 'zero':
          size = 0;
          group = this.int(0, 15);
          break;
        default:
          size = this.int(0, 3) * PAGE + this.int(0, 1) * this.int(1, 100);
          group = this.int(0, 15);
      }
      // The ways a segment goes wrong.
      const twist = this.random();
      if (twist < 0.06) addr += this.int(1, PAGE - 1);
      else if (twist < 0.16) {
        const key = this.anyLiveKey();
        if (key !== undefined) addr = key;
      } else if (twist < 0.2) addr = r.base + r.size - PAGE;
      else if (twist < 0.23) size = 2 ** this.int(20, 44);
      else if (twist < 0.26) addr = this.pick(this.reservations).base + this.int(0, RESERVATION_PAGES - 1) * PAGE;
      else if (twist < 0.3 && segments.length > 0) addr = segments[segments.length - 1]!.addr;
      else if (twist < 0.32) {
        const w = this.wildAddress();
        addr = w - (w % PAGE);
      }
      if (content && size < 1 << 20 && this.chance(0.03)) content = new Uint8Array(size + this.int(1, 64));
      const seg: Segment = { group, addr, size, ...(content ? { content } : {}) };
      if (kind === 'code' && content && content.length === size && addr % PAGE === 0) code = seg;
      if (kind === 'eh') eh = seg;
      if (kind === 'rw' && addr % PAGE === 0) rw = seg;
      segments.push(seg);
      page += Math.max(1, Math.ceil(size / PAGE)) + this.int(0, 1);
      if (page >= RESERVATION_PAGES) page = this.int(0, RESERVATION_PAGES - 1);
    }
    if (eh) {
      const fns = code
        ? [{ start: code.addr, size: Math.min(code.size, 64) }]
        : [{ start: this.wildAddress(), size: this.int(0, 64) }];
      let frame = ehFrameSection(eh.addr, fns);
      if (this.chance(0.5)) frame = this.mutateFrame(frame);
      eh.content = frame.length <= eh.size ? frame : frame.subarray(0, eh.size);
    }
    if (this.chance(0.5)) {
      for (let i = segments.length - 1; i > 0; i--) {
        const j = this.int(0, i);
        [segments[i], segments[j]] = [segments[j]!, segments[i]!];
      }
    }
    return { segments, code, eh, rw };
  }

  private mutateFrame(frame: Uint8Array): Uint8Array {
    const f = frame.slice();
    const dv = new DataView(f.buffer);
    const n = this.int(1, 3);
    for (let i = 0; i < n; i++) {
      const how = this.random();
      const at = this.int(0, f.length - 1);
      if (how < 0.4) f[at]! ^= 1 << this.int(0, 7);
      else if (how < 0.55 && f.length >= 4)
        dv.setUint32(
          this.int(0, (f.length - 4) >> 2) * 4,
          this.pick([0, 1, 0xffffffff, 0x7fffffff, f.length, this.int(0, 4096)]),
          true,
        );
      else if (how < 0.75) {
        // The FDE's CIE pointer, the field libgcc follows without a check.
        const cieLength = dv.getUint32(0, true);
        const fde = 4 + cieLength;
        if (fde + 8 <= f.length)
          dv.setUint32(
            fde + 4,
            this.pick([0, 4, 8, fde, fde + 4, fde + 8, 0x1000, 0xfffffff0, this.int(0, 0xffff)]),
            true,
          );
      } else if (how < 0.9)
        f[this.pick([9, 10, 11, 17, 18])] = this.pick([
          0x7a, 0x52, 0x50, 0x4c, 0x53, 0x42, 0x65, 0x68, 0x00, 0xff, 0x1b, 0x9b, 0x40, 0x0f,
        ]);
      else f[at] = this.int(0, 255);
    }
    return f;
  }

  private action(
    ctx: { code: Segment | null; eh: Segment | null; rw: Segment | null; segments: readonly Segment[] },
    role: 'finalize' | 'dealloc',
  ): { fn: number; args: Uint8Array } | null {
    // LLVM's executor has neither of jitmem's test actions: the sentinel's code stands in (an
    // address of code that is no wrapper function, which an unchecked executor calls anyway).
    const trace = this.sym.get(JitmemSym.traceAction) ?? this.sentinel;
    const reg = this.sym.get(Sym.registerEHFrame)!;
    const dereg = this.sym.get(Sym.deregisterEHFrame)!;
    const ehRange = (): Uint8Array => {
      const start = ctx.eh && this.chance(0.85) ? ctx.eh.addr : this.wildAddress();
      const len = ctx.eh?.content && this.chance(0.8) ? ctx.eh.content.length - 4 : this.int(0, 2 * PAGE);
      const twist = this.random();
      const s = twist < 0.1 ? start + this.int(1, 16) : start;
      const e = twist > 0.95 ? s - 1 : s + len;
      return new SpsWriter()
        .addrRange({ start: s, end: Math.max(0, e) })
        .finish()
        .slice();
    };
    const kind = this.random();
    if (kind < 0.15) return null;
    if (kind < 0.35) {
      const log = ctx.rw && this.chance(0.8) ? ctx.rw.addr + 8 * this.int(0, 4) : this.wildAddress();
      return { fn: trace, args: new SpsWriter().addr(log).u64(this.int(0, 4)).u64(this.int(0, 1000)).finish().slice() };
    }
    if (kind < 0.55) return { fn: role === 'finalize' ? reg : dereg, args: ehRange() };
    if (kind < 0.65) return { fn: role === 'finalize' ? dereg : reg, args: ehRange() };
    if (kind < 0.7) return { fn: this.sym.get(JitmemSym.failAction) ?? this.sentinel, args: new Uint8Array(0) };
    if (kind < 0.8 && ctx.code)
      return { fn: ctx.code.addr, args: Uint8Array.from({ length: this.int(0, 16) }, () => this.int(0, 255)) };
    if (kind < 0.85)
      return { fn: this.sym.get(Sym.registerJITLoaderGDB) ?? trace, args: new Uint8Array(this.int(0, 16)) };
    if (kind < 0.9) return { fn: trace, args: Uint8Array.from({ length: this.int(0, 30) }, () => this.int(0, 255)) };
    return { fn: this.wildFunction(ctx.segments), args: new Uint8Array(0) };
  }

  // --- Requests ------------------------------------------------------------------------------

  async initialize(kind: Reservation['kind']): Promise<void> {
    const request = this.initializeRequest(kind);
    if (!request) return;
    const out = this.outcome(await this.call(request.name, request.args, request.what), 'addr');
    await this.initialized(request, out);
    if (!out.ok) await this.checkUnchanged(request.what);
  }

  /**
   * Two to five initializes sent in one turn, as a linker pipelines a program's: the executor
   * reads them together and handles them together (one protection pass across them); each must
   * be answered as it would be alone. Their outcomes are recorded in order once all are in.
   */
  async initializeTogether(kind: Reservation['kind']): Promise<void> {
    const requests = Array.from({ length: this.int(2, 5) }, () => this.initializeRequest(kind)).filter(
      (q) => q !== null,
    );
    if (requests.length === 0) return;
    const answers = await Promise.all(requests.map((q) => this.call(q.name, q.args, `${q.what} (sent together)`)));
    const outs = answers.map((a) => this.outcome(a, 'addr'));
    for (const [i, q] of requests.entries()) await this.initialized(q, outs[i]!);
    if (outs.some((o) => !o.ok)) await this.checkUnchanged(`initialize among ${requests.length} sent together`);
  }

  private async initialized(
    request: NonNullable<ReturnType<Fuzzer['initializeRequest']>>,
    out: ReturnType<Fuzzer['outcome']>,
  ): Promise<void> {
    if (out.ok) {
      if (request.registersFrames) this.framesRegistered++;
      await this.track(request.r, out.value, request.segments);
    } else {
      this.refused(out.code);
    }
  }

  private initializeRequest(kind: Reservation['kind']) {
    const candidates = this.reservations.filter((r) => r.kind === kind && r !== this.sentinelReservation);
    if (candidates.length === 0) return null;
    const r = this.pick(candidates);
    const planned = this.segmentsFor(r);
    const { segments, eh, rw } = planned;
    // Shared-memory segments carry no content on the wire: their "code" is zeros, not ours to call.
    const code = kind === 'anonymous' ? planned.code : null;
    const actions = Array.from({ length: this.int(0, 3) }, () => ({
      finalize: this.action({ code, eh, rw, segments }, 'finalize'),
      dealloc: this.action({ code, eh, rw, segments }, 'dealloc'),
    }));
    // Shared memory carries no content on the wire: the fuzzer has no mapping to write through,
    // so those segments hold what the object holds.
    const what = `${kind} initialize of ${segments.map((s) => `[0x${s.addr.toString(16)}+${s.size} g${s.group}]`).join(' ')} with ${actions.length} action pair(s)`;
    return {
      r,
      segments,
      what,
      name: kind === 'anonymous' ? Sym.memMgrInitialize : Sym.shmInitialize,
      args: this.initializeArgs(kind, r, segments, actions),
      registersFrames: actions.some((a) => a.finalize?.fn === this.sym.get(Sym.registerEHFrame)),
    };
  }

  /**
   * A request like a JIT's own: code and its .eh_frame (well-formed or mutated) in free pages,
   * registered by a finalize action, with or without the deregister action that should go with
   * it, or with a deregister of something else.
   */
  async ehProgram(): Promise<void> {
    const candidates = this.reservations.filter((r) => r.kind === 'anonymous' && r !== this.sentinelReservation);
    if (candidates.length === 0) return;
    const r = this.pick(candidates);
    const page = this.int(0, RESERVATION_PAGES - 2);
    const codeAddr = r.base + page * PAGE;
    const ehAddr = codeAddr + PAGE;
    if (
      [...r.regions.values()].some((g) =>
        g.segments.some((s) => s.addr < ehAddr + PAGE && codeAddr < alignUp(s.addr + s.size, PAGE)),
      )
    )
      return;
    let frame = ehFrameSection(ehAddr, [
      { start: codeAddr, size: 64 },
      { start: codeAddr + 64, size: this.int(1, 64) },
    ]);
    if (this.chance(0.4)) frame = this.mutateFrame(frame);
    const segments: Segment[] = [
      { group: R | X, addr: codeAddr, size: PAGE, content: actionCode(PAGE) },
      { group: this.chance(0.9) ? 1 : 3, addr: ehAddr, size: frame.length, content: frame },
    ];
    const range = new SpsWriter()
      .addrRange({ start: ehAddr, end: ehAddr + frame.length - 4 })
      .finish()
      .slice();
    const reg = { fn: this.sym.get(Sym.registerEHFrame)!, args: range };
    const dereg = { fn: this.sym.get(Sym.deregisterEHFrame)!, args: range };
    const other = {
      fn: this.sym.get(Sym.deregisterEHFrame)!,
      args: new SpsWriter()
        .addrRange({ start: codeAddr, end: codeAddr + 16 })
        .finish()
        .slice(),
    };
    const how = this.random();
    const actions =
      how < 0.4
        ? [{ finalize: reg, dealloc: dereg }]
        : how < 0.7
          ? [{ finalize: reg, dealloc: null }]
          : how < 0.85
            ? [{ finalize: reg, dealloc: other }]
            : [{ finalize: null, dealloc: dereg }];
    const what = `EH program at 0x${codeAddr.toString(16)} (${how < 0.4 ? 'register+deregister' : how < 0.7 ? 'register only' : how < 0.85 ? 'register, deregister another' : 'deregister only'})`;
    const out = this.outcome(
      await this.call(Sym.memMgrInitialize, this.initializeArgs('anonymous', r, segments, actions), what),
      'addr',
    );
    if (out.ok) {
      if (actions[0]!.finalize) this.framesRegistered++;
      await this.track(r, out.value, segments);
    } else {
      this.refused(out.code);
      await this.checkUnchanged(what);
    }
  }

  private keys(): number[] {
    const live = this.reservations.flatMap((r) => [...r.regions.keys()].filter(() => r !== this.sentinelReservation));
    const n = this.int(0, 3);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const how = this.random();
      if (how < 0.6 && live.length) out.push(this.pick(live));
      else if (how < 0.8) out.push(this.pick(this.reservations).base + this.int(0, RESERVATION_PAGES) * PAGE);
      else out.push(this.wildAddress());
    }
    if (out.length > 1 && this.chance(0.1)) out.push(out[0]!);
    return out;
  }

  private forget(keys: readonly number[]): void {
    for (const k of keys) for (const r of this.reservations) r.regions.delete(k);
  }

  async deinitialize(kind: Reservation['kind']): Promise<void> {
    const keys = this.keys().filter((k) => k !== this.sentinel);
    const inst = this.sym.get(kind === 'anonymous' ? Sym.memMgrInstance : Sym.shmInstance)!;
    const what = `${kind} deinitialize of ${keys.map((k) => `0x${k.toString(16)}`).join(', ')}`;
    const out = this.outcome(
      await this.call(
        kind === 'anonymous' ? Sym.memMgrDeinitialize : Sym.shmDeinitialize,
        new SpsWriter().addr(inst).sequence(keys, (w, k) => w.addr(k)),
        what,
      ),
      'error',
    );
    // A dealloc action that fails still leaves its region deinitialized (as in LLVM): only a
    // refusal up front leaves everything as it was.
    if (out.ok || out.code === 'ERR_ALLOC_ACTION_FAILED') {
      const ours = keys.filter((k) => this.reservations.some((r) => r.kind === kind && r.regions.has(k)));
      this.forget(ours);
      if (!out.ok) this.tornDownWithFailure++;
    } else {
      this.refused(out.code);
      await this.checkUnchanged(what);
    }
  }

  async release(kind: Reservation['kind']): Promise<void> {
    const mine = this.reservations.filter((r) => r.kind === kind && r !== this.sentinelReservation);
    const bases: number[] = [];
    const n = this.int(1, 2);
    for (let i = 0; i < n; i++) {
      const how = this.random();
      if (how < 0.7 && mine.length) bases.push(this.pick(mine).base);
      else if (how < 0.85) bases.push(this.pick(this.reservations).base + PAGE * this.int(0, 2));
      else bases.push(this.wildAddress());
    }
    const unique = [...new Set(bases)].filter((b) => b !== this.sentinelReservation?.base);
    const inst = this.sym.get(kind === 'anonymous' ? Sym.memMgrInstance : Sym.shmInstance)!;
    const what = `${kind} release of ${unique.map((k) => `0x${k.toString(16)}`).join(', ')}`;
    const out = this.outcome(
      await this.call(
        kind === 'anonymous' ? Sym.memMgrRelease : Sym.shmRelease,
        new SpsWriter().addr(inst).sequence(unique, (w, k) => w.addr(k)),
        what,
      ),
      'error',
    );
    if (out.ok || out.code === 'ERR_ALLOC_ACTION_FAILED') {
      if (!out.ok) this.tornDownWithFailure++;
      for (const b of unique) {
        const i = this.reservations.findIndex((r) => r.base === b && r.kind === kind);
        if (i >= 0) this.reservations.splice(i, 1);
      }
    } else {
      this.refused(out.code);
      await this.checkUnchanged(what);
    }
  }

  /**
   * Reads and writes aimed where they must be refused; the executor ends a session on those (they
   * carry no error), so only safe ones go.
   */
  async touchMemory(): Promise<void> {
    const r = this.pick(this.reservations);
    const addr = r.base + this.int(0, RESERVATION_PAGES - 1) * PAGE + this.int(0, PAGE - 8);
    if (r.kind !== 'anonymous' || this.touchesLiveWritable(addr, 8)) return;
    // Reserved anonymous memory outside live regions is writable and part of no region.
    const live = [...r.regions.values()].some((g) =>
      g.segments.some((s) => addr + 8 > s.addr && addr < alignUp(s.addr + s.size, PAGE)),
    );
    if (live) return;
    await this.call(
      Sym.writeUInt64s,
      new SpsWriter().sequence([addr], (w, a) => w.addr(a).u64(this.int(0, 2 ** 32))),
      'write to reserved memory',
    );
  }

  /**
   * Makes the executor search the unwinder's tables: the unwind probe where the executor has
   * one, and the shared-memory initialize whose name is already gone (a C++ exception in older
   * addons).
   */
  async unwind(): Promise<void> {
    this.unwinds++;
    if (this.session.hasSymbol(UNWIND_PROBE)) {
      const out = this.outcome(await this.call(UNWIND_PROBE, new Uint8Array(0), 'unwind probe'), 'error');
      if (!out.ok) throw new FuzzFailure(`the unwind probe failed: ${out.message}`);
    }
    const size = PAGE;
    const bytes = await this.call(
      Sym.shmReserve,
      new SpsWriter().addr(this.sym.get(Sym.shmInstance)!).u64(size),
      'shm Reserve for unwind',
    );
    const e = new SpsReader(bytes).expected((r) => ({ base: r.addr(), name: r.string() }));
    if (!e.ok) throw new FuzzFailure(`shm Reserve refused: ${e.error}`);
    native.shmUnlink(e.value.name);
    const r: Reservation = { kind: 'shared', base: e.value.base, size, regions: new Map() };
    const seg: Segment = { group: R | W, addr: r.base, size: 64 };
    const out = this.outcome(
      await this.call(Sym.shmInitialize, this.initializeArgs('shared', r, [seg], []), 'shm initialize after unlink'),
      'addr',
    );
    if (!out.ok) throw new FuzzFailure(`shm initialize of an unlinked object refused: ${out.message}`);
    const rel = this.outcome(
      await this.call(
        Sym.shmRelease,
        new SpsWriter().addr(this.sym.get(Sym.shmInstance)!).sequence([r.base], (w, b) => w.addr(b)),
        'shm release',
      ),
      'error',
    );
    if (!rel.ok && rel.code !== 'ERR_ALLOC_ACTION_FAILED')
      throw new FuzzFailure(`release of the unwind reservation refused: ${rel.message}`);
  }

  async step(): Promise<void> {
    const anon = this.reservations.filter((r) => r.kind === 'anonymous').length;
    const shared = this.reservations.filter((r) => r.kind === 'shared').length;
    if (anon < 2) return void (await this.reserve('anonymous'));
    if (shared < 1) return void (await this.reserve('shared'));
    const x = this.random();
    if (x < 0.08) await this.ehProgram();
    else if (x < 0.32) await this.initialize('anonymous');
    else if (x < 0.4) await this.initializeTogether('anonymous');
    else if (x < 0.46) await this.initialize('shared');
    else if (x < 0.5) await this.initializeTogether('shared');
    else if (x < 0.65) await this.deinitialize('anonymous');
    else if (x < 0.7) await this.deinitialize('shared');
    else if (x < 0.74) await this.release('anonymous');
    else if (x < 0.76) await this.release('shared');
    else if (x < 0.8 && anon < MAX_RESERVATIONS + 1) await this.reserve('anonymous');
    else if (x < 0.82 && shared < MAX_RESERVATIONS) await this.reserve('shared');
    else if (x < 0.97) await this.touchMemory();
    else await this.unwind();
  }
}

test('structured fuzzing of finalize, deinitialize and release on one executor session: no crash, no hang, no leak', async (t) => {
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.kill());
  const pid = session.pid!;
  const fuzzer = new Fuzzer(session, SEED);
  const started = Date.now();
  try {
    await fuzzer.makeSentinel();
    while (fuzzer.sent < REQUESTS) await fuzzer.step();
    // Everything still live can be taken down, which is also the last check of the records.
    await fuzzer.unwind();
    await fuzzer.checkUnchanged('nothing');
  } catch (err) {
    if (err instanceof FuzzFailure) t.fail(`seed ${SEED}: ${err.message}`);
    throw err;
  }
  const ms = Date.now() - started;
  await session.close();
  const exit = await session.exited();
  const refusals = [...fuzzer.refusals.entries()].sort((a, b) => b[1] - a[1]);
  const refused = refusals.reduce((s, [, n]) => s + n, 0);
  t.log(
    `${fuzzer.sent} requests in ${(ms / 1000).toFixed(1)} s (seed ${SEED}): ${fuzzer.sent - refused - fuzzer.tornDownWithFailure} accepted, ${refused} refused with nothing changed, ${fuzzer.tornDownWithFailure} deinitialize/release done with a failing dealloc action reported, ${fuzzer.checks} checks of the live regions (${fuzzer.checkCalls} calls), ${fuzzer.framesRegistered} accepted requests registered EH frames, ${fuzzer.unwinds} unwinds`,
  );
  t.log(`refusals by code: ${refusals.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  t.deepEqual(exit, { code: 0, signal: null });
  t.false(processExists(pid));
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  t.true(fuzzer.refusals.size >= 8, 'the fuzzer reaches many different checks');
});

/**
 * The same fuzzer against LLVM's llvm-jitlink-executor, for the figures beside jitmem's (not a
 * CI test: LLVM's executor trusts its controller and is expected to die). Each time the
 * executor dies or stops answering, a fresh one takes over with the next seed, until
 * JITMEM_FUZZ_REQUESTS requests have been sent. JITMEM_FUZZ_EXECUTOR=llvm runs it.
 */
if (process.env.JITMEM_FUZZ_EXECUTOR === 'llvm') {
  test("structured fuzzing of LLVM's executor: crashes and hangs counted (figures)", async (t) => {
    let sent = 0;
    let crashes = 0;
    let hangs = 0;
    let sessions = 0;
    const firstFailures: string[] = [];
    const pids: number[] = [];
    while (sent < REQUESTS) {
      const session = await ExecutorSession.spawn({ kind: 'llvm' });
      pids.push(session.pid!);
      sessions++;
      const fuzzer = new Fuzzer(session, SEED + sessions - 1);
      try {
        await fuzzer.makeSentinel();
        while (sent + fuzzer.sent < REQUESTS) await fuzzer.step();
        await session.close();
      } catch (err) {
        if (!(err instanceof FuzzFailure)) throw err;
        const exit = await Promise.race([session.exited(), new Promise((r) => setTimeout(() => r(null), 2000))]);
        if (exit && (exit as { signal: string | null }).signal) crashes++;
        else hangs++;
        if (firstFailures.length < 5)
          firstFailures.push(`${JSON.stringify(exit)} at request ${fuzzer.sent}: ${fuzzer.lastRequest}`);
        session.kill();
        await session.exited();
      }
      sent += Math.max(1, fuzzer.sent);
    }
    // Names of executors that died: LLVM's executor names them /jitlink_<pid>_<n>.
    const left = [...new Set(pids.flatMap((pid) => shmObjects(`jitlink_${pid}_`)))];
    for (const name of left) {
      try {
        native.shmUnlink(`/${name}`);
      } catch {
        // Gone meanwhile.
      }
    }
    t.log(
      `LLVM's executor: ${sent} requests over ${sessions} sessions: ${crashes} crashes (killed by a signal), ${hangs} hangs or other ends; shm objects left behind (removed now): ${left.length}`,
    );
    for (const f of firstFailures) t.log(f);
    t.pass();
  });
}
