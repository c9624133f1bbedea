import test from 'ava';
import * as native from '../native/index.js';
import { OpCode, encodeFrame } from '../protocol/frame.js';
import { JitmemSym, Sym, decodeSetup } from '../protocol/setup.js';
import { SpsReader, SpsWriter, type WireFinalizeRequest } from '../protocol/sps.js';
import { PROCESS_COST_COUNTER_NAMES } from '../core/cost-counters.js';
import { R, W, X } from '../graph/alloc-group.js';
import { pageProtection, spawnRawExecutor, type RawExecutor } from './helpers/executor-process.js';

/**
 * Initializes the controller pipelines (a program's graphs) reach the executor in one read and
 * are handled together: each is checked against the memory as it will be once those before it
 * are live, their protections are set with one mprotect per run of pages across them, and each
 * is answered as it would be alone (the frames here go out in one write, so the executor reads
 * them together).
 */

const PAGE = native.pageSize();
const INC_CODE = Uint8Array.of(0x8d, 0x47, 0x01, 0xc3); // lea eax, [rdi + 1]; ret
const MPROTECT = PROCESS_COST_COUNTER_NAMES.indexOf('mprotect');

type Segment = WireFinalizeRequest['segments'][number];

class Batch {
  private seq = 1;
  constructor(
    readonly ex: RawExecutor,
    readonly symbols: ReadonlyMap<string, number>,
  ) {}

  static async open(t: { teardown(f: () => unknown): void }): Promise<Batch> {
    const ex = spawnRawExecutor();
    t.teardown(() => ex.child.kill('SIGKILL'));
    return new Batch(ex, decodeSetup((await ex.nextFrame())!.payload).symbols);
  }

  private frame(name: string, args: Uint8Array): Uint8Array {
    return encodeFrame(OpCode.CallWrapper, this.seq++, this.symbols.get(name)!, args);
  }

  /** Sends the calls in one write; their answers in order. */
  async calls(calls: ReadonlyArray<[string, Uint8Array]>): Promise<Uint8Array[]> {
    this.ex.toExecutor.write(Buffer.concat(calls.map(([name, args]) => this.frame(name, args))));
    const out: Uint8Array[] = [];
    for (let i = 0; i < calls.length; i++) out.push((await this.ex.nextFrame())!.payload);
    return out;
  }

  async reserve(bytes: number): Promise<number> {
    const [answer] = await this.calls([
      [Sym.memMgrReserve, new SpsWriter().addr(this.symbols.get(Sym.memMgrInstance)!).u64(bytes).finish()],
    ]);
    const e = new SpsReader(answer!).expected((r) => r.addr());
    if (!e.ok) throw new Error(e.error);
    return e.value;
  }

  /** Initializes sent together: each answer is the key or the error's text. */
  async initialize(requests: ReadonlyArray<Segment[] | WireFinalizeRequest>): Promise<Array<number | string>> {
    const inst = this.symbols.get(Sym.memMgrInstance)!;
    const answers = await this.calls(
      requests.map((q) => [
        Sym.memMgrInitialize,
        new SpsWriter()
          .addr(inst)
          .finalizeRequest(Array.isArray(q) ? { segments: q, actions: [] } : q)
          .finish(),
      ]),
    );
    return answers.map((a) => {
      const e = new SpsReader(a).expected((r) => r.addr());
      return e.ok ? e.value : e.error;
    });
  }

  async mprotects(): Promise<number> {
    const [answer] = await this.calls([[JitmemSym.costCounters, new Uint8Array(0)]]);
    return new SpsReader(answer!).sequence(8, (r) => r.u64())[MPROTECT]!;
  }

  async runInc(fn: number, k: number): Promise<number> {
    const [answer] = await this.calls([[Sym.runAsInt, new SpsWriter().addr(fn).i32(k).finish()]]);
    return new SpsReader(answer!).i32();
  }

  /** The kernel's protection of the page at `addr` ('r-x', 'rw-', ...). */
  protection(addr: number): string {
    return pageProtection(this.ex.child.pid!, addr);
  }
}

const code = (addr: number): Segment => ({ group: R | X, addr, size: INC_CODE.length, content: INC_CODE });
const readOnly = (addr: number): Segment => ({ group: R, addr, size: 64, content: new Uint8Array(64).fill(7) });

test('four initializes read together take one mprotect per run of pages across them, and each region is as if initialized alone', async (t) => {
  const b = await Batch.open(t);
  const base = await b.reserve(16 * PAGE);
  const page = (i: number) => base + i * PAGE;
  const before = await b.mprotects();
  // R-- R-X | R-X R-- | R-- R-X | R-X R--: runs R--, R-X, R--, R-X, R-- across the four
  // (8 pages; one at a time, 8 calls).
  const keys = await b.initialize([
    [readOnly(page(0)), code(page(1))],
    [code(page(2)), readOnly(page(3))],
    [readOnly(page(4)), code(page(5))],
    [code(page(6)), readOnly(page(7))],
  ]);
  t.deepEqual(keys, [page(0), page(2), page(4), page(6)]);
  t.is((await b.mprotects()) - before, 5);
  t.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => b.protection(page(i))),
    ['r--', 'r-x', 'r-x', 'r--', 'r--', 'r-x', 'r-x', 'r--', 'rw-'],
  );
  for (const [i, p] of [1, 2, 5, 6].entries()) t.is(await b.runInc(page(p), 10 * i), 10 * i + 1);
});

test('an initialize refused in a batch is refused alone: one overlapping a region planned before it in the batch, one whose action fails', async (t) => {
  const b = await Batch.open(t);
  const base = await b.reserve(16 * PAGE);
  const page = (i: number) => base + i * PAGE;
  const fail = { fn: b.symbols.get(JitmemSym.failAction)!, args: new Uint8Array(0) };
  const answers = await b.initialize([
    [code(page(0))],
    // Overlaps the one before it, which is not live yet when it is read: refused as it would be after it.
    [code(page(0)), readOnly(page(1))],
    [code(page(1))],
    // Its finalize action fails: its pages go back as a fresh reservation has them.
    { segments: [code(page(2))], actions: [{ finalize: fail, dealloc: null }] },
    [code(page(3))],
  ]);
  t.is(answers[0], page(0));
  t.regex(String(answers[1]), /overlaps previous region .*\[ERR_REGION_OVERLAP\]/);
  t.is(answers[2], page(1));
  t.regex(String(answers[3]), /\[ERR_ALLOC_ACTION_FAILED\]/);
  t.is(answers[4], page(3));
  t.deepEqual(
    [0, 1, 2, 3].map((i) => b.protection(page(i))),
    ['r-x', 'r-x', 'rw-', 'r-x'],
  );
  t.is(await b.runInc(page(1), 1), 2);
  t.is(await b.runInc(page(3), 3), 4);
  // The refused one's pages take a region again.
  t.deepEqual(await b.initialize([[{ group: R | W, addr: page(2), size: 8, content: new Uint8Array(8) }]]), [page(2)]);
});

test("a malformed initialize in a batch ends the session once those before it are answered", async (t) => {
  const b = await Batch.open(t);
  const base = await b.reserve(4 * PAGE);
  const inst = b.symbols.get(Sym.memMgrInstance)!;
  const good = new SpsWriter().addr(inst).finalizeRequest({ segments: [code(base)], actions: [] }).finish();
  b.ex.toExecutor.write(
    Buffer.concat([
      encodeFrame(OpCode.CallWrapper, 90, b.symbols.get(Sym.memMgrInitialize)!, good),
      encodeFrame(OpCode.CallWrapper, 91, b.symbols.get(Sym.memMgrInitialize)!, good.subarray(0, 20)),
    ]),
  );
  const answer = await b.ex.nextFrame();
  t.is(answer?.seq, 90);
  t.deepEqual(new SpsReader(answer!.payload).expected((r) => r.addr()), { ok: true, value: base });
  t.is(await b.ex.nextFrame(), null);
  t.deepEqual(await b.ex.exit, { code: 1, signal: null });
  t.regex(b.ex.stderr(), /malformed initialize arguments.*\[ERR_SPS_MALFORMED\]/);
});
