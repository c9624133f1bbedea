import { flagCommand } from './command.js';
import { booleanFlag, integerAtLeast, nonEmptyText, positiveInteger, repeatedFlag, valueFlag } from './flags.js';
import { findPythonObjects } from '../../workloads/python-objects.js';
import { buildLlvmDriver, LLVM_PRELOAD } from '../../workloads/llvm/llvm-build.js';
import {
  LINK_BUDGET_MS,
  DEFAULT_LLVM_JITLINK,
  medianSample,
  runLinkBench,
  type LinkBenchResult,
} from '../component-benches/link-bench.js';
import { median } from '../statistics.js';

const SPEC = {
  name: 'bench-link',
  usage: 'jitmem bench-link [options] [FILE...]',
  about: `The linker's benchmark: how long jitmem's linker takes to link CPython 3.11 (python.o and
libpython3.11-pic.a, or the FILEs given): read objects, resolve symbols (the executor's
symbols looked up in this process), lay out, apply relocations; the transport (allocation,
content copy, finalize) is excluded. Beside it, llvm-jitlink's "time to link object files"
for the same objects (llvm-jitlink -noexec -show-times), measured in the same run with the
rounds interleaved. The budget: no slower than llvm-jitlink in-process (${LINK_BUDGET_MS} ms on the
reference machine). Figures are printed, never asserted: the status is 0 unless the
benchmark could not run (2).`,
  flags: {
    iterations: valueFlag(
      { value: 'N', help: 'measured links after the first (cold) one (default 15)' },
      positiveInteger,
      15,
    ),
    'llvm-runs': valueFlag({ value: 'N', help: 'llvm-jitlink runs (default 7; 0 skips it)' }, integerAtLeast(0), 7),
    'llvm-jitlink': valueFlag(
      { value: 'P', help: `the llvm-jitlink binary (default ${DEFAULT_LLVM_JITLINK})` },
      nonEmptyText,
    ),
    preload: repeatedFlag(
      { value: 'LIB', help: 'a library the objects need (default for CPython: libexpat.so.1)' },
      nonEmptyText,
    ),
    'python-dir': valueFlag(
      { value: 'DIR', help: "CPython's config directory (python.o, libpython3.X-pic.a)" },
      nonEmptyText,
    ),
    llvm: booleanFlag(`link the llvm workload (LLVM 22's O2 pipeline from 52 static archives)
instead, beside the system linker's native link of the same files
(budget: no slower) and llvm-jitlink (which refuses it, saying why)`),
    json: booleanFlag('print the samples and medians as JSON'),
  },
  operands: true,
};

function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

export function formatLinkBench(r: LinkBenchResult, inputs: readonly string[]): string {
  const m = medianSample(r.samples);
  const lines = [
    `jitmem bench-link: ${inputs.join(' ')}`,
    `  ${r.stats.objects} objects, ${r.stats.sections} sections, ${r.stats.relocations} relocations, ${r.stats.gotEntries} GOT entries, ${r.stats.stubs} stubs, ${r.stats.externals} external symbols, ${r.stats.bytes} bytes laid out`,
    `  load average ${r.loadAverage.map((x) => x.toFixed(2)).join(' ')} (figures on a loaded machine are noisy; compare ratios within one run)`,
    '',
    `jitmem's linker, median of ${r.samples.length} warm links (min in brackets):`,
  ];
  const min = (k: keyof typeof m) => Math.min(...r.samples.map((s) => s[k]));
  for (const [k, name] of [
    ['readObjects', 'read objects'],
    ['resolve', 'resolve symbols'],
    ['layout', 'layout'],
    ['applyRelocations', 'apply relocations'],
  ] as const) {
    lines.push(`  ${name.padEnd(20)} ${ms(m[k]).padStart(10)}  [${ms(min(k))}]`);
  }
  lines.push(`  ${'link, wall'.padEnd(20)} ${ms(m.total).padStart(10)}  [${ms(min('total'))}]`);
  lines.push(`  ${'link, CPU (user+sys)'.padEnd(20)} ${ms(m.cpu).padStart(10)}  [${ms(min('cpu'))}]`);
  lines.push(`  ${'first link (cold)'.padEnd(20)} ${ms(r.cold.total).padStart(10)}  (CPU ${ms(r.cold.cpu)})`);
  lines.push('');
  if (r.llvm && r.llvm.length > 0) {
    const wall = median(r.llvm.map((s) => s.wall));
    const cpu = median(r.llvm.map((s) => s.cpu));
    lines.push(`llvm-jitlink -noexec, median of ${r.llvm.length} runs (min in brackets):`);
    lines.push(
      `  ${'time to link, wall'.padEnd(20)} ${ms(wall).padStart(10)}  [${ms(Math.min(...r.llvm.map((s) => s.wall)))}]`,
    );
    lines.push(
      `  ${'time to link, CPU'.padEnd(20)} ${ms(cpu).padStart(10)}  [${ms(Math.min(...r.llvm.map((s) => s.cpu)))}]`,
    );
    lines.push(`  ${'load/add objects'.padEnd(20)} ${ms(median(r.llvm.map((s) => s.loadWall))).padStart(10)}`);
    lines.push('');
    const ratio = m.total / wall;
    lines.push(
      `budget: no slower than llvm-jitlink in-process (${LINK_BUDGET_MS} ms on the reference machine; ${ms(wall)} in this run)`,
    );
    lines.push(
      `  warm: jitmem / llvm-jitlink, wall: ${ratio.toFixed(2)}x; CPU: ${(m.cpu / cpu).toFixed(2)}x -> ${ratio <= 1 ? 'within budget' : 'OVER BUDGET'}`,
    );
    const coldRatio = r.cold.total / wall;
    lines.push(
      `  cold (a process's first link, while V8 still compiles the linker): wall ${coldRatio.toFixed(2)}x; CPU ${(r.cold.cpu / cpu).toFixed(2)}x -> ${coldRatio <= 1 ? 'within budget' : 'OVER BUDGET'}`,
    );
    lines.push(
      "  (like for like: neither side counts its process's start or loading its own code; llvm-jitlink's figure is its link step, objects already added; jitmem's is read, resolve, lay out and relocate, transport excluded)",
    );
  } else {
    lines.push(`llvm-jitlink: not measured (${r.llvmSkipped ?? 'unavailable'})`);
    // The reference figure is CPython's: it says nothing of other inputs.
    if (!r.native) {
      lines.push(
        `budget: no slower than llvm-jitlink in-process, ${LINK_BUDGET_MS} ms on the reference machine -> ${m.total <= LINK_BUDGET_MS ? 'within budget' : 'OVER BUDGET'} (${ms(m.total)})`,
      );
    }
  }
  if (r.native && r.native.length > 0) {
    const native = median(r.native);
    lines.push('');
    lines.push(`the system linker, the native link of the same files, median of ${r.native.length}: ${ms(native)}`);
    lines.push(`budget: no slower than the native link -> warm ${(m.total / native).toFixed(2)}x, cold ${(r.cold.total / native).toFixed(2)}x: ${m.total <= native ? 'within budget' : 'OVER BUDGET'}`);
  }
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  lines.push(`controller peak RSS ${mb(r.peakRss)} after linking ${mb(r.inputBytes)} of inputs (${(r.peakRss / r.inputBytes).toFixed(2)}x their size)`);
  return lines.join('\n') + '\n';
}

export const benchLinkCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  const llvm = values.llvm ? buildLlvmDriver() : undefined;
  const python = operands.length === 0 && !llvm;
  const inputs = llvm
    ? [llvm.object, ...llvm.archives]
    : python
      ? [...findPythonObjects(values['python-dir'] !== undefined ? { configDir: values['python-dir'] } : {}).files]
      : operands;
  const preload =
    values.preload.length > 0 ? values.preload : python ? ['libexpat.so.1'] : llvm ? [...LLVM_PRELOAD] : [];
  const result = await runLinkBench({
    inputs,
    preload,
    iterations: values.iterations,
    llvmRuns: values['llvm-runs'],
    ...(values['llvm-jitlink'] !== undefined ? { llvmJitlink: values['llvm-jitlink'] } : {}),
    ...(llvm ? { nativeLink: llvm.nativeLink } : {}),
    progress: values.json ? undefined : (what) => io.stderr.write(`  ${what}\n`),
  });
  if (values.json) {
    io.stdout.write(
      JSON.stringify({ inputs, budgetMs: LINK_BUDGET_MS, median: medianSample(result.samples), ...result }, null, 2) +
        '\n',
    );
  } else {
    io.stdout.write(formatLinkBench(result, inputs));
  }
  return 0;
});
