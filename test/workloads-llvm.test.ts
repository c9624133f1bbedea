import test from 'ava';
import { buildLlvmDriver, LLVM_PRELOAD } from '../workloads/llvm/llvm-build.js';
import { runPrograms } from '../workloads/run-programs.js';
import { loadWorkload } from '../workloads/workload-sources.js';
import { jitmemRun } from './helpers/jitlink-run.js';

/**
 * LLVM itself as a workload: our driver of LLVM 22's O2 pipeline, linked by jitmem's linker
 * from its object and Debian's 52 static LLVM archives (thread-locals in libLLVMSupport,
 * __dso_handle, hundreds of static constructors, COMDAT template instantiations), prints what
 * its native build prints, in process and through shared memory and RPC copy. The driver is
 * built once and cached under build/ (the first run of this file pays about 20 s).
 */

const build = buildLlvmDriver();
const preload = LLVM_PRELOAD.flatMap((l) => ['--preload', l]);

test('the native llvm driver prints the O2-optimised module (the reference)', (t) => {
  t.regex(build.output, /^define noundef i32 @main\(\) local_unnamed_addr #0 \{\n {2}ret i32 285\n\}$/m);
  t.is(build.archives.length, 52);
});

for (const mapper of ['inprocess', 'shared', 'rpc']) {
  test(`jitmem run --mapper ${mapper} of the llvm workload prints what its native build prints`, async (t) => {
    const r = await jitmemRun(['--mapper', mapper, ...preload, build.object, ...build.archives], { timeoutMs: 120_000 });
    t.is(r.stderr, '');
    t.is(r.stdout.toString(), build.output);
    t.is(r.status, 0);
  });
}

test("the llvm workload's graphs are the objects its link takes, and its run program expects the native output", (t) => {
  const workload = loadWorkload('llvm');
  // About a thousand archive members, out of the archives' many thousands.
  t.true(workload.graphs.length > 500 && workload.graphs.length < 3000, `${workload.graphs.length} graphs`);
  t.true(workload.graphs.some((g) => g.name.includes('libLLVMSupport.a(')));
  const [program] = runPrograms('llvm');
  t.deepEqual(program!.files, [build.object, ...build.archives]);
  t.deepEqual(program!.preload, [...LLVM_PRELOAD]);
});
