import test from 'ava';
import { readFileSync } from 'node:fs';
import * as native from '../native/index.js';
import {
  MachineSpeedMonitor,
  machineSpeedLine,
  summarizeMachineSpeed,
  type MachineSpeedPart,
  type MachineSpeedSample,
} from '../harness/bench/machine-speed.js';
import { validateReport } from '../harness/report/report.js';
import { renderSummary } from '../harness/bench/summary.js';

const baseline = new URL('../../reports/baseline.json', import.meta.url);
const WORK = 'a walk over 4 MiB, one byte of each 64-byte line read and written, 24 passes';

function samples(walls: readonly number[], cpuShare = 1, part: MachineSpeedPart = 'matrix'): MachineSpeedSample[] {
  return walls.map((wallMs, i) => ({ atMs: i * 100, wallMs, cpuMs: wallMs * cpuShare, part }));
}

test('the walk is timed for real: the same 4 MiB and 24 passes each time, its CPU time within its wall time', (t) => {
  const walks = Array.from({ length: 8 }, () => native.machineSpeedWalk());
  for (const w of walks) {
    t.is(w.bytes, 4 << 20);
    t.is(w.passes, 24);
    t.true(w.wallNs > 0 && w.cpuNs > 0, JSON.stringify(w));
    // A thread's CPU clock cannot run ahead of the wall clock (a clock tick of slack).
    t.true(w.cpuNs <= w.wallNs * 1.02 + 50_000, JSON.stringify(w));
    // 24 x 65,536 lines read and written: no machine does that in under 10 us, so the loop ran.
    t.true(w.wallNs > 10_000, JSON.stringify(w));
  }
});

test('the monitor keeps every timing in order with its part, and states no part below five timings', (t) => {
  const m = new MachineSpeedMonitor();
  for (let i = 0; i < 4; i++) m.sample('run');
  t.is(m.summary(), undefined);
  for (let i = 0; i < 5; i++) m.sample('matrix');
  const s = m.summary()!;
  t.is(s.work, WORK);
  // The run pattern's four timings are kept in the series, but give no figures of their own.
  t.deepEqual(
    s.series.map((x) => x.part),
    [...Array<string>(4).fill('run'), ...Array<string>(5).fill('matrix')],
  );
  t.deepEqual(
    s.parts.map((p) => [p.part, p.samples]),
    [['matrix', 5]],
  );
  for (let i = 1; i < 9; i++) t.true(s.series[i]!.atMs >= s.series[i - 1]!.atMs);
});

test('the figures: percentiles of the wall time (type 7), their ratio, and the timings that waited for the CPU', (t) => {
  // 20 timings: 1.0 ms ... 2.9 ms in steps of 0.1; two of them with half their time off the CPU.
  const walls = Array.from({ length: 20 }, (_, i) => 1 + i / 10);
  const series = samples(walls).map((s, i) => (i === 3 || i === 7 ? { ...s, cpuMs: s.wallMs / 2 } : s));
  const m = summarizeMachineSpeed(WORK, series)!;
  const p = m.parts[0]!;
  t.is(m.parts.length, 1);
  t.is(p.samples, 20);
  t.is(p.wallMs.min, 1);
  t.is(p.wallMs.max, 2.9);
  // Type 7: h = 19 q; 5th percentile 1 + 0.95 x 0.1, 95th 1 + 18.05 x 0.1, median 1.95.
  t.is(p.wallMs.p5, 1.095);
  t.is(p.wallMs.p95, 2.805);
  t.is(p.wallMs.p50, 1.95);
  t.is(p.spread.toFixed(6), (2.805 / 1.095).toFixed(6));
  t.is(p.waitedForCpu, 2);
  t.deepEqual(m.series[3], { atMs: 300, wallMs: 1.3, cpuMs: 0.65, part: 'matrix' });
  t.is(summarizeMachineSpeed(WORK, series.slice(0, 4)), undefined);
});

test('the parts are stated apart, in the order they ran', (t) => {
  const run = samples([5, 5.2, 4.8, 5.1, 4.9, 8], 1, 'run');
  const matrix = samples([2.5, 2.6, 2.4, 2.5, 2.7], 1, 'matrix');
  const m = summarizeMachineSpeed(WORK, [...run, ...matrix])!;
  t.deepEqual(
    m.parts.map((p) => [p.part, p.samples, p.wallMs.p50]),
    [
      ['run', 6, 5.05],
      ['matrix', 5, 2.5],
    ],
  );
  t.regex(
    machineSpeedLine(m),
    /timed before the rounds of the run pattern \(n = 6\) 5\.05 ms at the median, .*; before the rounds of the matrix \(n = 5\) 2\.50 ms at the median, /,
  );
});

test('the line says how far apart the fast and slow moments were, and reads a steady machine as steady', (t) => {
  const moving = machineSpeedLine(summarizeMachineSpeed(WORK, samples([1.4, 1.45, 1.5, 2.1, 2.2, 2.3, 1.42, 2.25]))!);
  t.regex(
    moving,
    /^machine speed: a walk over 4 MiB, .* timed before the rounds of the matrix \(n = 8\) 1\.80 ms at the median, /,
  );
  t.regex(moving, /from the 5th to the 95th percentile \(1\.\d\dx; 1\.40-2\.30 ms in all\)/);
  t.regex(moving, /: the speed a thread got from the machine moved that much/);
  t.notRegex(moving, /waiting for the CPU/);
  const steady = machineSpeedLine(summarizeMachineSpeed(WORK, samples([1.4, 1.41, 1.42, 1.43, 1.44, 1.45]))!);
  t.regex(steady, /\(1\.03x; .*: the machine held still to within 10%\.$/);
  const waited = machineSpeedLine(summarizeMachineSpeed(WORK, samples([2, 2, 2, 2, 2], 0.5))!);
  t.regex(waited, /, 5 of them waiting for the CPU/);
});

test('a report carries the figures through its schema, refuses them malformed, and its summary prints the line', (t) => {
  const report = JSON.parse(readFileSync(baseline, 'utf8'));
  const speed = summarizeMachineSpeed(WORK, [
    ...samples([5, 5.2, 4.8, 5.1, 4.9], 1, 'run'),
    ...samples([1.4, 1.5, 2.2, 2.3, 1.45, 2.25]),
  ])!;
  report.sampling.machineSpeed = speed;
  const valid = validateReport(JSON.parse(JSON.stringify(report)), 'with-speed.json');
  t.deepEqual(valid.sampling!.machineSpeed, speed);
  t.true(renderSummary(valid, 'with-speed.json', { skipped: [] }).includes(machineSpeedLine(speed)));
  // A report without it (every older one) prints no such line.
  delete report.sampling.machineSpeed;
  t.false(renderSummary(validateReport(report, 'old.json'), 'old.json', { skipped: [] }).includes('machine speed:'));
  for (const bad of [
    { ...speed, parts: [{ ...speed.parts[0]!, spread: 0.5 }] },
    { ...speed, parts: [] },
    { ...speed, parts: [{ ...speed.parts[0]!, part: 'elsewhere' }] },
    { ...speed, series: [{ atMs: 0, wallMs: -1, cpuMs: 1, part: 'matrix' }] },
    { ...speed, parts: [{ ...speed.parts[0]!, wallMs: { p50: 1 } }] },
  ]) {
    report.sampling.machineSpeed = bad;
    t.throws(() => validateReport(JSON.parse(JSON.stringify(report)), 'bad.json'), { code: 'ERR_REPORT_INVALID' });
  }
});
