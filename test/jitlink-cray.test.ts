import test from 'ava';
import { buildCray, renderNativeCray } from '../workloads/cray/cray-build.js';
import { llvmInstalled, LLVM_EXECUTOR } from './helpers/executor-process.js';
import { jitmemRun } from './helpers/jitlink-run.js';

/**
 * cray, linked by jitmem's own linker and run through each mapper, renders the very image its
 * native build renders.
 */

const build = buildCray();
const native = renderNativeCray(build);

const cells: Array<[string, string[]]> = [
  ['inprocess', ['--mapper', 'inprocess']],
  ['shared, jitmem executor', ['--mapper', 'shared']],
  ['rpc, jitmem executor', ['--mapper', 'rpc']],
  ['shared, LLVM executor', ['--mapper', 'shared', '--executor', 'llvm']],
  ['rpc, LLVM executor', ['--mapper', 'rpc', '--executor', 'llvm']],
];

for (const [name, flags] of cells) {
  const needsLlvm = flags.includes('llvm');
  const run = needsLlvm && !llvmInstalled() ? test.skip : test;
  run(
    `jitmem run cray (${name}) writes the native build's image byte for byte${needsLlvm && !llvmInstalled() ? ` (SKIPPED: ${LLVM_EXECUTOR} missing)` : ''}`,
    async (t) => {
      const r = await jitmemRun([...flags, build.object, '--', build.scene]);
      t.is(r.stderr, '');
      t.is(r.status, 0);
      t.is(r.stdout.length, native.length);
      t.true(r.stdout.equals(native), 'the image differs from the native one');
    },
  );
}

test('jitmem run --show-times prints every phase after the program has ended', async (t) => {
  const r = await jitmemRun(['--mapper', 'shared', '--show-times', build.object, '--', build.scene]);
  t.is(r.status, 0);
  t.true(r.stdout.equals(native));
  for (const phase of [
    'read objects',
    'resolve symbols',
    'layout',
    'reserve',
    'write',
    'apply relocations',
    'initialize',
    'run',
    'deallocate',
  ]) {
    t.regex(r.stderr, new RegExp(`^  ${phase} +\\d+\\.\\d\\d ms$`, 'm'));
  }
});
