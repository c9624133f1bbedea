import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecutorSession } from '../session/executor-session.js';
import { EXECUTOR } from './helpers/executor-process.js';

/**
 * The Unix socket's trust, both ways (issue 19): an executor refuses a socket directory another
 * user owns or can write (they could swap the socket under it), the controller refuses a socket
 * another user listens on (SO_PEERCRED), and SIGTERM removes the socket file. The hijack is
 * played by a real process of another uid.
 */

/** A uid no account uses here, for the other user. */
const OTHER_UID = 1002;

function otherUserAvailable(): string | null {
  if (process.getuid!() !== 0) return 'running as another uid needs root (setpriv)';
  const r = spawnSync('setpriv', [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', 'true']);
  return r.status === 0 ? null : `setpriv cannot switch to uid ${OTHER_UID}: ${r.stderr?.toString().trim()}`;
}

/**
 * A folder the other uid can reach: the temp directory when every folder above it lets others
 * through, else /tmp (CI gives the tests a private 0700 TMPDIR, which the impostor cannot enter).
 */
function folderOthersCanReach(): string {
  for (let dir = tmpdir(); ; dir = path.dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return '/tmp';
    if (dir === path.dirname(dir)) return tmpdir();
  }
}

function listen(socketPath: string): {
  line: Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
  kill: (s: NodeJS.Signals) => void;
} {
  const child = spawn(EXECUTOR, ['--listen', `unix:${socketPath}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  const line = new Promise<string>((resolve) => {
    child.stdout!.setEncoding('utf8').once('data', (s: string) => resolve(s));
    void exit.then(() => resolve(''));
  });
  return { line, exit, stderr: () => err, kill: (s) => child.kill(s) };
}

test('a controller refuses a socket another uid listens on, and sends it nothing', async (t) => {
  const why = otherUserAvailable();
  if (why) return t.pass(`SKIPPED: ${why}`);
  // A directory both users can write, as a shared /tmp path would be.
  const dir = mkdtempSync(path.join(folderOthersCanReach(), 'jitmem-hijack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o777);
  const socketPath = path.join(dir, 'executor.sock');
  const received = path.join(dir, 'received');
  // The impostor: answers like an executor (a Setup frame's header would follow) and records what it gets.
  const script = path.join(dir, 'impostor.cjs');
  writeFileSync(
    script,
    `const net = require('net'); const fs = require('fs');
let got = 0;
const server = net.createServer((s) => { s.on('data', (b) => { got += b.length; fs.writeFileSync(${JSON.stringify(received)}, String(got)); }); s.on('error', () => {}); });
server.listen(${JSON.stringify(socketPath)}, () => { fs.chmodSync(${JSON.stringify(socketPath)}, 0o777); fs.writeFileSync(${JSON.stringify(received)}, '0'); console.log('ready'); });
`,
    { mode: 0o644 },
  );
  const impostor = spawn(
    'setpriv',
    [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', process.execPath, script],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => impostor.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    impostor.stdout!.once('data', () => resolve());
    impostor.once('close', (code) => reject(new Error(`the impostor ended with ${code}`)));
  });
  t.is(statSync(socketPath).uid, OTHER_UID);
  const err = await t.throwsAsync(ExecutorSession.connectUnix(socketPath), { code: 'ERR_EXECUTOR_NOT_TRUSTED' });
  t.regex(err!.message, new RegExp(`runs as uid ${OTHER_UID}, not as this user`));
  await new Promise((r) => setTimeout(r, 100));
  t.is(readFileSync(received, 'utf8'), '0', 'not one byte reached the impostor');
});

test('an executor refuses a socket directory another user owns, or others can write', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'jitmem-sockdir-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const writable = path.join(root, 'writable');
  mkdirSync(writable);
  chmodSync(writable, 0o777);
  const ex = listen(path.join(writable, 'executor.sock'));
  t.deepEqual(await ex.exit, { code: 2, signal: null });
  t.regex(ex.stderr(), /can be written by other users \(mode 777\).*\[ERR_UNSAFE_SOCKET_DIR\]/);
  t.false(existsSync(path.join(writable, 'executor.sock')));
  if (process.getuid!() === 0) {
    // A directory another uid created (0700, its own): whoever owns it can swap the socket.
    const theirs = path.join(root, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, OTHER_UID, OTHER_UID);
    const ex2 = listen(path.join(theirs, 'executor.sock'));
    t.deepEqual(await ex2.exit, { code: 2, signal: null });
    t.regex(ex2.stderr(), new RegExp(`belongs to uid ${OTHER_UID}, not to this user.*\\[ERR_UNSAFE_SOCKET_DIR\\]`));
  } else {
    t.log('the directory-of-another-uid case needs root to chown; the writable-directory case ran');
  }
});

test('SIGTERM removes the socket file, and the executor exits 143', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-sigterm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'run', 'executor.sock');
  const ex = listen(socketPath);
  t.is(await ex.line, `listening on unix:${socketPath}\n`);
  t.true(existsSync(socketPath));
  ex.kill('SIGTERM');
  t.deepEqual(await ex.exit, { code: 143, signal: null });
  t.false(existsSync(socketPath), 'the socket file is gone');
});
