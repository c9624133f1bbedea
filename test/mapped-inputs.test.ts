import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';
import { MappedInputs } from '../loader/mapped-inputs.js';
import { InProcessTarget } from '../loader/program-target.js';
import { runProgram } from '../loader/run-program.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { mapFile, mappedFileFaulted, pageSize } from '../native/index.js';
import { compile, tempDir } from './helpers/jitlink-run.js';

/**
 * A link's inputs mapped instead of read (loader/mapped-inputs.ts, native/src/mapped_file.cc):
 * the bytes are the file's; a file cut short under the mapping reads as zeros instead of killing
 * the process with SIGBUS, and the loader refuses what was linked from a file that changed.
 */

const NATIVE = new URL('../native/index.js', import.meta.url).href;

function pattern(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

test('mapFile gives the file’s bytes; a page cut off by truncation reads as zeros and is reported, and the process lives', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'three-pages.bin');
  const page = pageSize();
  const content = pattern(3 * page + 100);
  writeFileSync(file, content);
  const fd = openSync(file, 'r');
  t.teardown(() => closeSync(fd));
  const view = mapFile(fd, content.length)!;
  t.truthy(view);
  t.deepEqual(Buffer.from(view), content);
  t.false(mappedFileFaulted(view));
  truncateSync(file, page);
  t.is(view[10], content[10], 'the page the file kept still reads its bytes');
  t.is(view[2 * page + 5], 0, 'a page the file lost reads as zero, not SIGBUS');
  t.is(view[3 * page + 99], 0, 'and so does the rest of the mapping');
  t.true(mappedFileFaulted(view));
});

test('a SIGBUS outside every guarded mapping still ends the process, as it did before the guard', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'shared.bin');
  writeFileSync(file, pattern(3 * 4096));
  // The guard is installed (a guarded mapping first), then an unguarded shared mapping is cut short and touched.
  const script = `
    import { openSync, truncateSync } from 'node:fs';
    const native = await import(${JSON.stringify(NATIVE)});
    const fd = openSync(${JSON.stringify(file)}, 'r+');
    native.mapFile(fd, 4096);
    const address = native.mapShared(fd, 3 * 4096, native.PROT_R);
    const view = native.view(address, 3 * 4096);
    truncateSync(${JSON.stringify(file)}, 0);
    console.log(view[2 * 4096]);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  t.is(r.signal, 'SIGBUS', `status ${r.status}, stderr ${r.stderr}`);
  t.is(r.stdout, '');
});

test('MappedInputs maps an object; checkUnchanged passes while the file stays as mapped', (t) => {
  const dir = tempDir(t);
  const object = compile(dir, 'main.c', 'int main(void) { return 3; }\n', ['-O2']);
  const inputs = new MappedInputs();
  const bytes = inputs.read(object);
  t.deepEqual(Buffer.from(bytes), readFileSync(object));
  t.notThrows(() => inputs.checkUnchanged());
});

test('checkUnchanged refuses a file written, grown or cut short since it was mapped, naming it', (t) => {
  const dir = tempDir(t);
  const cases: { name: string; change: (file: string) => void; why: RegExp }[] = [
    { name: 'grown', change: (f) => appendFileSync(f, 'more'), why: /its size went from \d+ to \d+ bytes/ },
    {
      name: 'cut short and touched',
      change: (f) => truncateSync(f, 64),
      why: /pages of it were cut off|its size went from/,
    },
    {
      name: 'rewritten in place',
      change: (f) => {
        const fd = openSync(f, 'r+');
        try {
          writeFileSync(fd, Buffer.from([0x7f]));
        } finally {
          closeSync(fd);
        }
      },
      why: /it was written/,
    },
  ];
  for (const c of cases) {
    const object = compile(dir, `${c.name.replace(/\W/g, '-')}.c`, 'int f(void) { return 1; }\n', ['-O0']);
    const inputs = new MappedInputs();
    const bytes = inputs.read(object);
    // A modification time later than the mapping's, whatever the file system's clock granularity.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    c.change(object);
    if (c.name === 'cut short and touched') t.is(bytes[bytes.length - 1], 0, 'the lost page reads as zero');
    const err = t.throws(() => inputs.checkUnchanged(), { instanceOf: JitmemError }, c.name);
    t.is(err?.code, 'ERR_INPUT_CHANGED', c.name);
    t.regex(
      err?.message ?? '',
      new RegExp(`${path.basename(object).replace('.', '\\.')} changed while it was being linked`),
    );
    t.regex(err?.message ?? '', c.why, c.name);
  }
});

test('MappedInputs refuses what reading refuses, with the same errors (no such file, a FIFO, a directory)', (t) => {
  const dir = tempDir(t);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const inputs = new MappedInputs();
  for (const [file, message] of [
    [path.join(dir, 'missing.o'), /cannot read object file .*missing\.o: no such file/],
    [fifo, /object file .*fifo is a FIFO/],
    [dir, /is a directory; expected a regular file/],
  ] as const) {
    const err = t.throws(() => inputs.read(file), { instanceOf: JitmemError });
    t.is(err?.code, 'ERR_OBJECT_UNREADABLE');
    t.regex(err?.message ?? '', message);
  }
});

test('an empty input is read, not mapped, and refused as reading refuses it', (t) => {
  const dir = tempDir(t);
  const empty = path.join(dir, 'empty.o');
  writeFileSync(empty, '');
  const inputs = new MappedInputs();
  const err = t.throws(() => inputs.read(empty), { instanceOf: JitmemError });
  t.is(err?.code, 'ERR_OBJECT_UNKNOWN_FORMAT');
  t.regex(err?.message ?? '', /the file is empty/);
});

test('a link whose input changes while it links is refused (ERR_INPUT_CHANGED) and its program does not run', async (t) => {
  const dir = tempDir(t);
  const marker = path.join(dir, 'ran');
  const object = compile(
    dir,
    'main.c',
    `#include <stdio.h>\nint main(void) { FILE *f = fopen(${JSON.stringify(marker)}, "w"); if (f) fclose(f); return 7; }\n`,
    ['-O2'],
  );
  // The executor's symbols (fopen, fclose) are looked up after the inputs are read: the file
  // grows then, as if a build wrote it while the link ran.
  class WritingTarget extends InProcessTarget {
    override async lookup(names: readonly string[]): Promise<number[]> {
      appendFileSync(object, 'x');
      return super.lookup(names);
    }
  }
  const err = await t.throwsAsync(
    runProgram({ inputs: [object], target: new WritingTarget(), mapper: new InProcessMemoryMapper() }),
    { instanceOf: JitmemError },
  );
  t.is(err?.code, 'ERR_INPUT_CHANGED');
  t.regex(err?.message ?? '', /main\.o changed while it was being linked \(its size went from \d+ to \d+ bytes\)/);
  t.false(existsSync(marker), 'the program did not run');
  // Written again, the same file links and runs.
  const fresh = compile(dir, 'again.c', `int main(void) { return 7; }\n`, ['-O2']);
  const run = await runProgram({ inputs: [fresh], target: new InProcessTarget(), mapper: new InProcessMemoryMapper() });
  t.is(run.result.status, 7);
});

test('a file replaced or removed under its path since it was mapped is refused too', (t) => {
  const dir = tempDir(t);
  const replaced = compile(dir, 'replaced.c', 'int f(void) { return 1; }\n', ['-O0']);
  const removed = compile(dir, 'removed.c', 'int g(void) { return 2; }\n', ['-O0']);
  for (const [file, change, why] of [
    [
      replaced,
      () => renameSync(compile(dir, 'other.c', 'int h(void) { return 3; }\n', ['-O0']), replaced),
      /its path names another file now/,
    ],
    [removed, () => rmSync(removed), /it was removed/],
  ] as const) {
    const inputs = new MappedInputs();
    const bytes = inputs.read(file);
    change();
    t.is(bytes[0], 0x7f, 'the mapped bytes stay what was mapped');
    const err = t.throws(() => inputs.checkUnchanged(), { instanceOf: JitmemError });
    t.is(err?.code, 'ERR_INPUT_CHANGED');
    t.regex(err?.message ?? '', why);
  }
});

const MAPPED_INPUTS = new URL('../loader/mapped-inputs.js', import.meta.url).href;

/**
 * `count` reads of one object through one MappedInputs in a fresh process (its own guard table),
 * under `ulimit -n openFiles`; then `report`, a JS expression over `views`, printed.
 */
function readManyTimes(t: Parameters<typeof tempDir>[0], count: number, openFiles: number, report: string): string {
  const object = compile(tempDir(t), 'one.c', 'int one(void) { return 1; }\n', ['-O2']);
  const script = `
    const { MappedInputs } = await import(${JSON.stringify(MAPPED_INPUTS)});
    const inputs = new MappedInputs();
    const views = [];
    for (let i = 0; i < ${count}; i++) views.push(inputs.read(${JSON.stringify(object)}));
    inputs.checkUnchanged();
    console.log(${report});
  `;
  const shell = `ulimit -n ${openFiles} && exec "$0" --input-type=module -e "$1"`;
  const r = spawnSync('bash', ['-c', shell, process.execPath, script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the reading process exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

test('no descriptor is kept per input: 300 inputs map under a limit of 64 open files', (t) => {
  const mapped = '!Buffer.isBuffer(v) && v[0] === 0x7f';
  t.is(readManyTimes(t, 300, 64, `views.length, views.every((v) => ${mapped})`), '300 true');
});

test('past the 4,096 mappings the guard holds, an input is read instead, with the same bytes', (t) => {
  const report =
    'views.findIndex((v) => Buffer.isBuffer(v)), views.filter((v) => Buffer.isBuffer(v)).length, ' +
    'views.every((v) => Buffer.compare(v, views[0]) === 0)';
  t.is(readManyTimes(t, 4100, 1024, report), '4096 4 true');
});
