import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecutorSession, expectAddr, expectSuccess } from '../session/executor-session.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import type { MemoryMapper } from '../mappers/memory-mapper.js';
import { Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { INC_CODE, RW, incGraph } from './helpers/graphs.js';
import { EXECUTOR, LLVM_EXECUTOR, LLVM_JITLINK, llvmInstalled, shmObjects } from './helpers/executor-process.js';
import { sha256Hex } from './helpers/mapper-targets.js';
import { describeProcessTree } from '../harness/bench/process-state.js';

/**
 * Interoperability with LLVM 22 itself: our mappers drive llvm-jitlink-executor, and
 * llvm-jitlink drives our executor. Skipped, saying so, where Debian's llvm-22 is not installed.
 */

const installed = llvmInstalled();
const skipNote = `SKIPPED: LLVM 22 is not installed (${LLVM_EXECUTOR} and ${LLVM_JITLINK}); install it with 'apt-get install -y llvm-22'`;
const llvmTest = installed ? test : test.skip;
if (!installed) process.stdout.write(`llvm-interop: ${skipNote}\n`);

const mappers = [
  ['shared', (s: ExecutorSession): MemoryMapper => new SharedMemoryMapper(s)],
  ['rpc-copy', (s: ExecutorSession): MemoryMapper => new RpcCopyMapper(s)],
] as const;

async function llvmSession(t: {
  teardown(fn: () => unknown): void;
  false(v: boolean): void;
}): Promise<ExecutorSession> {
  const s = await ExecutorSession.spawn({ kind: 'llvm' });
  t.teardown(() => s.close());
  t.false(s.isJitmem);
  return s;
}

for (const [name, make] of mappers) {
  llvmTest(
    `${name} mapper → llvm-jitlink-executor: machine code runs and returns arg + 1${installed ? '' : ` (${skipNote})`}`,
    async (t) => {
      const s = await llvmSession(t);
      const mapper = make(s);
      const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
      const alloc = await manager.allocate(incGraph());
      alloc.writeContent();
      const fin = await alloc.finalize();
      for (const x of [0, 41, -7]) t.is(await s.runAsInt(fin.sectionAddress('.text'), x), x + 1);
      await mapper.close();
    },
  );

  llvmTest(
    `${name} mapper → llvm-jitlink-executor: data and zero-fill bytes land exactly${installed ? '' : ` (${skipNote})`}`,
    async (t) => {
      const s = await llvmSession(t);
      const mapper = make(s);
      const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
      const alloc = await manager.allocate(incGraph());
      alloc.writeContent();
      const fin = await alloc.finalize();
      const rw = alloc.layout.segments.find((seg) => seg.group.prot === RW.prot)!;
      const rwStart = alloc.base + rw.offset;
      const [text, rodata, data, bss] = await s.readBuffers([
        { start: fin.sectionAddress('.text'), end: fin.sectionAddress('.text') + 4 },
        { start: fin.sectionAddress('.rodata'), end: fin.sectionAddress('.rodata') + 8 },
        { start: rwStart, end: rwStart + rw.contentSize },
        { start: rwStart + rw.contentSize, end: rwStart + rw.contentSize + rw.zeroFillSize },
      ]);
      t.is(sha256Hex(text!), sha256Hex(INC_CODE));
      t.deepEqual([...rodata!], [1, 2, 3, 4, 5, 6, 7, 8]);
      t.deepEqual([...data!], new Array(24).fill(0xab));
      t.true(bss!.every((b) => b === 0));
      await mapper.close();
    },
  );

  llvmTest(
    `${name} mapper → llvm-jitlink-executor: finalize actions run at initialize and dealloc actions at deinitialize${installed ? '' : ` (${skipNote})`}`,
    async (t) => {
      // LLVM's executor has no trace action, but its release wrapper returns an SPSError and
      // has a visible effect: actions that release spare slabs show when they ran.
      const s = await llvmSession(t);
      const inst = s.symbol(Sym.memMgrInstance);
      const reserve = async (): Promise<number> =>
        expectAddr(await s.call(Sym.memMgrReserve, new SpsWriter().addr(inst).u64(4096)), 'reserve');
      const releaseArgs = (base: number): Uint8Array =>
        new SpsWriter()
          .addr(inst)
          .sequence([base], (w, b) => w.addr(b))
          .finish()
          .slice();
      const alive = async (base: number): Promise<boolean> => {
        // read_buffers would fault on an unmapped slab; ask the memory manager instead: a second
        // release of a released slab fails, and a release of a live one succeeds (and frees it).
        try {
          expectSuccess(await s.call(Sym.memMgrRelease, releaseArgs(base)), 'release');
          return true;
        } catch {
          return false;
        }
      };
      const [b1, b2, c1, c2, probe] = [
        await reserve(),
        await reserve(),
        await reserve(),
        await reserve(),
        await reserve(),
      ];
      const release = s.symbol(Sym.memMgrRelease);
      const mapper = make(s);
      const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
      const alloc = await manager.allocate(incGraph());
      alloc.writeContent();
      alloc.actions.push(
        { finalize: { fn: release, args: releaseArgs(b1) }, dealloc: { fn: release, args: releaseArgs(c1) } },
        { finalize: { fn: release, args: releaseArgs(b2) }, dealloc: { fn: release, args: releaseArgs(c2) } },
      );
      const fin = await alloc.finalize();
      t.false(await alive(b1));
      t.false(await alive(b2));
      t.true(await alive(probe));
      await manager.deallocate([fin]);
      t.false(await alive(c1));
      t.false(await alive(c2));
      await mapper.close();
    },
  );
}

const program = `#include <stdio.h>
static int counter = 5;
static int table[100];
int main(int argc, char **argv) {
  table[3] = argc;
  printf("hello from jitmem: %d\\n", counter + table[3]);
  fflush(stdout);
  return 7;
}
`;

for (const memmgr of ['generic', 'simple-remote', 'shared']) {
  llvmTest(
    `llvm-jitlink --use-memmgr=${memmgr} links a C program into \`jitmem executor --listen\` and gets its output and exit status${installed ? '' : ` (${skipNote})`}`,
    async (t) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-interop-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(path.join(dir, 'hello.c'), program);
      const cc = spawnSync('cc', ['-O1', '-fPIC', '-c', 'hello.c', '-o', 'hello.o'], { cwd: dir, encoding: 'utf8' });
      t.is(cc.status, 0, cc.stderr);

      const executor = spawn(EXECUTOR, ['--listen', '127.0.0.1:0', '--no-auth'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const executorExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        executor.once('exit', (code, signal) => r({ code, signal })),
      );
      let out = '';
      let err = '';
      executor.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      const port = await new Promise<number>((resolve, reject) => {
        executor.stdout!.setEncoding('utf8').on('data', (s: string) => {
          out += s;
          const m = /^listening on 127\.0\.0\.1:(\d+)\n/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        void executorExit.then(() => reject(new Error(`executor exited: ${err}`)));
      });
      const pid = executor.pid!;
      const jitlink = spawn(
        LLVM_JITLINK,
        [`--use-memmgr=${memmgr}`, `--oop-executor-connect=127.0.0.1:${port}`, 'hello.o'],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      t.teardown(() => {
        jitlink.kill('SIGKILL');
        executor.kill('SIGKILL');
      });
      let jitlinkErr = '';
      jitlink.stderr!.setEncoding('utf8').on('data', (s: string) => (jitlinkErr += s));
      jitlink.stdout!.resume();
      const jitlinkExit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        jitlink.once('exit', (code, signal) => r({ code, signal })),
      );
      t.deepEqual(jitlinkExit, { code: 7, signal: null }, jitlinkErr);
      t.deepEqual(await executorExit, { code: 0, signal: null }, err);
      // The program ran in the executor: its stdout is the executor's.
      t.is(out, `listening on 127.0.0.1:${port}\nhello from jitmem: 5\n`);
      t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
    },
  );
}

llvmTest(
  `llvm-jitlink --oop-executor=<jitmem executor> starts our executor over pipes, as it starts its own${installed ? '' : ` (${skipNote})`}`,
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-interop-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'hello.c'), program);
    t.is(spawnSync('cc', ['-O1', '-fPIC', '-c', 'hello.c', '-o', 'hello.o'], { cwd: dir }).status, 0);
    // llvm-jitlink runs the path with `filedescs=IN,OUT`, which `jitmem executor` also accepts.
    const wrapper = path.join(dir, 'jitmem-executor');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${EXECUTOR}" "$@"\n`, { mode: 0o755 });
    const r = spawnSync(LLVM_JITLINK, [`--oop-executor=${wrapper}`, 'hello.o'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.is(r.status, 7, r.stderr);
    t.is(r.stdout, 'hello from jitmem: 5\n');
  },
);

// Many sessions in a row, as the bench's llvm-jitlink cells run them (a fresh executor over
// two pipes for each run, each memory manager in turn), each under a watchdog: every run must end
// with the program's status and output. A run that does not end fails the test with what every
// thread of llvm-jitlink and of the executor was waiting on, instead of hanging it.
const SESSIONS_PER_MODE = 12;
llvmTest(`llvm-jitlink --oop-executor=<jitmem executor> ends every one of ${SESSIONS_PER_MODE} sessions per memory manager with the program's status${installed ? '' : ` (${skipNote})`}`, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-interop-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'hello.c'), program);
  t.is(spawnSync('cc', ['-O1', '-fPIC', '-c', 'hello.c', '-o', 'hello.o'], { cwd: dir }).status, 0);
  const wrapper = path.join(dir, 'jitmem-executor');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${EXECUTOR}" "$@"\n`, { mode: 0o755 });
  const watchdogMs = 60_000;
  for (const memmgr of ['generic', 'simple-remote', 'shared']) {
    for (let i = 0; i < SESSIONS_PER_MODE; i++) {
      const jitlink = spawn(LLVM_JITLINK, [`--oop-executor=${wrapper}`, `--use-memmgr=${memmgr}`, 'hello.o'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      jitlink.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
      jitlink.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      let stuck = '';
      const watchdog = setTimeout(() => {
        stuck = describeProcessTree(jitlink.pid!);
        jitlink.kill('SIGKILL');
      }, watchdogMs);
      // 'close': llvm-jitlink has exited and so has every holder of its stdout, the executor included.
      const status = await new Promise<number | null>((resolve) => jitlink.once('close', (code) => resolve(code)));
      clearTimeout(watchdog);
      t.is(stuck, '', `${memmgr} session ${i} did not end; its threads (tid state wait-channel [syscall fd]):\n${stuck}`);
      t.is(status, 7, `${memmgr} session ${i}: ${err}`);
      t.is(out, 'hello from jitmem: 5\n', `${memmgr} session ${i}`);
      if (stuck || status !== 7) return;
    }
  }
});

const throwingProgram = `#include <cstdio>
#include <stdexcept>
static int check(int x) {
  if (x > 2) throw std::runtime_error("too big");
  return x;
}
int main(int argc, char **argv) {
  try {
    check(argc + 5);
  } catch (const std::exception &e) {
    std::printf("caught: %s\\n", e.what());
    std::fflush(stdout);
    return 3;
  }
  return 0;
}
`;

llvmTest(
  `a C++ exception thrown and caught in JIT'd code runs through the EH frames the executor validated and registered${installed ? '' : ` (${skipNote})`}`,
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-interop-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'throw.cpp'), throwingProgram);
    const cxx = spawnSync('g++', ['-O1', '-fPIC', '-c', 'throw.cpp', '-o', 'throw.o'], { cwd: dir, encoding: 'utf8' });
    if (cxx.status !== 0 && /not found|ENOENT/.test(String(cxx.error ?? cxx.stderr))) {
      t.log('SKIPPED: no g++ here');
      t.pass();
      return;
    }
    t.is(cxx.status, 0, cxx.stderr);
    // Unwinding needs the frames registered: without them the throw ends in std::terminate (abort).
    const wrapper = path.join(dir, 'jitmem-executor');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${EXECUTOR}" "$@"\n`, { mode: 0o755 });
    const r = spawnSync(LLVM_JITLINK, [`--oop-executor=${wrapper}`, 'throw.o'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.is(r.status, 3, r.stderr);
    t.is(r.stdout, 'caught: too big\n');
  },
);
