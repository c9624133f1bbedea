import test from 'ava';
import * as native from '../native/index.js';

test('syscall failures carry the errno name as code and the syscall', (t) => {
  const err = t.throws(() => native.reserve(2 ** 52)) as Error & { code?: string; syscall?: string };
  t.is(err.code, 'ENOMEM');
  t.is(err.syscall, 'mmap');
  t.regex(err.message, /length=4503599627370496/);
  const unmappedAddr = native.reserve(native.pageSize());
  native.unmap(unmappedAddr, native.pageSize());
  t.throws(() => native.protect(unmappedAddr, native.pageSize(), native.PROT_R), { code: 'ENOMEM', message: new RegExp(unmappedAddr.toString(16)) });
  t.throws(() => native.shmOpen('/jitmem-test-does-not-exist'), { code: 'ENOENT', message: /jitmem-test-does-not-exist/ });
  t.throws(() => native.shmOpen('no-leading-slash'), { code: 'ERR_INVALID_SHM_NAME' });
});

test('shared memory: two mappings of one object see the same bytes, and nothing is left in /dev/shm', async (t) => {
  const { existsSync } = await import('node:fs');
  const name = `/jitmem-test-${process.pid}`;
  const fd = native.shmCreate(name, 8192);
  t.throws(() => native.shmCreate(name, 8192), { code: 'EEXIST' });
  const fd2 = native.shmOpen(name);
  native.shmUnlink(name);
  t.false(existsSync(`/dev/shm${name}`));
  t.is(native.fdSize(fd2), 8192);
  const a = native.mapShared(fd, 8192);
  const b = native.mapShared(fd2, 8192);
  native.closeFd(fd);
  native.closeFd(fd2);
  t.not(a, b);
  native.copyIn(a + 100, Uint8Array.of(1, 2, 3));
  const out = new Uint8Array(3);
  native.copyOut(b + 100, out);
  t.deepEqual([...out], [1, 2, 3]);
  native.unmap(a, 8192);
  native.unmap(b, 8192);
});

test('fill, move and views agree byte for byte', (t) => {
  const p = native.reserve(native.pageSize());
  native.fill(p, 64, 0x11);
  native.copyIn(p + 8, Uint8Array.of(9, 8, 7));
  native.move(p + 32, p + 8, 3);
  t.deepEqual([...native.view(p, 40).slice(30, 37)], [0x11, 0x11, 9, 8, 7, 0x11, 0x11]);
  native.unmap(p, native.pageSize());
});

test('CPU affinity: pin, read back, restore', (t) => {
  const all = native.getAffinity(0);
  t.true(all.length >= 1);
  const first = all[0]!;
  native.setAffinity(0, [first]);
  t.deepEqual(native.getAffinity(0), [first]);
  t.is(native.currentCpu(), first);
  native.setAffinity(0, all);
  t.deepEqual(native.getAffinity(0), all);
  t.throws(() => native.setAffinity(0, []), { code: 'ERR_INVALID_ARGUMENT' });
});

test('dlopen/dlsym find libc symbols and report missing libraries', (t) => {
  const self = native.dlopen('');
  t.true(native.dlsym(self, 'memcpy') > 0);
  t.is(native.dlsym(self, 'jitmem_no_such_symbol'), 0);
  t.throws(() => native.dlopen('/nonexistent/libnothing.so'), { code: 'ERR_DLOPEN', message: /libnothing/ });
});

test('native calls take at most six integer arguments, each checked', (t) => {
  t.throws(() => native.call(4096, 1, 2, 3, 4, 5, 6, 7), { code: 'ERR_TOO_MANY_ARGUMENTS' });
  t.throws(() => native.call(4096, 1.5), { code: 'ERR_INVALID_ARGUMENT' });
});

test('without the built addon, the loader throws one error that says how to build it', async (t) => {
  const { mkdtempSync, cpSync, rmSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const os = await import('node:os');
  const { fileURLToPath } = await import('node:url');
  // A copy of the compiled native shell and what it imports, with no build/ folder beside it.
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const root = mkdtempSync(path.join(os.tmpdir(), 'jitmem-noaddon-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const dir of ['native', 'core']) cpSync(path.join(dist, dir), path.join(root, 'dist', dir), { recursive: true });
  const script = `import('${path.join(root, 'dist/native/index.js')}').then((m) => m.pageSize()).then(
    () => process.exit(3),
    (e) => { console.log(JSON.stringify({ code: e.code, message: e.message })); })`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { code: string; message: string };
  t.is(out.code, 'ERR_NATIVE_NOT_BUILT');
  t.regex(out.message, /npm run install/);
  t.regex(out.message, /build\/Release\/jitmem_native\.node/);
});
