import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { R, W } from '../graph/alloc-group.js';
import * as native from '../native/index.js';
import { ExecutorSession, decodeResult, expectAddr } from '../session/executor-session.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { Sym } from '../protocol/setup.js';
import { SpsWriter } from '../protocol/sps.js';
import { eventually, processExists, shmObjects } from './helpers/executor-process.js';
import { traceArgs } from './helpers/graphs.js';

/** When either process dies, the other notices, and nothing is left behind. */

const PAGE = 4096;

async function shmReserveRaw(s: ExecutorSession, bytes: number): Promise<{ base: number; name: string }> {
  const out = await s.call(Sym.shmReserve, new SpsWriter().addr(s.symbol(Sym.shmInstance)).u64(bytes));
  const r = decodeResult(out, 'Reserve', (r) => r.expected((r) => ({ base: r.addr(), name: r.string() })));
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

test('SIGKILL of the executor mid-stream: every pending call rejects with ERR_EXECUTOR_LOST, none hangs; no process, no /dev/shm object left', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.kill());
  const pid = s.pid!;
  // Shared-memory objects whose names the controller never opened: only cleanup can remove them.
  for (let i = 0; i < 3; i++) await shmReserveRaw(s, 16 * PAGE);
  const mapper = new SharedMemoryMapper(s);
  await mapper.reserve(16 * PAGE);
  t.is(shmObjects(`jitmem_${pid}_`).length, 3);
  const big = expectAddr(
    await s.call(Sym.memMgrReserve, new SpsWriter().addr(s.symbol(Sym.memMgrInstance)).u64(1 << 20)),
    'reserve',
  );

  let answered = 0;
  let killedAt = 0;
  const rejections: Array<{ code: string | undefined; after: number }> = [];
  /** Every pending call must settle once the executor is gone: one that has not after this long hangs. */
  const HANG_MS = 30_000;
  const worker = async (): Promise<void> => {
    for (;;) {
      try {
        await s.checksum([{ start: big, end: big + (1 << 20) }]);
        answered++;
      } catch (err) {
        rejections.push({ code: (err as { code?: string }).code, after: Date.now() - killedAt });
        return;
      }
    }
  };
  const workers = Array.from({ length: 32 }, worker);
  await eventually(() => answered >= 200, 30_000);
  killedAt = Date.now();
  s.kill('SIGKILL');
  let watchdog: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (watchdog = setTimeout(() => resolve('hung'), HANG_MS)));
  const settled = await Promise.race([Promise.all(workers).then(() => 'settled' as const), hung]);
  clearTimeout(watchdog);
  t.is(settled, 'settled', `calls still pending ${HANG_MS} ms after the kill`);
  t.true(answered >= 200);
  t.is(rejections.length, 32);
  for (const r of rejections) {
    t.is(r.code, 'ERR_EXECUTOR_LOST');
  }
  t.log(`the last call rejected ${Math.max(...rejections.map((r) => r.after))} ms after the kill`);
  t.deepEqual(await s.exited(), { code: null, signal: 'SIGKILL' });
  t.false(processExists(pid));
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  await t.throwsAsync(s.checksum([{ start: big, end: big + 1 }]), { code: 'ERR_EXECUTOR_LOST' });
});

test('SIGKILL of the controller: the executor notices, exits by itself and leaves nothing in /dev/shm', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-faults-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sessionModule = fileURLToPath(new URL('../session/executor-session.js', import.meta.url));
  const setupModule = fileURLToPath(new URL('../protocol/setup.js', import.meta.url));
  const spsModule = fileURLToPath(new URL('../protocol/sps.js', import.meta.url));
  const script = path.join(dir, 'controller.mjs');
  writeFileSync(
    script,
    `import { ExecutorSession } from ${JSON.stringify(sessionModule)};
import { Sym } from ${JSON.stringify(setupModule)};
import { SpsWriter } from ${JSON.stringify(spsModule)};
const s = await ExecutorSession.spawn();
for (let i = 0; i < 3; i++) await s.call(Sym.shmReserve, new SpsWriter().addr(s.symbol(Sym.shmInstance)).u64(65536));
await s.call(Sym.memMgrReserve, new SpsWriter().addr(s.symbol(Sym.memMgrInstance)).u64(65536));
process.stdout.write(s.pid + '\\n');
setInterval(() => {}, 1000);
`,
  );
  const controller = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let executorPid = 0;
  t.teardown(() => {
    controller.kill('SIGKILL');
    if (executorPid && processExists(executorPid)) process.kill(executorPid, 'SIGKILL');
  });
  executorPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    controller.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    controller.once('exit', () => reject(new Error('controller exited early')));
  });
  t.true(executorPid > 0);
  t.is(shmObjects(`jitmem_${executorPid}_`).length, 3);
  const controllerExit = new Promise((r) => controller.once('exit', r));
  controller.kill('SIGKILL');
  await controllerExit;
  t.true(
    await eventually(() => !processExists(executorPid), 10_000),
    'the executor is still running 10 s after its controller died',
  );
  t.deepEqual(shmObjects(`jitmem_${executorPid}_`), []);
});

test('when the controller hangs up, the executor runs the pending dealloc actions in reverse before it exits 0', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.kill());
  const { base, name } = await shmReserveRaw(s, 2 * PAGE);
  // Watch the executor's memory through a mapping of our own, which outlives the executor.
  const fd = native.shmOpen(name);
  native.shmUnlink(name);
  const local = native.mapShared(fd, 2 * PAGE);
  native.closeFd(fd);
  t.teardown(() => native.unmap(local, 2 * PAGE));
  const inst = s.symbol(Sym.shmInstance);
  const trace = s.symbol('jitmem_trace_action');
  const init = async (addr: number, actions: Array<[number, number]>) =>
    expectAddr(
      await s.call(
        Sym.shmInitialize,
        new SpsWriter()
          .addr(inst)
          .addr(base)
          .sharedMemoryFinalizeRequest({
            segments: [{ group: R | W, addr, size: PAGE }],
            actions: actions.map(([f, d]) => ({
              finalize: { fn: trace, args: traceArgs(base, 16, f) },
              dealloc: { fn: trace, args: traceArgs(base, 16, d) },
            })),
          }),
      ),
      'Initialize',
    );
  await init(base, []);
  await init(base + PAGE, [
    [1, 11],
    [2, 12],
  ]);
  const log = (): number[] => {
    const v = new BigUint64Array(native.view(local, 8 * 17).slice().buffer);
    return [...v.subarray(1, 1 + Number(v[0]))].map(Number);
  };
  t.deepEqual(log(), [1, 2]);
  await s.close();
  t.deepEqual(await s.exited(), { code: 0, signal: null });
  t.deepEqual(log(), [1, 2, 12, 11]);
});

test('SIGTERM: the executor cleans up its memory and shm names before it exits', async (t) => {
  const s = await ExecutorSession.spawn();
  t.teardown(() => s.kill());
  const pid = s.pid!;
  for (let i = 0; i < 2; i++) await shmReserveRaw(s, 16 * PAGE);
  t.is(shmObjects(`jitmem_${pid}_`).length, 2);
  s.kill('SIGTERM');
  t.deepEqual(await s.exited(), { code: 143, signal: null });
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
});
