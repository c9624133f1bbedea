import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildExecutorSnapshot, bundleExecutor } from '../executor/build-snapshot.js';
import { ExecutorSession } from '../session/executor-session.js';
import { executorSnapshotArgs, snapshotStaleness, SNAPSHOT_BLOB, SNAPSHOT_ENV } from '../session/executor-snapshot.js';

// Built once for the file; other test files may build it too (renames make that safe).
test.before(() => {
  buildExecutorSnapshot();
});

test('the executor started from its snapshot serves a session: Setup, calls, its memory, the native addon', async (t) => {
  const args = executorSnapshotArgs();
  t.deepEqual(args, ['--snapshot-blob', SNAPSHOT_BLOB, '--']);
  const child = spawn(process.execPath, [...args!, '--fds', '3,4'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const session = await ExecutorSession.over(child.stdio[4] as never, child.stdio[3] as never);
  t.true(session.isJitmem);
  t.is(session.pageSize, 4096);
  await session.noop();
  // A symbol the executor finds with dlsym: its native addon was loaded after deserialization.
  const [addr] = await session.lookup(['malloc']);
  t.true(addr! > 0);
  await session.close();
  t.is(await closed, 0, stderr);
  t.is(stderr, '');
});

test('the snapshot is used only by the Node, NODE_OPTIONS and code that made it, and can be turned off', (t) => {
  t.is(snapshotStaleness(), undefined);
  t.regex(snapshotStaleness({ ...process.env, NODE_OPTIONS: '--max-old-space-size=300' })!, /built with NODE_OPTIONS=""/);
  t.is(snapshotStaleness({ ...process.env, [SNAPSHOT_ENV]: '0' }), `${SNAPSHOT_ENV}=0`);
  t.is(executorSnapshotArgs({ ...process.env, [SNAPSHOT_ENV]: '0' }), undefined);
});

test('the bundler joins the executor modules in dependency order and refuses what it cannot join', (t) => {
  const { script, files } = bundleExecutor();
  t.true(files.length >= 10);
  t.true(files[files.length - 1]!.endsWith(path.join('executor', 'main.js')));
  t.regex(script, /setDeserializeMainFunction/);
  t.notRegex(script, /^import\s/m);
  t.notRegex(script, /^export\s/m);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'a.js'), "import { b } from './b.js';\nexport const a = b;\n");
  writeFileSync(path.join(dir, 'b.js'), "import { a } from './a.js';\nexport const b = 1;\n");
  t.throws(() => bundleExecutor(path.join(dir, 'a.js')), { code: 'ERR_SNAPSHOT_BUILD', message: /import each other/ });
  writeFileSync(path.join(dir, 'c.js'), 'const c = 1;\nexport { c };\n');
  t.throws(() => bundleExecutor(path.join(dir, 'c.js')), { code: 'ERR_SNAPSHOT_BUILD', message: /exported declarations only/ });
  writeFileSync(path.join(dir, 'd.js'), "export async function d() { return import('./c.js'); }\n");
  t.throws(() => bundleExecutor(path.join(dir, 'd.js')), { code: 'ERR_SNAPSHOT_BUILD', message: /dynamic import/ });
});
