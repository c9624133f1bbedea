import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, EXECUTOR, processExists } from './helpers/executor-process.js';
import { compile, hasCompiler, jitmemRun, runNative, tempDir } from './helpers/jitlink-run.js';

/**
 * A JIT'd program lives in the native executor as in a process of its own (issue 19): small C
 * programs compiled here with Debian's default flags (position-independent executables) print
 * and exit under `jitmem run`, with shared memory and with RPC copy, exactly as their native
 * builds do: fork with the child's status and globals of its own, exit() from any thread,
 * threads that outlive main, SIGPIPE, fds 0-2 for children and none of the executor's.
 */

const MAPPERS = ['shared', 'rpc'] as const;

interface Case {
  readonly name: string;
  readonly source: string;
  readonly args?: readonly string[];
}

const cases: Case[] = [
  {
    name: 'fork: the child exits 7 or returns 5, its write to a global stays its own',
    source: `
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int counter = 1;
static char buffer[64] = "parent";
int main(void) {
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) { counter = 42; buffer[0] = 'P'; exit(7); }
  int st = 0;
  waitpid(p, &st, 0);
  printf("child exited %d; counter %d, buffer %s\\n", WEXITSTATUS(st), counter, buffer);
  fflush(stdout);
  pid_t q = fork();
  if (q == 0) { counter = 43; return 5; }
  waitpid(q, &st, 0);
  printf("child returned %d; counter %d\\n", WEXITSTATUS(st), counter);
  return 3;
}
`,
  },
  {
    name: 'system(): the shell it starts writes to the same stdout',
    source: `
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  fflush(stdout);
  int s = system("echo hi from the shell");
  printf("system returned %d\\n", s);
  return 0;
}
`,
  },
  {
    name: 'exit(9) from another thread ends the program with 9, after its atexit handlers and destructors',
    source: `
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void *run(void *a) { (void)a; printf("thread calls exit(9)\\n"); exit(9); }
static void handler(void) { printf("atexit handler runs\\n"); }
__attribute__((destructor)) static void fini(void) { printf("destructor runs\\n"); }
int main(void) { atexit(handler); pthread_t t; pthread_create(&t, 0, run, 0); for (;;) pause(); }
`,
  },
  {
    name: 'a thread still running when main returns is stopped, and the status is main’s',
    source: `
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static volatile long spins;
static void *spin(void *a) { (void)a; for (;;) { spins++; usleep(500); } return 0; }
int main(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, spin, 0);
  usleep(10000);
  printf("main returns with threads running\\n");
  return 4;
}
`,
  },
  {
    name: 'a PIE object (cc -c) using stdout and optarg is placed and runs',
    source: `
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int c, n = 0;
  while ((c = getopt(argc, argv, "ab:")) != -1) if (c == 'b') fprintf(stdout, "b=%s\\n", optarg); else n++;
  fprintf(stdout, "flags %d, optind %d\\n", n, optind);
  return 0;
}
`,
    args: ['-a', '-b', 'x'],
  },
  {
    name: 'children get fds 0-2 and nothing of the executor (forked and exec’d)',
    source: `
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;
}
int main(void) {
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) { printf("forked child has %d fds\\n", open_fds()); fflush(stdout); _exit(0); }
  waitpid(p, 0, 0);
  int s = system("n=0; for f in /proc/$$/fd/*; do n=$((n+1)); done; echo exec child has $n fds");
  return WEXITSTATUS(s);
}
`,
  },
];

for (const c of cases) {
  for (const mapper of MAPPERS) {
    test(`${c.name} (${mapper})`, async (t) => {
      if (!hasCompiler('gcc')) return t.pass('no gcc');
      const dir = tempDir(t, 'jitmem-process-');
      const obj = compile(dir, 'program.c', c.source, ['-O1', '-pthread']);
      const native = runNative(dir, 'program', [obj, '-pthread'], false, false, c.args ?? []);
      const r = await jitmemRun(['--mapper', mapper, obj, ...(c.args?.length ? ['--', ...c.args] : [])]);
      t.is(r.stdout.toString(), native.stdout.toString(), r.stderr);
      t.is(r.status, native.status, r.stderr);
    });
  }
}

test('writing forever into `| head -c 10` ends at once with SIGPIPE (141), as natively', async (t) => {
  if (!hasCompiler('gcc')) return t.pass('no gcc');
  const dir = tempDir(t, 'jitmem-process-');
  const obj = compile(dir, 'yes.c', '#include <stdio.h>\nint main(void) { for (;;) fputs("yes\\n", stdout); }\n', [
    '-O1',
  ]);
  const exe = path.join(dir, 'yes');
  execFileSync('gcc', [obj, '-o', exe]);
  const pipeline = (cmd: string): string =>
    execFileSync('bash', ['-c', `${cmd} 2>/dev/null | head -c 10; echo " \${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  const native = pipeline(exe);
  t.is(native, 'yes\nyes\nye 141\n');
  for (const mapper of MAPPERS)
    t.is(pipeline(`"${process.execPath}" "${CLI}" run --mapper ${mapper} "${obj}"`), native, mapper);
});

test('a forked daemon does not hold `jitmem run`: its output ends with the program while the daemon lives', async (t) => {
  if (!hasCompiler('gcc')) return t.pass('no gcc');
  const dir = tempDir(t, 'jitmem-process-');
  const pidFile = path.join(dir, 'daemon.pid');
  const obj = compile(
    dir,
    'daemon.c',
    `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) {
    setsid();
    FILE *f = fopen("${pidFile}", "w"); fprintf(f, "%d\\n", getpid()); fclose(f);
    close(0); close(1); close(2);
    sleep(45);
    _exit(0);
  }
  while (access("${pidFile}", F_OK) != 0) usleep(1000);
  printf("parent done\\n");
  return 0;
}
`,
    ['-O1'],
  );
  for (const mapper of MAPPERS) {
    const r = await jitmemRun(['--mapper', mapper, obj]);
    const daemon = Number(readFileSync(pidFile, 'utf8'));
    t.teardown(() => processExists(daemon) && process.kill(daemon, 'SIGKILL'));
    t.is(r.stdout.toString(), 'parent done\n', r.stderr);
    t.is(r.status, 0, r.stderr);
    // `jitmem run` and every pipe it had are closed, and the daemon is still there: nothing of the
    // executor (its channel, the program's stdout pipe) was held by it.
    t.true(processExists(daemon), `the daemon ${daemon} lives on`);
    process.kill(daemon, 'SIGKILL');
    execFileSync('rm', ['-f', pidFile]);
    t.false(existsSync(pidFile));
  }
});

test('the native executor is a PIE of libc, libstdc++ (with its libm) and libgcc, and imports no C++ throw', (t) => {
  const exe = EXECUTOR;
  const file = execFileSync('file', ['-L', exe], { encoding: 'utf8' });
  t.regex(file, /pie executable/);
  const libs = execFileSync('ldd', [exe], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\S+)/.exec(l)?.[1])
    .filter((l): l is string => !!l && !l.startsWith('linux-vdso') && !l.startsWith('/lib64/ld-linux'));
  t.deepEqual(libs.sort(), ['libc.so.6', 'libgcc_s.so.1', 'libm.so.6', 'libstdc++.so.6']);
  const dynamic = execFileSync('nm', ['-D', exe], { encoding: 'utf8' });
  t.notRegex(dynamic, /__cxa_throw|__cxa_allocate_exception|_Unwind_RaiseException/);
  // No copy relocation: libc's data stays in libc, where a JIT'd PIE object reaches it.
  t.notRegex(execFileSync('readelf', ['-r', exe], { encoding: 'utf8' }), /R_X86_64_COPY/);
});

test('a crash on a thread the program started says what happened and ends with 128 + N, in process and out', async (t) => {
  if (!hasCompiler('gcc')) return t.pass('no gcc');
  const dir = tempDir(t, 'jitmem-process-');
  const obj = compile(
    dir,
    'crash.c',
    `#include <pthread.h>
#include <unistd.h>
static void *boom(void *a) { (void)a; usleep(10000); *(volatile int *)16 = 1; return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, boom, 0); for (;;) pause(); }
`,
    ['-O1', '-fPIC', '-pthread'],
  );
  for (const mapper of ['inprocess', ...MAPPERS]) {
    const r = await jitmemRun(['--mapper', mapper, obj]);
    t.regex(r.stderr, /jitmem: SIGSEGV at address 0x10 outside the program's thread/, mapper);
    // In process the controller dies of the signal itself (a shell says 139); the executor exits 139.
    if (mapper === 'inprocess') t.is(r.signal, 'SIGSEGV', mapper);
    else t.is(r.status, 139, mapper);
  }
});

test('abort() ends the program with SIGABRT as natively, and says so, in process and out', async (t) => {
  if (!hasCompiler('gcc')) return t.pass('no gcc');
  const dir = tempDir(t, 'jitmem-process-');
  const obj = compile(
    dir,
    'abort.c',
    '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { printf("about to abort\\n"); fflush(stdout); abort(); }\n',
    ['-O1', '-fPIC'],
  );
  for (const mapper of ['inprocess', ...MAPPERS]) {
    const r = await jitmemRun(['--mapper', mapper, obj]);
    t.is(r.stdout.toString(), 'about to abort\n', mapper);
    t.regex(r.stderr, /jitmem: the program called abort\(\) \(SIGABRT\)/, mapper);
    // In process the controller ends with the program (one process); out of process `jitmem run` reports 128 + 6.
    if (mapper === 'inprocess') t.is(r.signal, 'SIGABRT', mapper);
    else t.is(r.status, 134, mapper);
  }
});
