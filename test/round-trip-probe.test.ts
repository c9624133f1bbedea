import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { RoundTripProbeSession, roundTripBudget } from '../harness/bench/round-trip-probe.js';
import { validateReport } from '../harness/report/report.js';
import { eventually, processExists, shmObjects } from './helpers/executor-process.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../harness/cli.js', import.meta.url));

test('the round-trip probe takes its blocks when asked, over one executor, and ends it when done', async (t) => {
  const probe = await RoundTripProbeSession.open();
  const pid = probe.executorPid!;
  t.true(processExists(pid));
  // Three blocks at three moments, the executor idle between them.
  for (let i = 0; i < 3; i++) {
    await probe.block();
    t.is(probe.blocks, i + 1);
    await new Promise((r) => setTimeout(r, 50));
  }
  const figures = await probe.finish();
  t.is(figures.samples, 150);
  t.is(figures.blockRatios.length, 3);
  for (const x of [figures.noopUs, figures.finalizeUs, figures.controllerFinalizeUs, ...figures.blockRatios])
    t.true(Number.isFinite(x) && x > 0, String(x));
  t.true(await eventually(() => !processExists(pid)), `executor ${pid} still running`);
  // Its executor's objects only: test files run side by side make and remove their own.
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  // Its budget line: the statistic of every ratio over the blocks, with their count.
  const budget = roundTripBudget(figures);
  t.is(budget.rounds, 3);
  t.regex(budget.label, /150 each in blocks of 50 taken through the run/);
});

test('a probe ended by kill() leaves no executor behind', async (t) => {
  const probe = await RoundTripProbeSession.open();
  const pid = probe.executorPid!;
  await probe.block();
  probe.kill();
  t.true(await eventually(() => !processExists(pid)), `executor ${pid} still running`);
});

test('bench --probe: the round-trip budget judged over 20 blocks of 50 pairs, taken between the groups and after them', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'r.json');
  const { stdout } = await run(
    process.execPath,
    [cli, 'bench', '--workload', 'cray', '--pattern', 'load,update', '--mapper', 'inprocess,shared,rpc'].concat([
      '--time',
      '50',
      '--iterations',
      '2',
      '--probe',
      '--no-charts',
      '--out',
      out,
    ]),
    { maxBuffer: 16 << 20, env: { ...process.env, COLUMNS: '300' } },
  );
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')));
  const budget = report.budgets?.find((b) => b.label.startsWith('sequential remote finalize'));
  t.truthy(budget, stdout);
  t.is(budget!.rounds, 20);
  t.truthy(budget!.ci95);
  t.regex(budget!.label, /1000 each in blocks of 50 taken through the run/);
  t.regex(stdout, /sequential remote finalize of a one-page graph/);
});
