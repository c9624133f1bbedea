import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as native from '../native/index.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { linkObjects } from '../jitlink/link.js';
import { linkIntoExecutor, runProgram } from '../loader/run-program.js';
import { InProcessTarget, SessionTarget } from '../loader/program-target.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { ExecutorSession } from '../session/executor-session.js';
import { compile, jitmemRun, runNative, tempDir } from './helpers/jitlink-run.js';

/**
 * Thread-local storage in JIT-linked programs: C __thread and C++ thread_local variables
 * (initialised, zeroed, arrays, with a constructor and destructor), the executor's own
 * thread-locals (errno; a preloaded library's), and a dlopen'd module's, read and written from
 * four threads, at -O0 and -O2, with and without -fPIC (so in every model: general and local
 * dynamic, initial and local exec). Each prints what its native build prints, in process and
 * through shared memory and RPC copy. A thread that existed before the program was loaded sees
 * its own initialised copy, and closing the program gives the space back.
 */

const C_THREADS = `
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__thread int counter = 5;
__thread int zeroed;
__thread long arr[8] = {1, 2, 3};
static __thread int local_static = 100;
static __thread char *name = "init";
extern __thread int other;
static void *work(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < 1000; i++) { counter++; zeroed += 2; arr[i % 8] += id; local_static--; other += 3; }
  errno = (int)id + 1;
  name = id % 2 ? "odd" : "even";
  char *buf = malloc(200);
  snprintf(buf, 200, "thread %ld: counter=%d zeroed=%d arr0=%ld arr7=%ld local=%d other=%d errno=%d %s\\n", id, counter, zeroed, arr[0], arr[7], local_static, other, errno, name);
  return buf;
}
int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)i);
  for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); fputs(r, stdout); free(r); }
  errno = 0;
  printf("main: counter=%d zeroed=%d arr2=%ld local=%d other=%d errno=%d %s\\n", counter, zeroed, arr[2], local_static, other, errno, name);
  return 0;
}
`;
const C_OTHER = '__thread int other = 7;\n';

const CXX_THREADS = `
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
static std::atomic<int> made{0};
struct Tracker {
  int id = ++made;
  std::string name = "tracker-" + std::to_string(id);
  int uses = 0;
  Tracker() { std::printf("ctor %s\\n", name.c_str()); }
  ~Tracker() { std::printf("dtor %s uses=%d\\n", name.c_str(), uses); std::fflush(nullptr); }
};
thread_local Tracker tracker;
thread_local int plain = 42;
thread_local int zero[4];
static thread_local std::string text = "abc";
int main() {
  for (int i = 0; i < 4; i++) {
    std::thread th([i] {
      tracker.uses += i + 1;
      plain += i;
      zero[i] = i * 10;
      text += std::to_string(i);
      std::printf("thread %d: %s uses=%d plain=%d zero=%d,%d text=%s\\n", i, tracker.name.c_str(), tracker.uses, plain, zero[0], zero[i], text.c_str());
    });
    th.join();
  }
  std::printf("main: plain=%d zero3=%d text=%s made=%d\\n", plain, zero[3], text.c_str(), made.load());
  return 0;
}
`;

const LIBRARY = `
__thread int lib_tls = 3;
__thread int lib_zero;
int lib_bump(int by) { lib_zero += by; return ++lib_tls + lib_zero; }
`;

const USES_LIBRARY_TLS = `
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
extern __thread int lib_tls;
static int (*bump)(int);
static void *work(void *arg) {
  long id = (long)arg;
  lib_tls += (int)id * 100;
  int r = 0;
  for (int i = 0; i < 3; i++) r = bump((int)id);
  return (void *)(long)(r * 1000 + lib_tls);
}
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW);
  if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }
  bump = (int (*)(int))dlsym(h, "lib_bump");
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)i);
  for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); printf("thread %d: %ld\\n", i, (long)r); }
  printf("main: lib_tls=%d bump=%d\\n", lib_tls, bump(1));
  return 0;
}
`;

const FLAGS: ReadonlyArray<readonly string[]> = [['-O0'], ['-O2'], ['-O0', '-fPIC'], ['-O2', '-fPIC']];
const MAPPERS = ['inprocess', 'shared', 'rpc'] as const;

for (const flags of FLAGS) {
  const label = flags.join(' ');
  test(`C __thread variables and errno from four threads (${label}) print what the native build prints`, async (t) => {
    const dir = tempDir(t);
    const objects = [compile(dir, 'threads.c', C_THREADS, flags), compile(dir, 'other.c', C_OTHER, flags)];
    const native = runNative(dir, 'threads', [...objects, '-lpthread']);
    t.regex(native.stdout.toString(), /^thread 3: counter=1005 zeroed=2000 arr0=376 .* errno=4 odd$/m);
    for (const mapper of MAPPERS) {
      const r = await jitmemRun(['--mapper', mapper, ...objects]);
      t.is(r.stderr, '', mapper);
      t.is(r.stdout.toString(), native.stdout.toString(), `${mapper}`);
      t.is(r.status, 0);
    }
  });

  test(`C++ thread_local with a constructor and destructor from four threads (${label}) prints what the native build prints`, async (t) => {
    const dir = tempDir(t);
    const object = compile(dir, 'threads.cc', CXX_THREADS, flags);
    const native = runNative(dir, 'threads', [object], true);
    t.regex(native.stdout.toString(), /^dtor tracker-4 uses=4$/m);
    for (const mapper of MAPPERS) {
      const r = await jitmemRun(['--mapper', mapper, object]);
      t.is(r.stderr, '', mapper);
      t.is(r.stdout.toString(), native.stdout.toString(), `${mapper}`);
      t.is(r.status, 0);
    }
  });

  test(`a library's thread-local reached directly and a dlopen'd module's (${label}) print what the native build prints`, async (t) => {
    const dir = tempDir(t);
    const library = path.join(dir, 'libtls.so');
    runNative(dir, 'libtls.so', [compile(dir, 'lib.c', LIBRARY, ['-O2', '-fPIC']), '-shared']);
    const object = compile(dir, 'uses.c', USES_LIBRARY_TLS, flags);
    const native = runNative(dir, 'uses', [object, library, `-Wl,-rpath,${dir}`, '-ldl', '-lpthread'], false, false, [
      library,
    ]);
    t.regex(native.stdout.toString(), /^thread 3: 315306$/m);
    for (const mapper of MAPPERS) {
      const r = await jitmemRun(['--mapper', mapper, '--preload', library, object, '--', library]);
      t.is(r.stderr, '', mapper);
      t.is(r.stdout.toString(), native.stdout.toString(), `${mapper}`);
      t.is(r.status, 0);
    }
  });
}

test("accesses to the program's own thread-locals are relaxed to local exec: GD and LD sequences with -fPIC, IE loads without", async (t) => {
  const dir = tempDir(t);
  const target = new InProcessTarget();
  const link = (flags: string[]) =>
    linkObjects([compile(dir, 'threads.c', C_THREADS, flags), compile(dir, 'other.c', C_OTHER, flags)], {
      pageSize: target.pageSize,
      lookup: (names) => target.lookup(names),
      runtimeSymbols: target.runtimeSymbols(),
    });
  // -O2 -fPIC: every access is TLSGD + a call of __tls_get_addr, or TLSLD for the static ones;
  // all are relaxed. -O2 (PIE): `other` through GOTTPOFF.
  t.true((await link(['-O2', '-fPIC'])).stats.tlsRelaxed >= 5);
  t.true((await link(['-O2'])).stats.tlsRelaxed >= 1);
});

const IN_PROCESS = `
__thread int value = 41;
__thread char big[400];
int tls_read(int add) { value += add; big[add % 400] = 1; return value; }
int main(void) { return 0; }
`;

test('a thread that existed before the program was loaded sees its own initialised copy; closing the program gives the TLS back', async (t) => {
  const dir = tempDir(t);
  const object = compile(dir, 'in-process.c', IN_PROCESS, ['-O2']);
  const worker = new Worker(new URL('./helpers/tls-thread-worker.js', import.meta.url));
  t.teardown(() => worker.terminate());
  const answers: unknown[] = [];
  let wake: (() => void) | undefined;
  worker.on('message', (m) => {
    answers.push(m);
    wake?.();
  });
  const next = async (): Promise<unknown> => {
    while (answers.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return answers.shift();
  };
  t.is(await next(), 'ready');

  const target = new InProcessTarget();
  // 30 loads of a program with a 404-byte TLS image: static TLS (a few hundred bytes to spare)
  // would run out by the third if closing did not give it back.
  for (let round = 0; round < 30; round++) {
    const mapper = new InProcessMemoryMapper();
    const loaded = await linkIntoExecutor({ inputs: [object], target, mapper });
    const fn = loaded.program.symbol('tls_read')!;
    t.is(native.callInt32(fn, 1), 42);
    t.is(native.callInt32(fn, 1), 43);
    worker.postMessage({ fn, arg: 100 });
    t.is(await next(), 141, 'the older thread starts from the initial value');
    worker.postMessage({ fn, arg: 1 });
    t.is(await next(), 142);
    t.is(native.callInt32(fn, 0), 43, 'and this thread keeps its own');
    await loaded.memory.deallocate([loaded.allocation]);
    t.true(await loaded.tls!.close());
    await loaded.memory.close();
    if (round > 0) continue;
    t.false(readFileSync('/proc/self/maps', 'utf8').includes('jitmem-tls-'), 'the TLS library is unloaded');
  }
  worker.postMessage('stop');
});

test('a TLS image larger than the static TLS the executor can give is refused with a typed error, and the session runs the next program', async (t) => {
  const dir = tempDir(t);
  const huge = compile(dir, 'huge.c', '__thread char huge[1 << 20]; int main(void) { huge[5] = 1; return huge[5]; }', [
    '-O2',
  ]);
  const small = compile(dir, 'small.c', '__thread int n = 6; int main(void) { return n * 7; }', ['-O2', '-fPIC']);
  const session = await ExecutorSession.spawn();
  const mapper = new SharedMemoryMapper(session);
  t.teardown(async () => {
    await mapper.close();
    await session.close();
  });
  const target = new SessionTarget(session);
  const err = await t.throwsAsync(runProgram({ inputs: [huge], target, mapper }), { code: 'ERR_LINK_TLS_LOAD' });
  t.regex(err!.message, /1048576-byte image/);
  t.regex(err!.message, /static TLS/);
  t.regex(err!.message, /GLIBC_TUNABLES=glibc\.rtld\.optional_static_tls=2097152/);
  const r = await runProgram({ inputs: [small], target, mapper });
  t.is(r.result.status, 42);
});

// exit() runs the calling thread's thread_local destructors first, then the atexit handlers and
// static destructors, newest first; returning from main is exit(). The thread_local's destructor
// reads a static that is still alive then.
const CXX_MAIN_THREAD_LOCAL = `
#include <cstdio>
#include <cstdlib>
struct Static {
  const char *name;
  ~Static() { std::printf("static dtor %s\\n", name); name = "destroyed"; }
};
static Static early{"early"};
struct Local {
  int uses = 0;
  Local() { std::printf("thread_local ctor\\n"); }
  ~Local() { std::printf("thread_local dtor uses=%d static=%s\\n", uses, early.name); }
};
thread_local Local local;
static void handler() { std::printf("atexit handler\\n"); }
int main(int argc, char **argv) {
  std::atexit(handler);
  local.uses = argc;
  std::printf("main\\n");
  if (argc > 1) std::exit(4);
  return 0;
}
`;

for (const how of ['returns', 'calls exit'] as const) {
  test(`a C++ thread_local of the main thread is destroyed before the atexit handlers and statics when main ${how}, as natively`, async (t) => {
    const dir = tempDir(t);
    const object = compile(dir, 'main-tls.cc', CXX_MAIN_THREAD_LOCAL, ['-O1']);
    const args = how === 'returns' ? [] : ['exit'];
    const native = runNative(dir, 'main-tls', [object], true, false, args);
    const thread = how === 'returns' ? 1 : 2;
    t.is(native.stdout.toString(), `thread_local ctor\nmain\nthread_local dtor uses=${thread} static=early\natexit handler\nstatic dtor early\n`);
    for (const mapper of MAPPERS) {
      const r = await jitmemRun(['--mapper', mapper, object, ...(args.length > 0 ? ['--', ...args] : [])]);
      t.is(r.stderr, '', mapper);
      t.is(r.stdout.toString(), native.stdout.toString(), mapper);
      t.is(r.status, native.status, mapper);
    }
  });
}
