import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { readElfObject } from '../objects/elf-object.js';
import { ExecutorSession } from '../session/executor-session.js';
import { InProcessTarget, SessionTarget, type ProgramTarget } from '../loader/program-target.js';
import { runProgram } from '../loader/run-program.js';
import { buildExportLibrary } from '../loader/export-library.js';
import { compile, tempDir } from './helpers/jitlink-run.js';
import { openExecutorTarget } from './helpers/executor-target.js';

/**
 * The remote steps of a link into an executor process: a library preloaded for one program is
 * not opened again for the next over the same session, a symbol found in the executor is not
 * looked up again (unless a library that will be closed could have given it), and a program's
 * export library travels
 * beside its finalize (built while the executor finalizes, opened right after it), so a
 * finalize that fails must take the export library back with it.
 */

/** This process's export-library files in the temporary directory. */
function exportFiles(): string[] {
  return readdirSync(tmpdir()).filter((f) => f.startsWith(`jitmem-exports-${process.pid}-`));
}

/** The lines of the executor's maps that name a jitmem export library. */
function exportMappings(pid: number): string[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('jitmem-exports-'));
}

test('a library preloaded once is not opened again over the same session; a failed preload is tried again', async (t) => {
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const target = new SessionTarget(session);
  const calls = () => session.counters().calls;
  const c0 = calls();
  await target.preload('libz.so.1');
  const c1 = calls();
  await target.preload('libz.so.1');
  t.is(c1 - c0, 1, 'the first preload opens the library');
  t.is(calls() - c1, 0, 'the second finds it open');
  const [zlibVersion] = await target.lookup(['zlibVersion']);
  t.not(zlibVersion, 0);

  for (let attempt = 0; attempt < 2; attempt++) {
    const before = calls();
    const err = await t.throwsAsync(target.preload('libjitmem-no-such-library.so'), {
      instanceOf: JitmemError,
      code: 'ERR_PRELOAD_FAILED',
    });
    t.regex(err!.message, /"libjitmem-no-such-library\.so"/);
    t.is(calls() - before, 1, `attempt ${attempt + 1} asks the executor`);
  }
});

for (const [name, Mapper] of [
  ['shared memory', SharedMemoryMapper],
  ['RPC copy', RpcCopyMapper],
] as const) {
  // Serial: the files are told apart by this process's pid only, and the other mapper's test,
  // run beside it, writes (and removes) its own export library while this one looks.
  test.serial(`${name}: a finalize the executor refuses takes the export library sent beside it back, and leaves no file`, async (t) => {
    const dir = tempDir(t);
    const { session, mapper, target } = await openExecutorTarget(t, (s) => new Mapper(s));
    // It calls dlopen, so its symbols go to an export library; its .eh_frame names a pointer
    // format the unwinder does not know, which the linker copies as it is and the executor
    // refuses at finalize.
    const object = compile(
      dir,
      'orphan.c',
      '#include <dlfcn.h>\nint jitmem_orphan_probe(void) { return 9; }\nint main(void) { return dlopen(0, RTLD_NOW) ? jitmem_orphan_probe() : 1; }',
      ['-O2', '-fPIC'],
    );
    const bytes = readFileSync(object);
    const ehFrame = readElfObject(bytes, { file: object, base: 0 }).sections.find((s) => s.name === '.eh_frame')!;
    // The first CIE: length, CIE id 0, version 1, augmentation "zR", alignments, return
    // register, augmentation data length, then the FDE pointer encoding.
    const cie = ehFrame.offset;
    t.is(bytes.readUInt32LE(cie + 4), 0);
    t.is(bytes.toString('latin1', cie + 9, cie + 12), 'zR\0');
    t.is(bytes[cie + 16], 0x1b, 'pcrel | sdata4');
    bytes[cie + 16] = 0x1d;
    writeFileSync(object, bytes);

    const filesBefore = exportFiles();
    const err = await t.throwsAsync(runProgram({ inputs: [object], target, mapper }), {
      instanceOf: JitmemError,
      code: 'ERR_INVALID_EH_FRAME',
    });
    t.regex(err!.message, /pointer format the unwinder does not know/);
    t.deepEqual(await target.lookup(['jitmem_orphan_probe']), [0], 'the export library is closed');
    t.deepEqual(exportMappings(session.pid!), []);
    t.deepEqual(exportFiles(), filesBefore);

    // The session goes on: the same program, mended, runs and exports its symbols.
    bytes[cie + 16] = 0x1b;
    writeFileSync(object, bytes);
    const ran = await runProgram({ inputs: [object], target, mapper });
    t.is(ran.result.status, 9);
    t.true(ran.times.exportSymbols > 0);
    t.deepEqual(exportFiles(), filesBefore);
  });
}

test('a symbol is looked up in the executor once per session; one not found, again after a library opens', async (t) => {
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const target = new SessionTarget(session);
  const calls = () => session.counters().calls;
  await target.lookup(['printf']); // opens the process's scope too
  let c = calls();
  const first = await target.lookup(['malloc', 'free']);
  t.is(calls() - c, 1);
  t.true(first.every((a) => a !== 0));
  c = calls();
  t.deepEqual(await target.lookup(['free', 'malloc', 'printf']), [
    first[1]!,
    first[0]!,
    (await target.lookup(['printf']))[0]!,
  ]);
  t.is(calls() - c, 0, 'every name was found before: no round trip');

  c = calls();
  t.deepEqual(await target.lookup(['jitmem_no_such_symbol']), [0]);
  t.deepEqual(await target.lookup(['jitmem_no_such_symbol']), [0]);
  t.is(calls() - c, 1, 'a name not found is not asked again while no library opens');
  // Not found until a preload defines it: the preload makes every name not found be asked again.
  t.deepEqual(await target.lookup(['zlibVersion']), [0]);
  await target.preload('libz.so.1');
  c = calls();
  const [zlibVersion] = await target.lookup(['zlibVersion']);
  t.not(zlibVersion, 0);
  t.deepEqual(await target.lookup(['jitmem_no_such_symbol']), [0]);
  t.is(calls() - c, 2);
});

for (const where of ['executor process', 'in process'] as const) {
  test(`${where}: an address a library that will be closed gave is never kept: a library openLibrary opened, an export library`, async (t) => {
    const dir = tempDir(t);
    let target: ProgramTarget;
    let calls: () => number;
    if (where === 'executor process') {
      const session = await ExecutorSession.spawn();
      t.teardown(() => session.close());
      target = new SessionTarget(session);
      calls = () => session.counters().calls;
    } else {
      target = new InProcessTarget();
      // In process a lookup is no call: the answers are what is checked.
      calls = () => 0;
    }
    const src = path.join(dir, 'probe.c');
    const lib = path.join(dir, 'libjitmemprobe.so');
    writeFileSync(src, 'int jitmem_scope_probe(void) { return 5; }\n');
    execFileSync('gcc', ['-shared', '-fPIC', '-o', lib, src], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.deepEqual(await target.lookup(['jitmem_scope_probe']), [0]);
    const handle = await target.openLibrary(lib);
    const [probe] = await target.lookup(['jitmem_scope_probe']);
    t.not(probe, 0, 'a library opened is searched, though a lookup had not found the name before');
    t.true(await target.closeLibrary(handle));
    let c = calls();
    t.deepEqual(await target.lookup(['jitmem_scope_probe']), [0], 'closed: not found, not remembered');
    if (where === 'executor process') t.is(calls() - c, 1);

    const address = 0x7000_1234_5000;
    const exports = new Map([['jitmem_export_probe', address]]);
    const file = path.join(dir, 'libjitmem-exports-probe.so');
    writeFileSync(
      file,
      buildExportLibrary('libjitmem-exports-probe.so', [{ name: 'jitmem_export_probe', address, size: 16, type: 2 }]),
    );
    await target.loadExports(file, exports);
    t.deepEqual(await target.lookup(['jitmem_export_probe']), [address]);
    await target.retireExports(exports);
    c = calls();
    t.deepEqual(await target.lookup(['jitmem_export_probe']), [0], 'retired: not found, not remembered');
    if (where === 'executor process') t.is(calls() - c, 1);

    // With nothing closable open again, what is found is kept (out of process: no round trip).
    const [malloc] = await target.lookup(['malloc']);
    c = calls();
    t.deepEqual(await target.lookup(['malloc']), [malloc!]);
    if (where === 'executor process') t.is(calls() - c, 0);
  });
}

test('two targets over one executor share its scope: what one opens to close again, the other never keeps', async (t) => {
  const dir = tempDir(t);
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const a = new SessionTarget(session);
  const b = new SessionTarget(session);
  const calls = () => session.counters().calls;
  const address = 0x7000_4321_5000;
  const exports = new Map([['jitmem_shared_scope_probe', address]]);
  const file = path.join(dir, 'libjitmem-exports-shared.so');
  writeFileSync(
    file,
    buildExportLibrary('libjitmem-exports-shared.so', [
      { name: 'jitmem_shared_scope_probe', address, size: 16, type: 2 },
    ]),
  );
  await b.loadExports(file, exports);
  t.deepEqual(await a.lookup(['jitmem_shared_scope_probe']), [address]);
  await b.retireExports(exports);
  t.deepEqual(await a.lookup(['jitmem_shared_scope_probe']), [0], "b's retired export library is not answered by a");

  // A library b preloaded is open for a too.
  await b.preload('libz.so.1');
  const c = calls();
  await a.preload('libz.so.1');
  t.is(calls() - c, 0);
});
