import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { placeBuildOutput } from '../workloads/build-cache.js';

test('a build output is put in place only where none is; the one in place keeps its file, and the temporary is gone either way', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-build-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const final = path.join(dir, 'cray.o');
  writeFileSync(path.join(dir, 'a.tmp'), 'first build');
  placeBuildOutput(path.join(dir, 'a.tmp'), final);
  t.is(readFileSync(final, 'utf8'), 'first build');
  t.false(existsSync(path.join(dir, 'a.tmp')));
  // A second process finished the same build after the first: a reader of `final` keeps its file.
  const inode = statSync(final).ino;
  writeFileSync(path.join(dir, 'b.tmp'), 'second build');
  placeBuildOutput(path.join(dir, 'b.tmp'), final);
  t.is(statSync(final).ino, inode);
  t.is(readFileSync(final, 'utf8'), 'first build');
  t.false(existsSync(path.join(dir, 'b.tmp')));
  // Any other failure is thrown, and still leaves no temporary behind.
  writeFileSync(path.join(dir, 'c.tmp'), 'x');
  const err = t.throws(() => placeBuildOutput(path.join(dir, 'c.tmp'), path.join(dir, 'no-such-dir', 'cray.o')));
  t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  t.false(existsSync(path.join(dir, 'c.tmp')));
});
