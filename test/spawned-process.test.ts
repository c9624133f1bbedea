import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import * as native from '../native/index.js';
import { SpawnedProcess, runToEnd } from '../native/spawned-process.js';

/**
 * The processes the bench times are started by posix_spawn (SpawnedProcess), not child_process:
 * real processes here, checked for what they get (their pipes, /dev/null, no other fd, default
 * signals), how they end (status, signal, kill) and what they leave (no fd, no zombie).
 */

const SH = '/bin/sh';

function collectBytes(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (b: Buffer) => chunks.push(b));
  return new Promise((resolve) => s.once('close', () => resolve(Buffer.concat(chunks))));
}

const collect = async (s: net.Socket) => (await collectBytes(s)).toString('utf8');

const openFds = () => readdirSync('/proc/self/fd').length;

test('bytes go through every pipe both ways, and the exit status comes back', async (t) => {
  const child = new SpawnedProcess(SH, ['-c', 'cat <&3 >&4; echo out; echo err >&2; exit 7'], [1, 2, 3, 4]);
  const [out, err, echoed] = [collect(child.pipe(1)), collect(child.pipe(2)), collectBytes(child.pipe(4))];
  const sent = Buffer.from([0, 255, 1, 254, ...Buffer.from(' through fd 3 and back on fd 4')]);
  child.pipe(3).end(sent);
  const exit = await child.closed;
  t.is(exit.exitStatus, 7);
  t.is(exit.signal, null);
  t.is(await out, 'out\n');
  t.is(await err, 'err\n');
  t.deepEqual(await echoed, sent);
});

/** This process's fds that a child inherits: those without close-on-exec (O_CLOEXEC, octal 02000000). */
function inheritableFds(): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
      return (parseInt(flags, 8) & 0o2000000) === 0;
    } catch {
      return false; // the directory's own fd, closed by now
    }
  });
}

test('the child has /dev/null on the fds 0-2 it was not given pipes for, and no fd this process opened', async (t) => {
  // One of ours, open during the spawn (Node opens every fd close-on-exec).
  const ours = openSync('/proc/self/status', 'r');
  t.teardown(() => closeSync(ours));
  // ls and readlink are processes of their own: they list the shell's fds without adding one.
  const child = new SpawnedProcess(SH, ['-c', 'ls /proc/$$/fd; readlink /proc/$$/fd/0 /proc/$$/fd/2'], [1]);
  const listed = collect(child.pipe(1));
  t.is((await child.closed).exitStatus, 0);
  const lines = (await listed).trim().split('\n');
  const expected = [...new Set(['0', '1', '2', ...inheritableFds()])].sort();
  t.false(expected.includes(String(ours)));
  t.deepEqual(lines.slice(0, -2).sort(), expected);
  t.deepEqual(lines.slice(-2), ['/dev/null', '/dev/null']);
});

/**
 * Node ignores SIGPIPE: a child that kept that would not die writing to a closed pipe. glibc
 * resets every handler the parent had; its two internal signals (32, 33: thread cancellation and
 * set*id across threads) it leaves ignored, and installs its own handlers for them in the child
 * before their first use.
 */
test('the child starts with no signal blocked and none of signals 1-31 ignored', async (t) => {
  const child = new SpawnedProcess('/bin/cat', ['/proc/self/status'], [1]);
  const status = collect(child.pipe(1));
  t.is((await child.closed).exitStatus, 0);
  const text = await status;
  t.regex(text, /^SigBlk:\s+0+$/m);
  const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(text)![1]}`);
  t.is(ignored & 0x7fffffffn, 0n, `SigIgn ${ignored.toString(16)}`);
});

test('a child killed by a signal says which, and kill() after the end does nothing', async (t) => {
  const self = new SpawnedProcess(SH, ['-c', 'kill -TERM $$'], [1]);
  const a = await self.closed;
  t.is(a.exitStatus, null);
  t.is(a.signal, 'SIGTERM');

  const sleeper = new SpawnedProcess('/bin/sleep', ['30'], [1]);
  sleeper.kill('SIGKILL');
  const b = await sleeper.closed;
  t.is(b.signal, 'SIGKILL');
  t.notThrows(() => sleeper.kill('SIGKILL'));
});

// Serial: it counts this process's fds, which the other tests open and close.
test.serial(
  'nothing is left behind: no fd in this process, no zombie, after a run and after a failed start',
  async (t) => {
    // The first wait opens the reaper's epoll fd, once per process: counted from after it.
    await new SpawnedProcess('/bin/true', [], []).closed;
    const before = openFds();
    for (let i = 0; i < 5; i++) {
      const child = new SpawnedProcess('/bin/echo', ['x'], [1, 2, 3]);
      void collect(child.pipe(1));
      await child.closed;
      // Reaped: the pid is no child of ours any more.
      t.throws(() => process.kill(child.pid, 0), { code: 'ESRCH' });
    }
    const e = t.throws(() => new SpawnedProcess('/nonexistent/jitmem-no-such-program', [], [1, 2]));
    t.is((e as { code?: string }).code, 'ERR_SPAWN');
    t.regex(e!.message, /\/nonexistent\/jitmem-no-such-program.*ENOENT/);
    t.is(openFds(), before);
  },
);

test('runToEnd gathers every pipe to its end and the exit; a child past its time is described, then killed', async (t) => {
  const done = await runToEnd(SH, ['-c', 'printf out; printf err >&2; printf result >&3; exit 5'], [1, 2, 3], {
    timeoutMs: 60_000,
  });
  t.deepEqual(done.exit, { exitStatus: 5, signal: null });
  t.deepEqual(
    [...done.output].map(([fd, b]) => [fd, b.toString('utf8')]),
    [
      [1, 'out'],
      [2, 'err'],
      [3, 'result'],
    ],
  );
  t.false(done.timedOut);

  let seen = '';
  const stuck = await runToEnd('/bin/sleep', ['30'], [1], {
    timeoutMs: 200,
    beforeKill: (pid) => (seen = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()),
  });
  t.true(stuck.timedOut);
  t.deepEqual(stuck.exit, { exitStatus: null, signal: 'SIGKILL' });
  t.is(seen, 'sleep');
  t.is(stuck.output.get(1)!.length, 0);

  const e = t.throws(() => runToEnd('/nonexistent/jitmem-no-such-program', [], [1], { timeoutMs: 1000 }));
  t.is((e as { code?: string }).code, 'ERR_SPAWN');
});

test('bad arguments are typed errors naming the value', (t) => {
  t.throws(() => native.spawnChild('', ['x'], []), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => native.spawnChild('/bin/true', [], []), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => native.spawnChild('/bin/true', ['true'], [1, 1]), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /distinct fds 0-1023; got 1, 1/,
  });
  t.throws(() => native.spawnChild('/bin/true', ['true'], [-1]), { code: 'ERR_INVALID_SIZE' });
  t.throws(() => native.spawnChild('/bin/true', ['true'], [4096]), { code: 'ERR_INVALID_ARGUMENT' });
  t.throws(() => new SpawnedProcess('/bin/true', [], [1]).pipe(5), { instanceOf: RangeError });
});

/**
 * Why the bench does not use child_process for what it times: fork() makes every private page
 * of this process copy-on-write, so this process then faults on each page it writes (and the
 * kernel copied their page tables first); posix_spawn shares the address space until the exec.
 * Counted in minor faults, not timed.
 */
test("a spawn leaves this process's memory as it was; child_process's fork makes it copy-on-write", async (t) => {
  const pages = 8192; // 32 MiB, touched
  const block = Buffer.alloc(pages * 4096, 1);
  const faultsAfterWriting = async (start: () => Promise<void>) => {
    block.fill(2);
    await start();
    const before = process.resourceUsage().minorPageFault;
    block.fill(3);
    return process.resourceUsage().minorPageFault - before;
  };
  const forked = await faultsAfterWriting(
    () => new Promise<void>((resolve) => spawn('/bin/true', [], { stdio: 'ignore' }).once('close', () => resolve())),
  );
  const spawned = await faultsAfterWriting(async () => {
    await new SpawnedProcess('/bin/true', [], []).closed;
  });
  t.log(`minor faults writing 32 MiB after a spawn: child_process ${forked}, SpawnedProcess ${spawned}`);
  // With huge pages a fork costs one fault per 2 MiB, without them one per 4 KiB page.
  t.true(forked >= pages / 512, `child_process: ${forked} faults`);
  t.true(spawned < forked / 4, `SpawnedProcess: ${spawned} faults against child_process's ${forked}`);
});

/**
 * Children are reaped by one thread of the addon, not a wait per child on libuv's pool: with
 * six children alive, more than the pool's four threads, a file read still completes.
 */
test('children that stay alive hold none of the pool threads a file read needs', async (t) => {
  const sleepers = Array.from({ length: 6 }, () => new SpawnedProcess('/bin/sleep', ['20'], []));
  t.teardown(() => sleepers.forEach((c) => c.kill('SIGKILL')));
  const status = await readFile('/proc/self/status', 'utf8');
  t.regex(status, /^Pid:/m);
  for (const c of sleepers) t.notThrows(() => process.kill(c.pid, 0), `pid ${c.pid} still running`);
  for (const c of sleepers) c.kill('SIGKILL');
  const ends = await Promise.all(sleepers.map((c) => c.closed));
  t.deepEqual(
    ends.map((e) => e.signal),
    sleepers.map(() => 'SIGKILL'),
  );
});

test('a child with no pipes keeps the event loop alive until it is reaped, as a child_process one does', (t) => {
  const script = `import { SpawnedProcess } from ${JSON.stringify(new URL('../native/spawned-process.js', import.meta.url).href)};
new SpawnedProcess('/bin/sh', ['-c', 'sleep 0.2; exit 3'], []).closed.then((e) => console.log('reaped', e.exitStatus));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'reaped 3\n');
});

test("inherited fds 0-2 are the parent's own: a program reads its stdin and writes its stdout", (t) => {
  const script = `import { SpawnedProcess } from ${JSON.stringify(new URL('../native/spawned-process.js', import.meta.url).href)};
process.stdout.write('parent first\\n');
const e = await new SpawnedProcess('/bin/cat', [], [], [0, 1, 2]).closed;
process.stdout.write('cat ended with ' + e.exitStatus + '\\n');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    input: 'typed by the user\n',
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'parent first\ntyped by the user\ncat ended with 0\n');
});
