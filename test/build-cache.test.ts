import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildOutputsOnce, placeBuildOutput } from '../workloads/build-cache.js';

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

test('outputs are built once: written under temporaries of their own, put in place, left alone when all are there; a failed build leaves no file', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-build-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const outputs = [path.join(dir, 'key', 'cray.o'), path.join(dir, 'key', 'cray')];
  let builds = 0;
  const build = (temporaries: readonly string[]) => {
    builds++;
    t.deepEqual(
      temporaries,
      outputs.map((f) => `${f}.${process.pid}.tmp`),
    );
    temporaries.forEach((f, i) => writeFileSync(f, `output ${i}`));
  };
  buildOutputsOnce(outputs, build);
  buildOutputsOnce(outputs, build);
  t.is(builds, 1);
  t.deepEqual(
    outputs.map((f) => readFileSync(f, 'utf8')),
    ['output 0', 'output 1'],
  );
  t.deepEqual(readdirSync(path.join(dir, 'key')).sort(), ['cray', 'cray.o']);
  // One output missing: built again; the one in place keeps its file.
  const inode = statSync(outputs[0]!).ino;
  rmSync(outputs[1]!);
  buildOutputsOnce(outputs, build);
  t.is(builds, 2);
  t.is(statSync(outputs[0]!).ino, inode);
  // A build that fails half-way: its error, and no temporary left.
  const failing = [path.join(dir, 'other', 'a'), path.join(dir, 'other', 'b')];
  const err = t.throws(() =>
    buildOutputsOnce(failing, ([a]) => {
      writeFileSync(a!, 'half');
      throw new Error('compiler failed');
    }),
  );
  t.is(err?.message, 'compiler failed');
  t.deepEqual(readdirSync(path.join(dir, 'other')), []);
});
