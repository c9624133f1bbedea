import test from 'ava';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { ExecutorSession } from '../session/executor-session.js';
import { SessionTarget } from '../loader/program-target.js';
import { runProgram } from '../loader/run-program.js';
import { llvmInstalled, processExists, shmObjects } from './helpers/executor-process.js';
import { compile, jitmemRun, tempDir } from './helpers/jitlink-run.js';

/**
 * How programs end: a segfault is a crash reported with its address (never a hang), exit()
 * from anywhere ends the program with its status after its atexit handlers, the program has
 * a normal 8 MiB stack, and nothing is left behind: no executor, no shm object, no file.
 */

const SEGV = `
#include <stdio.h>
int main(void) { volatile int *p = (int *)0x1234; puts("about to crash"); fflush(stdout); return *p; }
`;
const EXIT = `
#include <stdio.h>
#include <stdlib.h>
static void handler(void) { puts("atexit handler ran"); }
__attribute__((noinline)) static void leave(int status) { printf("leaving with %d\\n", status); exit(status); }
int main(int argc, char **argv) { atexit(handler); leave(argc > 1 ? atoi(argv[1]) : 0); puts("not reached"); return 99; }
`;
const BIG_STACK = `
#include <stdio.h>
#include <string.h>
__attribute__((noinline)) static unsigned touch(volatile char *p, size_t n) { unsigned s = 0; for (size_t i = 0; i < n; i += 4096) { p[i] = (char)i; s += p[i]; } return s; }
int main(void) { char big[6 << 20]; printf("6 MiB on the stack: %u\\n", touch(big, sizeof big) != 1); return 0; }
`;
const OVERFLOW = `
#include <stdio.h>
__attribute__((noinline)) static int down(volatile char *prev, int n) { volatile char frame[4096]; frame[0] = (char)n; return down(frame, n + 1) + prev[0]; }
int main(void) { char c = 0; puts("recursing"); fflush(stdout); return down(&c, 0); }
`;

for (const mapper of ['inprocess', 'shared', 'rpc']) {
  test(`a segfaulting program is reported as a crash with its address (${mapper})`, async (t) => {
    const dir = tempDir(t);
    const obj = compile(dir, 'segv.c', SEGV, ['-O0', '-fPIC']);
    const r = await jitmemRun(['--mapper', mapper, obj]);
    t.is(r.stdout.toString(), 'about to crash\n');
    t.regex(r.stderr, /^jitmem run: the program crashed: SIGSEGV at address 0x1234 \(instruction at 0x[0-9a-f]+\)\n$/);
    t.is(r.status, 128 + 11);
  });

  test(`exit() from a nested function ends the program with its status after atexit handlers (${mapper})`, async (t) => {
    const dir = tempDir(t);
    const obj = compile(dir, 'exit.c', EXIT, ['-O2', '-fPIC']);
    const zero = await jitmemRun(['--mapper', mapper, obj]);
    t.is(zero.stdout.toString(), 'leaving with 0\natexit handler ran\n');
    t.is(zero.status, 0);
    const five = await jitmemRun(['--mapper', mapper, obj, '--', '5']);
    t.is(five.stdout.toString(), 'leaving with 5\natexit handler ran\n');
    t.is(five.status, 5);
    t.is(five.stderr, '');
  });
}

test('the program runs on an 8 MiB stack, and overflowing it is a crash, not a hang', async (t) => {
  const dir = tempDir(t);
  const big = compile(dir, 'big.c', BIG_STACK, ['-O1', '-fPIC']);
  for (const mapper of ['inprocess', 'shared']) {
    const r = await jitmemRun(['--mapper', mapper, big]);
    t.is(r.stdout.toString(), '6 MiB on the stack: 1\n', mapper);
    t.is(r.status, 0);
  }
  const overflow = compile(dir, 'overflow.c', OVERFLOW, ['-O1', '-fPIC']);
  for (const mapper of ['inprocess', 'rpc']) {
    const r = await jitmemRun(['--mapper', mapper, overflow], { timeoutMs: 60_000 });
    t.is(r.stdout.toString(), 'recursing\n');
    t.regex(r.stderr, /the program crashed: SIGSEGV at address 0x[0-9a-f]+/);
    t.is(r.status, 139, mapper);
  }
});

test('after a crash, an exit and a run that loads libraries, no executor, shm object or temporary file is left', async (t) => {
  const dir = tempDir(t);
  const exitObj = compile(dir, 'exit.c', EXIT, ['-O2', '-fPIC']);
  const segv = compile(dir, 'segv.c', SEGV, ['-O0', '-fPIC']);
  // A program that calls dlopen gets an export library, written to a temporary file.
  const dl = compile(
    dir,
    'dl.c',
    '#include <dlfcn.h>\n#include <stdio.h>\nint exported_value = 42;\nint main(void) { void *h = dlopen(0, RTLD_NOW); printf("%d\\n", h != 0); return 0; }',
    ['-O2', '-fPIC'],
  );
  const exports = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`jitmem-exports-${process.pid}-`));

  const session = await ExecutorSession.spawn();
  const pid = session.pid!;
  const mapper = new SharedMemoryMapper(session);
  const target = new SessionTarget(session);
  const ran = await runProgram({ inputs: [dl], target, mapper });
  t.is(ran.result.status, 0);
  t.true(ran.times.exportSymbols > 0);
  const exited = await runProgram({ inputs: [exitObj], target, mapper, args: ['3'] });
  t.deepEqual({ status: exited.result.status, outcome: exited.result.outcome }, { status: 3, outcome: 'exited' });
  const crashed = await runProgram({ inputs: [segv], target, mapper });
  t.is(crashed.result.outcome, 'crashed');
  t.is(crashed.result.faultAddress, 0x1234);
  t.is(crashed.result.status, 139);
  await mapper.close();
  await session.close();
  t.false(processExists(pid));
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  t.deepEqual(exports(), []);
});

const llvmTest = llvmInstalled() ? test : test.skip;
llvmTest("under LLVM's executor, exit() ends the executor process and its status is jitmem's", async (t) => {
  const dir = tempDir(t);
  const obj = compile(
    dir,
    'bye.c',
    '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { puts("bye"); exit(7); }',
    ['-O2', '-fPIC'],
  );
  for (const mapper of ['shared', 'rpc']) {
    const r = await jitmemRun(['--executor', 'llvm', '--mapper', mapper, obj]);
    t.is(r.stdout.toString(), 'bye\n');
    t.is(r.status, 7, mapper);
    t.is(r.stderr, '');
  }
});
