import test from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { FrameParser, OpCode, encodeFrame, type Frame } from '../protocol/frame.js';
import { JitmemSym, Sym, decodeSetup } from '../protocol/setup.js';
import { SpsReader, SpsWriter } from '../protocol/sps.js';
import { EXECUTOR, processExists, shmObjects } from './helpers/executor-process.js';
import { seededRandom as rng } from '../harness/statistics.js';
import { R, W } from '../graph/alloc-group.js';

/**
 * Mutated frames against real executor processes: many sessions, each set up properly (so the
 * frames name real memory and real services) and then fed a batch of mutations of valid
 * requests. Zero crashes (no executor dies by a signal, every session is served), zero hangs
 * (every session ends within its deadline).
 */

const PROCESSES = 4;
// Most mutations are fatal to their session (that is the point), so many short sessions reach
// further into the services than a few long ones.
const SESSIONS_PER_PROCESS = 500;
const FRAMES_PER_SESSION = 10;
const SESSION_DEADLINE_MS = 10_000;
const PAGE = 4096;

interface Listening {
  port: number;
  pid: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
}

function startExecutor(): Promise<Listening> {
  const child = spawn(
    EXECUTOR,
    [
      '--listen',
      '127.0.0.1:0',
      '--no-auth',
      '--sessions',
      String(SESSIONS_PER_PROCESS),
      '--max-frame-size',
      String(1 << 20),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  if (process.env.FUZZ_DEBUG) child.stderr!.pipe(process.stderr);
  else child.stderr!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on 127\.0\.0\.1:(\d+)\n/.exec(out);
      if (m) resolve({ port: Number(m[1]), pid: child.pid!, exit, kill: () => child.kill('SIGKILL') });
    });
    void exit.then(() => reject(new Error('executor exited before listening')));
  });
}

/** A raw connection: frames out as bytes, frames in parsed. */
class RawSession {
  private readonly parser = new FrameParser(1 << 30);
  private readonly frames: Frame[] = [];
  private waiting: ((f: Frame | null) => void) | null = null;
  private ended = false;
  readonly closed: Promise<void>;
  resultsAfterSetup = 0;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.parser.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
        this.frames.push(f);
        this.resultsAfterSetup++;
      }
      this.wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((r) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        r();
      }),
    );
  }

  private wake(): void {
    if (this.waiting && (this.frames.length > 0 || this.ended)) {
      const w = this.waiting;
      this.waiting = null;
      w(this.frames.shift() ?? null);
    }
  }

  next(): Promise<Frame | null> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.wake();
    });
  }

  /** A valid call, answered before anything else is sent. */
  async call(seq: number, tag: number, payload: Uint8Array): Promise<Uint8Array> {
    this.socket.write(encodeFrame(OpCode.CallWrapper, seq, tag, payload));
    const f = await this.next();
    if (!f || f.opcode !== OpCode.Result || f.seq !== seq)
      throw new Error(`set-up call ${seq} got ${f ? `opcode ${f.opcode} seq ${f.seq}` : 'EOF'}`);
    return f.payload;
  }
}

const okAddr = (payload: Uint8Array): number => {
  const r = new SpsReader(payload).expected((r) => r.addr());
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

type FrameTemplate = [number, number, Uint8Array];

/** What a template may name: this session's symbols, memory, shared memory and dylib handle. */
interface TemplateSession {
  readonly sym: ReadonlyMap<string, number>;
  readonly base: number;
  readonly spare: number;
  readonly shm: { base: number };
  readonly handle: number;
}

const newWriter = (): SpsWriter => new SpsWriter(64);
const TEMPLATE_CONTENT = Uint8Array.from({ length: 96 }, (_, i) => (i * 7) & 0xff);

/** A call-wrapper frame to the service function `name` with `payload`. */
function callTemplate(s: TemplateSession, name: string, payload: SpsWriter): FrameTemplate {
  return [OpCode.CallWrapper, s.sym.get(name)!, payload.finish().slice()];
}

/** SimpleExecutorMemoryManager: reserve, initialize (with a traced alloc action), deinitialize, release. */
function memoryManagerTemplates(s: TemplateSession): FrameTemplate[] {
  const mm = s.sym.get(Sym.memMgrInstance)!;
  const trace = s.sym.get(JitmemSym.traceAction)!;
  const traceArgs = (v: number): Uint8Array => newWriter().addr(s.base).u64(16).u64(v).finish().slice();
  const { base } = s;
  return [
    callTemplate(
      s,
      Sym.memMgrReserve,
      newWriter()
        .addr(mm)
        .u64(4 * PAGE),
    ),
    callTemplate(
      s,
      Sym.memMgrInitialize,
      newWriter()
        .addr(mm)
        .finalizeRequest({
          segments: [
            { group: R, addr: base + PAGE, size: 64, content: TEMPLATE_CONTENT.subarray(0, 64) },
            { group: R | W, addr: base + 2 * PAGE, size: 200, content: TEMPLATE_CONTENT },
          ],
          actions: [{ finalize: { fn: trace, args: traceArgs(1) }, dealloc: { fn: trace, args: traceArgs(2) } }],
        }),
    ),
    callTemplate(
      s,
      Sym.memMgrDeinitialize,
      newWriter()
        .addr(mm)
        .sequence([base + PAGE], (w, k) => w.addr(k)),
    ),
    callTemplate(
      s,
      Sym.memMgrRelease,
      newWriter()
        .addr(mm)
        .sequence([s.spare], (w, k) => w.addr(k)),
    ),
  ];
}

/** ExecutorSharedMemoryMapperService: initialize, deinitialize, reserve. */
function sharedMemoryTemplates(s: TemplateSession): FrameTemplate[] {
  const sh = s.sym.get(Sym.shmInstance)!;
  const shmBase = s.shm.base;
  const request = { segments: [{ group: R | W, addr: shmBase, size: 300 }], actions: [] };
  return [
    callTemplate(s, Sym.shmInitialize, newWriter().addr(sh).addr(shmBase).sharedMemoryFinalizeRequest(request)),
    callTemplate(
      s,
      Sym.shmDeinitialize,
      newWriter()
        .addr(sh)
        .sequence([shmBase], (w, k) => w.addr(k)),
    ),
    callTemplate(
      s,
      Sym.shmReserve,
      newWriter()
        .addr(sh)
        .u64(2 * PAGE),
    ),
  ];
}

/** The memory-access services, writing and reading the fourth page of the session's memory. */
function memoryAccessTemplates(s: TemplateSession): FrameTemplate[] {
  const { base } = s;
  const at = base + 3 * PAGE;
  const w = newWriter;
  return [
    callTemplate(
      s,
      Sym.writeUInt8s,
      w().sequence([1, 2], (w, i) => w.addr(at + i).u8(i)),
    ),
    callTemplate(
      s,
      Sym.writeUInt16s,
      w().sequence([1, 2], (w, i) => w.addr(at + 8 * i).u16(i)),
    ),
    callTemplate(
      s,
      Sym.writeUInt32s,
      w().sequence([1, 2], (w, i) => w.addr(at + 8 * i).u32(i)),
    ),
    callTemplate(
      s,
      Sym.writeUInt64s,
      w().sequence([1, 2], (w, i) => w.addr(at + 8 * i).u64(i)),
    ),
    callTemplate(
      s,
      Sym.writePointers,
      w().sequence([1], (w, i) => w.addr(at + 8 * i).addr(base)),
    ),
    callTemplate(
      s,
      Sym.writeBuffers,
      w().sequence([TEMPLATE_CONTENT], (w, c) => w.addr(at + 64).bytes(c)),
    ),
    callTemplate(
      s,
      Sym.readUInt8s,
      w().sequence([0, 1], (w, i) => w.addr(at + i)),
    ),
    callTemplate(
      s,
      Sym.readUInt64s,
      w().sequence([0, 1], (w, i) => w.addr(at + 8 * i)),
    ),
    callTemplate(
      s,
      Sym.readPointers,
      w().sequence([0], (w) => w.addr(at)),
    ),
    callTemplate(
      s,
      Sym.readBuffers,
      w().sequence([0], (w) => w.addrRange({ start: base, end: base + 256 })),
    ),
    callTemplate(
      s,
      Sym.readStrings,
      w().sequence([0], (w) => w.addr(at + 64)),
    ),
    callTemplate(
      s,
      JitmemSym.checksum,
      w().sequence([0], (w) => w.addrRange({ start: base, end: base + 4 * PAGE })),
    ),
  ];
}

/** Dylib open and resolve, jitmem's no-op, and the two non-call opcodes. */
function dylibAndControlTemplates(s: TemplateSession): FrameTemplate[] {
  const lookups = [
    { name: 'strlen', required: false },
    { name: 'no_such_symbol_here', required: false },
  ];
  return [
    callTemplate(s, JitmemSym.noop, newWriter()),
    callTemplate(s, Sym.dylibOpen, newWriter().addr(s.sym.get(Sym.dylibInstance)!).string('').u64(0)),
    callTemplate(s, Sym.dylibResolve, newWriter().addr(s.handle).lookupSet(lookups)),
    [OpCode.Hangup, 0, Uint8Array.of(0)],
    [OpCode.Result, 0, Uint8Array.of(0)],
  ];
}

/** Valid requests naming this session's real memory and services. */
function templates(
  sym: ReadonlyMap<string, number>,
  base: number,
  spare: number,
  shm: { base: number },
  handle: number,
): FrameTemplate[] {
  const session: TemplateSession = { sym, base, spare, shm, handle };
  return [
    ...memoryManagerTemplates(session),
    ...sharedMemoryTemplates(session),
    ...memoryAccessTemplates(session),
    ...dylibAndControlTemplates(session),
  ];
}

const INTERESTING_U64 = (base: number): bigint[] => [
  0n,
  1n,
  0xffn,
  0x1000n,
  0xffff_ffffn,
  1n << 32n,
  1n << 53n,
  1n << 63n,
  0xffff_ffff_ffff_ffffn,
  BigInt(base),
  BigInt(base + 4 * PAGE - 1),
];

/** One mutation of one frame, as whole frame bytes (the header may lie about the size). */
function mutate(random: () => number, frame: [number, number, Uint8Array], seq: number, base: number): Uint8Array {
  const [opcode, tag, payload] = frame;
  let p = payload.slice();
  const kind = random();
  let bytes: Uint8Array;
  if (kind < 0.1 || p.length === 0) {
    bytes = encodeFrame(opcode, seq, tag, p);
  } else if (kind < 0.5) {
    const i = Math.floor(random() * p.length);
    p[i]! ^= 1 << Math.floor(random() * 8);
    bytes = encodeFrame(opcode, seq, tag, p);
  } else if (kind < 0.65) {
    p[Math.floor(random() * p.length)] = [0, 1, 0x7f, 0x80, 0xff][Math.floor(random() * 5)]!;
    bytes = encodeFrame(opcode, seq, tag, p);
  } else if (kind < 0.8 && p.length >= 8) {
    const at = Math.floor(random() * (p.length - 7));
    const vals = INTERESTING_U64(base);
    new DataView(p.buffer).setBigUint64(at, vals[Math.floor(random() * vals.length)]!, true);
    bytes = encodeFrame(opcode, seq, tag, p);
  } else if (kind < 0.95) {
    if (random() < 0.5) p = p.subarray(0, Math.floor(random() * p.length));
    else
      p = Uint8Array.from([
        ...p,
        ...Array.from({ length: 1 + Math.floor(random() * 16) }, () => Math.floor(random() * 256)),
      ]);
    bytes = encodeFrame(opcode, seq, tag, p);
  } else {
    // The header lies: size, opcode, sequence number or tag.
    bytes = encodeFrame(opcode, seq, tag, p);
    const dv = new DataView(bytes.buffer);
    const field = Math.floor(random() * 4) * 8;
    const vals = [
      0n,
      31n,
      33n,
      BigInt(bytes.length - 1),
      BigInt(bytes.length + 1),
      1n << 21n,
      4n,
      0xffff_ffff_ffff_ffffn,
      BigInt(tag) + 16n,
    ];
    dv.setBigUint64(field, vals[Math.floor(random() * vals.length)]!, true);
  }
  return bytes;
}

async function fuzzSession(port: number, seed: number): Promise<{ sent: number; answered: number }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const s = new RawSession(socket);
  const deadline = setTimeout(() => socket.destroy(new Error('hang')), SESSION_DEADLINE_MS);
  let hung = false;
  socket.once('error', (e) => (hung = e.message === 'hang'));
  try {
    const setup = await s.next();
    if (!setup || setup.opcode !== OpCode.Setup) throw new Error('no Setup');
    const sym = decodeSetup(setup.payload).symbols;
    const mm = sym.get(Sym.memMgrInstance)!;
    const base = okAddr(
      await s.call(
        0,
        sym.get(Sym.memMgrReserve)!,
        new SpsWriter()
          .addr(mm)
          .u64(4 * PAGE)
          .finish(),
      ),
    );
    const spare = okAddr(await s.call(1, sym.get(Sym.memMgrReserve)!, new SpsWriter().addr(mm).u64(PAGE).finish()));
    const shmOut = new SpsReader(
      await s.call(
        2,
        sym.get(Sym.shmReserve)!,
        new SpsWriter()
          .addr(sym.get(Sym.shmInstance)!)
          .u64(2 * PAGE)
          .finish(),
      ),
    ).expected((r) => ({ base: r.addr(), name: r.string() }));
    if (!shmOut.ok) throw new Error(shmOut.error);
    const handle = okAddr(
      await s.call(
        3,
        sym.get(Sym.dylibOpen)!,
        new SpsWriter().addr(sym.get(Sym.dylibInstance)!).string('').u64(0).finish(),
      ),
    );
    s.resultsAfterSetup = 0;
    const random = rng(seed);
    const tpl = templates(sym, base, spare, shmOut.value, handle);
    const batch: Uint8Array[] = [];
    for (let i = 0; i < FRAMES_PER_SESSION; i++)
      batch.push(mutate(random, tpl[Math.floor(random() * tpl.length)]!, 4 + i, base));
    socket.end(Buffer.concat(batch));
    await s.closed;
    if (hung) throw new Error(`session ${seed} hung: the executor did not end it within ${SESSION_DEADLINE_MS} ms`);
    return { sent: batch.length, answered: s.resultsAfterSetup };
  } finally {
    clearTimeout(deadline);
    socket.destroy();
  }
}

test(`${PROCESSES * SESSIONS_PER_PROCESS * FRAMES_PER_SESSION} mutated frames over ${PROCESSES * SESSIONS_PER_PROCESS} sessions: no crash, no hang, no leak`, async (t) => {
  const executors = await Promise.all(Array.from({ length: PROCESSES }, startExecutor));
  t.teardown(() => executors.forEach((e) => e.kill()));
  let sent = 0;
  let answered = 0;
  await Promise.all(
    executors.map(async (e, p) => {
      for (let i = 0; i < SESSIONS_PER_PROCESS; i++) {
        const r = await fuzzSession(e.port, 1 + p * SESSIONS_PER_PROCESS + i);
        sent += r.sent;
        answered += r.answered;
      }
    }),
  );
  t.log(`${sent} mutated frames sent, ${answered} answered before the executor ended a session`);
  t.true(sent >= 10_000);
  t.true(answered > 0);
  for (const e of executors) {
    const status = await e.exit;
    // 0 when every session ended cleanly, 1 when one ended on a protocol error; never a signal.
    t.is(status.signal, null);
    t.true(status.code === 0 || status.code === 1, `exit status ${status.code}`);
    t.false(processExists(e.pid));
    t.deepEqual(shmObjects(`jitmem_${e.pid}_`), []);
  }
});
