import test from 'ava';
import { buildClangDriver, LLVM_PRELOAD } from '../workloads/llvm/llvm-build.js';
import { jitmemRun } from './helpers/jitlink-run.js';

/**
 * The stretch: clang itself, JIT-linked. Our driver (workloads/llvm/clang-driver.cpp) compiles
 * cray.c with a CompilerInstance running EmitObjAction, linked by jitmem's linker from its
 * object and about 300 static archives of clang and LLVM (630 MB: 1,900 objects, two million
 * relocations); the object it writes is byte-identical to the one the same driver writes when
 * the system linker builds it. The driver is built once and cached under build/.
 */

const build = buildClangDriver();
const preload = LLVM_PRELOAD.flatMap((l) => ['--preload', l]);

test('the native clang driver compiles cray.c to an x86-64 object (the reference)', (t) => {
  t.deepEqual([...build.output.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  t.is(build.output.readUInt16LE(16), 1); // ET_REL
  t.is(build.output.readUInt16LE(18), 62); // EM_X86_64
});

// One at a time: each link reads 630 MB of archives.
for (const mapper of ['inprocess', 'shared', 'rpc']) {
  test.serial(`jitmem run --mapper ${mapper} of clang writes the object its native build writes, byte for byte`, async (t) => {
    const r = await jitmemRun(['--mapper', mapper, ...preload, build.object, ...build.archives, '--', ...build.args], { timeoutMs: 300_000 });
    t.is(r.status, 0, r.stderr);
    t.true(r.stdout.equals(build.output), `${r.stdout.length} bytes, expected ${build.output.length}`);
  });
}
