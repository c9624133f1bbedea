import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { validateReport } from '../harness/report/report.js';
import { openHandle } from '../harness/bench/mapper-handles.js';
import { presetSelection } from '../harness/bench/matrix.js';
import { runBench } from '../harness/bench/run-bench.js';
import { CorruptingMapper } from './helpers/corrupting-mapper.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../harness/cli.js', import.meta.url));
const repoDir = path.resolve(path.dirname(cli), '../..');

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-bench-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The CLI as a log runs it, but wide: these tests read what the summary says, whole lines and
 * every column; fitting 100 columns is the progress test's.
 */
async function bench(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [cli, 'bench', ...args], {
    cwd: repoDir,
    maxBuffer: 16 << 20,
    env: { ...process.env, COLUMNS: '300' },
  });
}

test('jitmem bench writes a report that validates against schema 1, with every phase and mapper', async (t) => {
  const out = path.join(tmp(t), 'report.json');
  const { stdout } = await bench(['--quick', '--time', '50', '--iterations', '3', '--out', out]);
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')), out);
  t.is(report.schema, 1);
  t.deepEqual([...new Set(report.results.map((r) => `${r.workload}/${r.mapper}`))].sort(), [
    'cray/dualmap',
    'cray/inprocess',
    'cray/rpc',
    'cray/shared',
    'python/dualmap',
    'python/inprocess',
    'python/rpc',
    'python/shared',
  ]);
  for (const r of report.results) {
    t.deepEqual(Object.keys(r.phases).sort(), ['deinitialize', 'initialize', 'prepare', 'release', 'reserve', 'write']);
    t.true(r.latency.samplesCount >= 3);
    t.is(r.latency.samples.length, r.latency.samplesCount);
    t.true(r.bytes.content > 0);
    // Phases are shares of the iteration: their means sum to the latency's mean (to rounding).
    const phaseMeans = Object.values(r.phases).reduce((a, st) => a + st!.mean, 0);
    t.true(
      Math.abs(phaseMeans - r.latency.mean) <= 0.02 * r.latency.mean,
      `${r.workload}/${r.mapper}: phases sum to ${phaseMeans} ms, iteration ${r.latency.mean} ms`,
    );
    // The per-operation latency is a figure of its own: python keeps ~180 finalizes per iteration.
    // CPU time beside wall time, one sample per iteration, in both processes out of process.
    t.is(r.cpu!.controller.samplesCount, r.latency.samplesCount);
    t.true(r.cpu!.controller.mean > 0);
    if (r.executor === 'none') t.is(r.cpu!.executor, null);
    else
      t.true(
        r.cpu!.executor!.samplesCount === r.latency.samplesCount && r.cpu!.executor!.mean > 0,
        `${r.workload}/${r.mapper}: executor cpu ${JSON.stringify(r.cpu!.executor?.mean)}`,
      );
    t.true(
      r.operationLatency!.initialize!.perIteration >= 1 &&
        r.operationLatency!.initialize!.count >= r.latency.samplesCount,
    );
  }
  t.true(py0(report, 'shared').operationLatency!.initialize!.perIteration > 100);
  // RPC copy moves the content across the process boundary; shared memory does not.
  const py = (m: string) => report.results.find((r) => r.workload === 'python' && r.mapper === m)!;
  t.true(py('rpc').bytes.moved >= py('rpc').bytes.content);
  t.true(py('shared').bytes.moved < py('shared').bytes.content / 20);
  t.is(py('inprocess').bytes.moved, 0);
  t.is(py('dualmap').bytes.moved, 0);
  t.is(py('dualmap').executor, 'none');
  t.true(
    report.ratios.some(
      (r) =>
        r.workload === 'python' &&
        r.mapper === 'shared' &&
        r.baseline === 'rpc' &&
        r.ci95[0] <= r.speedup &&
        r.speedup <= r.ci95[1],
    ),
  );
  // The fixed walk was timed before every round of every group (the matrix only: no run pattern here).
  const speed = report.sampling!.machineSpeed!;
  const rounds = report.sampling!.groups.reduce((n, g) => n + g.rounds, 0);
  t.true(rounds >= 2 * 3, `rounds ${rounds}`);
  t.is(speed.series.length, rounds);
  t.deepEqual(
    speed.parts.map((p) => [p.part, p.samples]),
    [['matrix', rounds]],
  );
  for (const s of speed.series)
    t.true(s.part === 'matrix' && s.wallMs > 0 && s.cpuMs > 0 && s.cpuMs <= s.wallMs * 1.02 + 0.05, JSON.stringify(s));
  const w = speed.parts[0]!.wallMs;
  t.true(w.min <= w.p5 && w.p5 <= w.p50 && w.p50 <= w.p95 && w.p95 <= w.max && speed.parts[0]!.spread >= 1);
  t.regex(
    stdout,
    new RegExp(`machine speed: a walk over 4 MiB.*timed before the rounds of the matrix \\(n = ${rounds}\\)`),
  );
  t.regex(stdout, /report: .*report\.json/);
  t.regex(stdout, /extra time of shared memory over in-process.*budget <= 8 ms/);
  t.regex(stdout, /extra time of RPC copy over in-process.*budget <= 8 ms/);
  t.true(report.env.cpus >= 1 && report.env.pageSize === 4096);
  // By default controller and executor share one CPU, one the process may run on, and ran there.
  const p = report.env.placement;
  t.is(p.pin, 'same');
  t.is(p.controllerCpus.length, 1);
  t.deepEqual(p.executorCpus, p.controllerCpus);
  t.true(os.cpus().length > p.controllerCpus[0]!);
  t.deepEqual(p.controllerSeenOn, p.controllerCpus);
  t.regex(
    stdout,
    new RegExp(
      `controller on CPU ${p.controllerCpus[0]}, executor allowed on CPU ${p.controllerCpus[0]} \\(--pin same\\)`,
    ),
  );
});

function py0(report: { results: Array<{ workload: string; mapper: string }> }, mapper: string) {
  return report.results.find(
    (r) => r.workload === 'python' && r.mapper === mapper,
  ) as import('../harness/report/report.js').ResultRow;
}

for (const mapper of ['inprocess', 'dualmap', 'shared', 'rpc'] as const) {
  test(`the integrity check bites: one byte flipped after write fails the run, naming the cell and the address (${mapper})`, async (t) => {
    let corrupter: CorruptingMapper | undefined;
    const err = await t.throwsAsync(
      runBench({
        selection: { ...presetSelection('quick'), workloads: ['cray'], mappers: [mapper], time: 20, iterations: 2 },
        preset: 'custom',
        seed: 1,
        cold: false,
        pin: 'none',
        granularity: 1 << 26,
        workloadOptions: {},
        repoDir,
        openHandle: async (m, e, o) => {
          const h = await openHandle(m, e, o);
          corrupter = new CorruptingMapper(h.memoryMapper);
          return { ...h, memoryMapper: corrupter };
        },
      }),
      { code: 'ERR_INTEGRITY' },
    );
    t.truthy(corrupter?.flipped);
    t.regex(err!.message, new RegExp(`cell cray/load/${mapper}`));
    t.true(err!.message.includes(`address 0x${corrupter!.flipped!.toString(16)}`), err!.message);
  });
}

test('a churn run on python shows both fit policies: peak reserved, peak live and fragmentation side by side', async (t) => {
  const out = path.join(tmp(t), 'churn.json');
  const { stdout } = await bench([
    '--workload',
    'python',
    '--pattern',
    'churn',
    '--mapper',
    'inprocess',
    '--policy',
    'first-fit,best-fit',
    '--time',
    '50',
    '--iterations',
    '2',
    '--granularity',
    String(16 << 20),
    '--out',
    out,
  ]);
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')));
  t.deepEqual(report.results.map((r) => r.policy).sort(), ['best-fit', 'first-fit']);
  for (const r of report.results) {
    t.true(r.slab!.peakLiveBytes > 0);
    t.true(r.slab!.peakReservedBytes >= r.slab!.peakLiveBytes);
    t.true((r.slabSeries?.length ?? 0) > 10);
  }
  t.regex(stdout, /fit policies under churn/);
  t.regex(stdout, /peak reserved MiB\s+peak live MiB\s+mean fragmentation/);
  t.regex(stdout, /python\s+inprocess\s+first-fit/);
  t.regex(stdout, /python\s+inprocess\s+best-fit/);
});

test('bad flags are refused with a message and status 2', async (t) => {
  const cases: Array<[string[], string]> = [
    [['--mapper', 'carrier-pigeon'], 'ERR_INVALID_OPTION_VALUE'],
    [['--pin', 'left'], 'ERR_INVALID_OPTION_VALUE'],
    [['--time', '-3'], 'ERR_INVALID_OPTION_VALUE'],
    [['--quick', '--full'], 'ERR_CONFLICTING_OPTIONS'],
    [['--frobnicate'], 'ERR_UNKNOWN_OPTION'],
  ];
  for (const [args, code] of cases) {
    const err = await t.throwsAsync(bench(args));
    t.is((err as { code?: number }).code, 2, args.join(' '));
    t.regex((err as { stderr?: string }).stderr ?? '', new RegExp(`jitmem bench: [\\s\\S]*\\[${code}\\]`));
  }
});
