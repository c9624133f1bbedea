import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { CLI, eventually, shmObjects } from './helpers/executor-process.js';
import { compile, hasCompiler, tempDir } from './helpers/jitlink-run.js';

/**
 * Nothing outlives the controller (issue 19): `jitmem run` killed by SIGINT, SIGTERM, SIGHUP or
 * SIGKILL while its program runs in the executor leaves no executor, no program and no
 * /dev/shm object behind. The first three go to the program, and `jitmem run` exits with its
 * status (128 + N); SIGKILL gives it no say, and the executor ends by its parent-death signal.
 */

/** The program runs in the executor: its pid is the executor's. */
const PROGRAM = `
#include <stdio.h>
#include <unistd.h>
int main(void) {
  printf("%d\\n", getpid());
  fflush(stdout);
  for (;;) sleep(1);
}
`;

/** Gone, or a zombie nobody reaps yet (it runs nothing and holds nothing). */
function gone(pid: number): boolean {
  const status = `/proc/${pid}/status`;
  if (!existsSync(status)) return true;
  try {
    return /^State:\s+Z/m.test(readFileSync(status, 'utf8'));
  } catch {
    return true;
  }
}

const SIGNALS = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
  ['SIGKILL', null],
] as const;

for (const mapper of ['shared', 'rpc'] as const) {
  for (const [signal, status] of SIGNALS) {
    test(`jitmem run --mapper ${mapper} killed by ${signal}: no executor, program or shm object is left`, async (t) => {
      if (!hasCompiler('gcc')) return t.pass('no gcc');
      const dir = tempDir(t, 'jitmem-death-');
      const obj = compile(dir, 'forever.c', PROGRAM, ['-O1']);
      const run = spawn(process.execPath, [CLI, 'run', '--mapper', mapper, obj], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      run.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        run.once('close', (code, sig) => r({ code, signal: sig })),
      );
      const executor = await new Promise<number>((resolve) => {
        let out = '';
        run.stdout!.setEncoding('utf8').on('data', (s: string) => {
          out += s;
          if (out.includes('\n')) resolve(Number(out.trim()));
        });
        void exit.then(() => resolve(-1));
      });
      t.teardown(() => {
        if (executor > 0 && !gone(executor)) process.kill(executor, 'SIGKILL');
      });
      t.true(executor > 0, stderr);
      t.not(executor, run.pid, 'the program runs in the executor, not in jitmem run');
      run.kill(signal);
      const ended = await exit;
      if (status === null) t.deepEqual(ended, { code: null, signal: 'SIGKILL' });
      else t.deepEqual(ended, { code: status, signal: null }, stderr);
      t.true(await eventually(() => gone(executor)), `the executor ${executor} is gone`);
      t.true(
        await eventually(() => shmObjects(`jitmem_${executor}_`).length === 0),
        'no shm object of the executor is left',
      );
    });
  }
}
