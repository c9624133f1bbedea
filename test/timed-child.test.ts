import test from 'ava';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import * as native from '../native/index.js';
import { TimedChild } from '../harness/bench/timed-child.js';

/**
 * The processes the bench times are started by posix_spawn (TimedChild), not child_process:
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
  const child = new TimedChild(SH, ['-c', 'cat <&3 >&4; echo out; echo err >&2; exit 7'], [1, 2, 3, 4]);
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

test('the child has /dev/null on the fds 0-2 it was not given pipes for, and no other fd of ours', async (t) => {
  // ls and readlink are processes of their own: they list the shell's fds without adding one.
  const child = new TimedChild(SH, ['-c', 'ls /proc/$$/fd; readlink /proc/$$/fd/0 /proc/$$/fd/2'], [1]);
  const listed = collect(child.pipe(1));
  t.is((await child.closed).exitStatus, 0);
  const lines = (await listed).trim().split('\n');
  t.deepEqual(lines.slice(0, -2).sort(), ['0', '1', '2']);
  t.deepEqual(lines.slice(-2), ['/dev/null', '/dev/null']);
});

/**
 * Node ignores SIGPIPE: a child that kept that would not die writing to a closed pipe. glibc
 * resets every handler the parent had; its two internal signals (32, 33: thread cancellation and
 * set*id across threads) it leaves ignored, and installs its own handlers for them in the child
 * before their first use.
 */
test('the child starts with no signal blocked and none of signals 1-31 ignored', async (t) => {
  const child = new TimedChild('/bin/cat', ['/proc/self/status'], [1]);
  const status = collect(child.pipe(1));
  t.is((await child.closed).exitStatus, 0);
  const text = await status;
  t.regex(text, /^SigBlk:\s+0+$/m);
  const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(text)![1]}`);
  t.is(ignored & 0x7fffffffn, 0n, `SigIgn ${ignored.toString(16)}`);
});

test('a child killed by a signal says which, and kill() after the end does nothing', async (t) => {
  const self = new TimedChild(SH, ['-c', 'kill -TERM $$'], [1]);
  const a = await self.closed;
  t.is(a.exitStatus, null);
  t.is(a.signal, 'SIGTERM');

  const sleeper = new TimedChild('/bin/sleep', ['30'], [1]);
  sleeper.kill('SIGKILL');
  const b = await sleeper.closed;
  t.is(b.signal, 'SIGKILL');
  t.notThrows(() => sleeper.kill('SIGKILL'));
});

// Serial: it counts this process's fds, which the other tests open and close.
test.serial('nothing is left behind: no fd in this process, no zombie, after a run and after a failed start', async (t) => {
  const before = openFds();
  for (let i = 0; i < 5; i++) {
    const child = new TimedChild('/bin/echo', ['x'], [1, 2, 3]);
    void collect(child.pipe(1));
    await child.closed;
    // Reaped: the pid is no child of ours any more.
    t.throws(() => process.kill(child.pid, 0), { code: 'ESRCH' });
  }
  const e = t.throws(() => new TimedChild('/nonexistent/jitmem-no-such-program', [], [1, 2]));
  t.is((e as { code?: string }).code, 'ERR_SPAWN');
  t.regex(e!.message, /\/nonexistent\/jitmem-no-such-program.*ENOENT/);
  t.is(openFds(), before);
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
  t.throws(() => new TimedChild('/bin/true', [], [1]).pipe(5), { instanceOf: RangeError });
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
    await new TimedChild('/bin/true', [], []).closed;
  });
  t.log(`minor faults writing 32 MiB after a spawn: child_process ${forked}, TimedChild ${spawned}`);
  // With huge pages a fork costs one fault per 2 MiB, without them one per 4 KiB page.
  t.true(forked >= pages / 512, `child_process: ${forked} faults`);
  t.true(spawned < forked / 4, `TimedChild: ${spawned} faults against child_process's ${forked}`);
});
