import test from 'ava';
import path from 'node:path';
import { findPythonObjects } from '../workloads/python-objects.js';
import { compile, jitmemRun, runNative, tempDir } from './helpers/jitlink-run.js';

/**
 * `jitmem run --argv0 NAME` sets the program's argv[0], as llvm-jitlink's -args does, so that
 * a program can start itself again. Without it argv[0] stays the first file.
 */

const RESPAWN = `
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    printf("child %s\\n", argv[2]);
    return 5;
  }
  char *args[] = { argv[0], "child", "from-parent", 0 };
  pid_t pid;
  int err = posix_spawn(&pid, argv[0], 0, 0, args, environ);
  if (err != 0) {
    printf("cannot start argv[0] again: %s\\n", strerror(err));
    return 1;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  fflush(stdout);
  printf("parent: child exited %d\\n", WEXITSTATUS(status));
  return 0;
}
`;

test('a C program that starts argv[0] again works with --argv0, in process and under shared and rpc; without it argv[0] is the object', async (t) => {
  const dir = tempDir(t);
  const object = compile(dir, 'respawn.c', RESPAWN, ['-O1', '-fPIC']);
  const native = runNative(dir, 'respawn', [object]);
  t.is(native.stdout.toString(), 'child from-parent\nparent: child exited 5\n');
  const exe = path.join(dir, 'respawn');
  // The child writes to the stdout it inherits: fds 0-2 must reach it, in process (where the
  // target clears Node's close-on-exec for the run) and in either native executor.
  const cells = [['inprocess'], ['shared', 'jitmem'], ['rpc', 'jitmem'], ['shared', 'llvm'], ['rpc', 'llvm']];
  for (const [mapper, executor] of cells) {
    const r = await jitmemRun([
      '--mapper',
      mapper!,
      ...(executor ? ['--executor', executor] : []),
      '--argv0',
      exe,
      object,
    ]);
    t.is(r.stdout.toString(), native.stdout.toString(), `${mapper}: ${r.stderr}`);
    t.is(r.status, 0);
  }
  const r = await jitmemRun(['--mapper', 'inprocess', object]);
  t.is(r.stdout.toString(), 'cannot start argv[0] again: Permission denied\n');
  t.is(r.status, 1);
});

test('CPython run with --argv0 /usr/bin/python3.11 reports it as sys.executable and starts a subprocess of itself', async (t) => {
  const python = findPythonObjects();
  const script =
    'import sys, subprocess; print(sys.executable); print(subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, text=True).stdout.strip())';
  for (const mapper of ['shared', 'rpc']) {
    const r = await jitmemRun([
      '--mapper',
      mapper,
      '--argv0',
      '/usr/bin/python3.11',
      '--preload',
      'libexpat.so.1',
      '--preload',
      'libz.so.1',
      ...python.files,
      '--',
      '-c',
      script,
    ]);
    t.is(r.stderr, '', mapper);
    t.is(r.stdout.toString(), '/usr/bin/python3.11\n42\n', mapper);
    t.is(r.status, 0);
  }
});
