import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { validateReport, type Report, type ResultRow } from '../harness/report/report.js';
import {
  findLlvm,
  isLlvmJitlinkRace,
  stderrForMessages,
  llvmJitlinkArgs,
  parseShowTimes,
  DEFAULT_LLVM_DIR,
  JitmemExecutorScript,
} from '../harness/bench/llvm-jitlink.js';
import {
  jitmemLinkerAvailable,
  jitmemWarmCell,
  splitAtMarkers,
  WARM_CONTROLLER_WARMUP,
  type RunCell,
} from '../harness/bench/run-cells.js';
import { runPrograms, sha256Hex } from '../workloads/run-programs.js';
import { endToEndChart } from '../harness/charts/end-to-end-chart.js';
import { renderSvg } from '../harness/charts/render-chart.js';

const execFileAsync = promisify(execFile);
const cli = fileURLToPath(new URL('../harness/cli.js', import.meta.url));
const llvm = findLlvm(DEFAULT_LLVM_DIR).tools;

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-bench-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function bench(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ stdout: string; stderr: string }> {
  // Wide: these tests read whole summary lines (fitting 100 columns is the progress test's).
  return execFileAsync(process.execPath, [cli, 'bench', ...args], {
    env: { ...env, COLUMNS: '300' },
    maxBuffer: 64 << 20,
    timeout: 170_000,
  });
}

/** Every run row: verified, with phases that add up to the iteration, sample by sample. */
function checkRunRows(t: import('ava').ExecutionContext, report: Report): ResultRow[] {
  const rows = report.results.filter((r) => r.pattern === 'run');
  for (const r of rows) {
    const name = `${r.workload} ${r.linker} ${r.mapper}@${r.executor} ${r.memmgr ?? ''} ${r.controller ?? ''}`;
    t.truthy(r.verified, name);
    t.is(r.verified!.iterations, r.latency.samplesCount, name);
    t.is(r.verified!.exitStatus, 0, name);
    t.regex(r.verified!.stdoutSha256, /^[0-9a-f]{64}$/, name);
    const phases = Object.values(r.phases);
    t.true(phases.length >= 3, name);
    // jitmem's rows carry CPU time per iteration: the linker's process, and the executor's out of process.
    if (r.linker === 'jitmem') {
      t.is(r.cpu?.controller.samplesCount, r.latency.samplesCount, name);
      t.is(r.cpu!.executor === null, r.mapper === 'inprocess', name);
    }
    r.latency.samples.forEach((total, i) => {
      const sum = phases.reduce((a, p) => a + p!.samples[i]!, 0);
      t.true(
        Math.abs(sum - total) <= 0.05 * total,
        `${name} iteration ${i}: phases sum to ${sum} ms, the iteration took ${total} ms`,
      );
    });
    // The warm controller also times each whole iteration: its phases add up to that wall time.
    if (r.controller === 'warm') {
      t.is(r.iteration!.samplesCount, r.latency.samplesCount, name);
      // Means within 5%, and single iterations too but for the odd one a pause between two
      // phases stretched (a precision run has hundreds of them on a loaded machine).
      const sums = r.iteration!.samples.map((_, i) => phases.reduce((a, p) => a + p!.samples[i]!, 0));
      const meanSum = sums.reduce((a, b) => a + b, 0) / sums.length;
      t.true(
        Math.abs(meanSum - r.iteration!.mean) <= 0.05 * r.iteration!.mean,
        `${name}: phase means sum to ${meanSum} ms, the iteration's mean is ${r.iteration!.mean} ms`,
      );
      const off = r.iteration!.samples.filter((wall, i) => Math.abs(sums[i]! - wall) > 0.05 * wall).length;
      t.true(
        off <= Math.max(1, 0.05 * sums.length),
        `${name}: ${off} of ${sums.length} iterations' phases are more than 5% off their wall time`,
      );
    }
  }
  return rows;
}

/**
 * The run pattern ran unpinned, whatever --pin said for the matrix, and says so; its processes
 * per run and llvm-jitlink are sampled in rounds too, program by program, each a group of the
 * precision account, and a program's cells ran the same rounds, so that they pair.
 */
function checkRunPlacementAndSampling(
  t: ExecutionContext,
  report: Report,
  rows: readonly ResultRow[],
  stdout: string,
): void {
  t.deepEqual(report.endToEnd!.placement?.warmControllerV8Flags, ['--single-threaded-gc']);
  t.is(report.endToEnd!.placement?.warmControllerWarmup, WARM_CONTROLLER_WARMUP);
  t.true(report.endToEnd!.placement!.allowedCpus.length >= 1);
  t.regex(
    stdout,
    /End to end: not pinned \(CPU [\d,]+\); jitmem's warm controllers run with --single-threaded-gc, \d+ warm-up iterations each\./,
  );
  for (const workload of ['cray', 'python']) {
    const group = report.sampling?.groups.find((g) => g.workload === workload && g.policy === 'processes per run');
    if (!group) {
      t.fail(`no sampling group for ${workload}'s processes per run`);
      continue;
    }
    t.true(group.rounds >= 3, `${workload}: ${group.rounds} rounds`);
    const perRun = rows.filter((r) => r.workload === workload && r.controller !== 'warm');
    t.deepEqual(new Set(perRun.map((r) => r.rounds?.length)), new Set([group.rounds]), workload);
    // The warm controllers' rounds are generations of them: every warm row of the program has one per round.
    const warm = report.sampling?.groups.find((g) => g.workload === workload && g.policy === 'warm controller');
    const warmRows = rows.filter((r) => r.workload === workload && r.controller === 'warm');
    if (warm && warmRows.length) {
      t.true(warm.rounds >= 3, `${workload}: ${warm.rounds} warm rounds`);
      t.deepEqual(new Set(warmRows.map((r) => r.rounds?.length)), new Set([warm.rounds]), `${workload} warm`);
    }
  }
}

test('bench --pattern run --quick: every run row verified, phases add up, llvm-jitlink beside jitmem in every mode, the end-to-end chart drawn', async (t) => {
  const dir = tmp(t);
  const out = path.join(dir, 'run.json');
  // Precision mode (--quick's 5%) with a short budget: warm controllers stepped in rounds.
  const { stdout } = await bench(['--pattern', 'run', '--quick', '--max-time', '20', '--out', out]);
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')));
  const rows = checkRunRows(t, report);
  t.truthy(report.endToEnd);
  checkRunPlacementAndSampling(t, report, rows, stdout);
  const expectedRows = (llvm ? 12 : 0) + (jitmemLinkerAvailable() ? 12 : 0);
  t.is(rows.length, expectedRows);
  // cray's image and python's (empty) output are what their programs must print.
  const cray = runPrograms('cray')[0]!;
  for (const r of rows.filter((x) => x.workload === 'cray')) t.is(r.verified!.stdoutSha256, cray.expected.stdoutSha256);
  for (const r of rows.filter((x) => x.workload === 'python')) t.is(r.verified!.stdoutSha256, sha256Hex(''));
  if (llvm) {
    t.true(report.endToEnd!.llvm.available);
    for (const workload of ['cray', 'python']) {
      const theirs = rows.filter((r) => r.workload === workload && r.linker === 'llvm-jitlink');
      const modes = theirs
        .filter((r) => r.executor !== 'jitmem')
        .map((r) => r.memmgr ?? 'inprocess')
        .sort();
      t.deepEqual(modes, ['generic', 'inprocess', 'shared', 'simple-remote'], workload);
      // LLVM's linker driving jitmem's executor: the fourth comparison.
      t.deepEqual(
        theirs
          .filter((r) => r.executor === 'jitmem')
          .map((r) => r.memmgr)
          .sort(),
        ['shared', 'simple-remote'],
        workload,
      );
      for (const r of theirs) {
        t.deepEqual(Object.keys(r.phases).sort(), ['link', 'other', 'read', 'run'], `${workload} ${r.memmgr}`);
        t.true(r.phases.link!.p50 > 0);
      }
    }
    t.deepEqual([...new Set(report.endToEnd!.startup.map((s) => s.executor))].sort(), ['jitmem', 'llvm']);
    t.true(report.endToEnd!.headlines.some((h) => h.linker === 'llvm-jitlink' && h.workload === 'python'));
    for (const h of report.endToEnd!.headlines) {
      t.true(h.ci95[0] <= h.speedup && h.speedup <= h.ci95[1], JSON.stringify(h));
      t.regex(h.explanation, /Median time to exit/);
    }
    t.regex(stdout, /python end to end, llvm-jitlink: shared memory over RPC copy \(simple-remote\) [\d.]+x \(95% CI/);
    t.regex(
      stdout,
      /executor start-up \(spawn to Setup\): jitmem-executor's over llvm-jitlink-executor's, paired spawns \(medians [\d.]+ ms vs [\d.]+ ms\), same run: [\d.]+x \(95% CI [\d.]+–[\d.]+, \d+ rounds\), budget <= 3x/,
    );
    const html = readFileSync(path.join(dir, 'run-charts', 'index.html'), 'utf8');
    t.regex(html, /<section id="end-to-end">/);
    t.regex(html, /End to end: time to exit by transport and linker/);
    t.true(existsSync(path.join(dir, 'run-charts', 'end-to-end.png')));
    const chart = endToEndChart(report);
    t.false('reason' in chart);
    const warnings: string[] = [];
    await renderSvg((chart as { spec: Record<string, unknown> }).spec, warnings);
    t.deepEqual(warnings, []);
  } else {
    t.log(`llvm-jitlink 22 is not installed in ${DEFAULT_LLVM_DIR}: only the absence of its rows is checked`);
  }
  if (jitmemLinkerAvailable()) {
    for (const workload of ['cray', 'python']) {
      for (const controller of ['warm', 'process-per-run']) {
        const ours = rows.filter(
          (r) => r.workload === workload && r.linker === 'jitmem' && r.controller === controller,
        );
        t.deepEqual(ours.map((r) => r.mapper).sort(), ['inprocess', 'rpc', 'shared'], `${workload} ${controller}`);
        for (const r of ours) {
          t.deepEqual(Object.keys(r.phases).sort(), [
            'deinitialize',
            'initialize',
            'link',
            'read',
            'release',
            'reserve',
            'run',
            'write',
          ]);
          if (r.mapper !== 'inprocess') t.true(r.startup!.p50 > 0);
          // A warm cell starts one executor session per round (each round is a generation of controllers of its
          // own); a process per run starts one per iteration.
          if (r.mapper !== 'inprocess')
            t.is(r.startup!.samplesCount, controller === 'warm' ? r.rounds!.length : r.latency.samplesCount);
          t.is(r.wholeProcess === undefined, controller === 'warm');
        }
      }
    }
    for (const controller of ['warm', 'process-per-run'])
      t.true(
        report.endToEnd!.headlines.some(
          (h) => h.linker === 'jitmem' && h.workload === 'python' && h.controller === controller,
        ),
        controller,
      );
    t.regex(stdout, /python end to end, jitmem \(warm controller\): shared memory over RPC copy [\d.]+x \(95% CI/);
    t.regex(
      stdout,
      /jitmem time to link CPython \(read \+ link, in-process, warm controller; process per run: [\d.]+ ms\)/,
    );
  }
});

test('without LLVM the llvm-jitlink rows are absent and the output says why once', async (t) => {
  const dir = tmp(t);
  const out = path.join(dir, 'run.json');
  const missing = path.join(dir, 'no-llvm-here');
  const { stdout } = await bench(
    ['--pattern', 'run', '--quick', '--precision', 'off', '--workload', 'cray', '--out', out, '--no-charts'],
    { ...process.env, JITMEM_LLVM_DIR: missing },
  );
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')));
  checkRunRows(t, report);
  t.is(report.results.filter((r) => r.linker === 'llvm-jitlink').length, 0);
  t.false(report.endToEnd!.llvm.available);
  t.is(report.endToEnd!.llvm.dir, missing);
  t.is(stdout.split(`not found in ${missing}`).length - 1, 1, stdout);
  // No budget can be set against a figure that was not measured.
  t.false((report.budgets ?? []).some((b) => /llvm/i.test(b.label)));
  t.deepEqual([...new Set(report.endToEnd!.startup.map((s) => s.executor))], ['jitmem']);
});

test("a warm controller's stdout is cut at its markers, byte for byte", (t) => {
  const marker = Buffer.from('\0end:0123\0', 'latin1');
  const image = Buffer.from([0x50, 0x36, 0x0a, 0x00, 0xff, 0x00, 0x65]);
  const { parts, rest } = splitAtMarkers(
    Buffer.concat([image, marker, marker, Buffer.from('42\n'), marker, Buffer.from('tail')]),
    marker,
  );
  t.deepEqual(
    parts.map((p) => p.toString('latin1')),
    [image.toString('latin1'), '', '42\n'],
  );
  t.is(rest.toString(), 'tail');
});

test("a warm controller verifies every iteration over one executor session, and fails on output that is not the program's", async (t) => {
  if (!jitmemLinkerAvailable()) return t.pass();
  const cray = runPrograms('cray')[0]!;
  for (const mapper of ['inprocess', 'rpc'] as const) {
    const cell: RunCell = {
      program: cray,
      linker: 'jitmem',
      mapper,
      executor: mapper === 'inprocess' ? 'none' : 'jitmem',
      controller: 'warm',
    };
    const samples = await jitmemWarmCell(cell, 1, 3);
    t.is(samples.length, 3, mapper);
    for (const s of samples)
      t.true(s.latency > 0 && s.latency <= s.whole * 1.05, `${mapper}: ${s.latency} vs ${s.whole}`);
    const wrong: RunCell = {
      ...cell,
      program: { ...cray, expected: { ...cray.expected, stdoutSha256: sha256Hex('not the image') } },
    };
    await t.throwsAsync(
      jitmemWarmCell(wrong, 0, 2),
      { code: 'ERR_RUN_MISMATCH', message: /iteration 0: stdout has sha256 [0-9a-f]{64}, expected/ },
      mapper,
    );
  }
});

test('llvm-jitlink --show-times is read from either column layout, the first table only, in milliseconds', (t) => {
  const withUser = `===---===
  Total Execution Time: 0.0218 seconds (0.0886 wall clock)

   ---User Time---   --System Time--   --User+System--   ---Wall Time---  --- Name ---
   0.0211 ( 98.9%)   0.0000 (  0.0%)   0.0211 ( 96.8%)   0.0879 ( 99.2%)  time to execute jitlink'd code
   0.0002 (  1.0%)   0.0004 ( 89.7%)   0.0006 (  2.9%)   0.0006 (  0.7%)  time to link object files
   0.0000 (  0.1%)   0.0000 ( 10.3%)   0.0001 (  0.3%)   0.0001 (  0.1%)  time to load/add object files
   0.0213 (100.0%)   0.0005 (100.0%)   0.0218 (100.0%)   0.0886 (100.0%)  Total

   0.0211 ( 98.9%)   0.0000 (  0.0%)   0.0211 ( 96.8%)   0.9999 ( 99.2%)  time to execute jitlink'd code
`;
  const p = parseShowTimes(withUser);
  t.is(p.run, 87.9);
  t.is(p.link, 0.6);
  t.is(p.read, 0.1);
  const withoutUser = `   --System Time--   --User+System--   ---Wall Time---  --- Name ---
   0.0001 (  5.6%)   0.0001 (  5.6%)   0.0331 ( 56.2%)  time to execute jitlink'd code
   0.0011 ( 85.1%)   0.0011 ( 85.1%)   0.0257 ( 43.6%)  time to link object files
   0.0001 (  9.3%)   0.0001 (  9.3%)   0.0001 (  0.2%)  time to load/add object files
`;
  t.deepEqual(parseShowTimes(withoutUser), { read: 0.1, link: 25.7, run: 33.1 });
  // A program that calls exit() never returns to llvm-jitlink: no run timer, run is 0.
  t.deepEqual(parseShowTimes(withoutUser.split('\n').slice(0, 1).concat(withoutUser.split('\n').slice(2)).join('\n')), {
    read: 0.1,
    link: 25.7,
    run: 0,
  });
  t.throws(() => parseShowTimes('llvm-jitlink error: Symbols not found: [ XML_Parse ]\n'), { code: 'ERR_LLVM_TIMES' });
});

test('LLVM is looked for where it is said to be, and refused with the reason when missing or of another version', (t) => {
  const dir = tmp(t);
  const none = findLlvm(path.join(dir, 'nowhere'));
  t.is(none.tools, undefined);
  t.regex(none.reason!, /llvm-jitlink and llvm-jitlink-executor not found in .*nowhere/);
  // A directory with an llvm-jitlink of another LLVM.
  for (const name of ['llvm-jitlink', 'llvm-jitlink-executor']) {
    const file = path.join(dir, name);
    writeFileSync(file, '#!/bin/sh\necho "Debian LLVM version 18.1.3"\n');
    chmodSync(file, 0o755);
  }
  const other = findLlvm(dir);
  t.is(other.tools, undefined);
  t.regex(other.reason!, /is LLVM 18; the comparison is made with LLVM 22/);
});

test('llvm-jitlink gets the same objects, libraries and arguments as jitmem, in each mode', (t) => {
  const tools = { dir: '/x', jitlink: '/x/llvm-jitlink', executor: '/x/llvm-jitlink-executor', version: '22.1.8' };
  const program = {
    name: 'p',
    workload: 'p',
    description: 'p',
    files: ['a.o', 'b.a'],
    preload: ['libexpat.so.1'],
    argv: ['p', '-c', 'pass'],
    expected: { exitStatus: 0, stdoutSha256: sha256Hex('') },
  };
  t.deepEqual(llvmJitlinkArgs(tools, program, { mode: 'inprocess', executor: 'llvm' }), [
    '--show-times',
    '--preload=libexpat.so.1',
    'a.o',
    'b.a',
    '--args',
    'p',
    '-c',
    'pass',
  ]);
  t.deepEqual(llvmJitlinkArgs(tools, program, { mode: 'simple-remote', executor: 'llvm' }).slice(0, 3), [
    '--show-times',
    '--oop-executor=/x/llvm-jitlink-executor',
    '--use-memmgr=simple-remote',
  ]);
  const script = new JitmemExecutorScript();
  t.teardown(() => script.dispose());
  t.is(
    llvmJitlinkArgs(tools, program, { mode: 'shared', executor: 'jitmem', jitmemExecutor: script })[1],
    `--oop-executor=${script.path}`,
  );
  t.regex(readFileSync(script.path, 'utf8'), /jitmem-executor' "\$@"/);
  t.throws(() => llvmJitlinkArgs(tools, program, { mode: 'shared', executor: 'jitmem' }), {
    code: 'ERR_INVALID_ARGUMENT',
  });
});

test("llvm-jitlink's own race (a duplicate absolute symbol) is told apart from a refusal that stands", (t) => {
  t.true(isLlvmJitlinkRace("llvm-jitlink error: In <Absolute Symbols>, duplicate definition of symbol 'confstr'"));
  t.true(
    isLlvmJitlinkRace(
      "llvm-jitlink error: In <Absolute Symbols>, duplicate definition of symbol '__explicit_bzero_chk'\nllvm-jitlink error: Resource tracker 0x55766a7ec650 became defunct",
    ),
  );
  t.false(isLlvmJitlinkRace('llvm-jitlink error: Unsupported x86-64 relocation type R_X86_64_TLSLD'));
  t.false(isLlvmJitlinkRace("llvm-jitlink error: In main.o, duplicate definition of symbol 'main'"));
  t.false(isLlvmJitlinkRace('Symbols not found: [ __dso_handle ]'));
});

/**
 * A default bench failed once on the race: its message held the last 20 lines of stderr, all of
 * them "Resource tracker ... became defunct", so neither the reader nor the rerun (which looked at
 * those lines) saw the first, which says what happened. Shaped as that run's stderr was.
 */
test("a message keeps llvm-jitlink's first error lines when dozens of consequences follow", (t) => {
  const cause = "llvm-jitlink error: In <Absolute Symbols>, duplicate definition of symbol 'confstr'";
  const defunct = Array.from(
    { length: 40 },
    (_, i) => `llvm-jitlink error: Resource tracker 0x55ca8239e${i} became defunct`,
  );
  const stderr = [
    cause,
    ...defunct,
    '===-----===',
    '  Total Execution Time: 0.1 seconds',
    'llvm-jitlink error: JITDylib main is defunct',
  ].join('\n');
  const shown = stderrForMessages(stderr).split('\n');
  t.is(shown[0], cause);
  t.deepEqual(shown.slice(1, 3), defunct.slice(0, 2));
  t.is(shown[3], '[22 more lines]');
  t.is(shown.length, 3 + 1 + 17);
  t.is(shown.at(-1), 'llvm-jitlink error: JITDylib main is defunct');
  t.false(shown.some((l) => l.includes('Total Execution')));
  t.true(isLlvmJitlinkRace(stderr));
  t.is(stderrForMessages('one\ntwo'), 'one\ntwo');
});
