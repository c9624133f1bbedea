import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { CompareOptions } from '../../harness/compare/comparison.js';
import { compareReports } from '../../harness/compare/judge.js';
import { setRunCenter } from '../../harness/compare/row-runs.js';
import { readThresholdFile } from '../../harness/compare/thresholds.js';
import type { Report } from '../../harness/report/report.js';

/**
 * Detection and false-alarm rates of the gate, offline, on the reports detection-rate.js kept:
 * node dist/test/tools/gate-study.js DIR [median|mean] (how a run's value comes from its rounds).
 * Per try i: BASE = its five runs without the extra work, HEAD = its five runs with it
 * (detection); BASE = try i's runs without, HEAD = try j's
 * runs without, i != j (false alarms of the gate over runs); and the ten pairs of runs without
 * in each try compared one against one with default flags (false alarms of plain compare).
 */
const dir = process.argv[2]!;
if (process.argv[3]) setRunCenter(process.argv[3] as 'mean' | 'median');
const read = (f: string) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Report;
const tries: Array<{ without: Report[]; with: Report[] }> = [];
for (let i = 0; ; i++) {
  if (!existsSync(path.join(dir, `try${i}-with-4.json`))) break;
  tries.push({
    without: [0, 1, 2, 3, 4].map((k) => read(`try${i}-without-${k}.json`)),
    with: [0, 1, 2, 3, 4].map((k) => read(`try${i}-with-${k}.json`)),
  });
}
// GATE_THRESHOLDS=reports/gate-thresholds.json: each row held to its calibrated threshold, as CI's gate holds it.
const thresholdsFile = process.env.GATE_THRESHOLDS;
const gate: CompareOptions = {
  ratiosOnly: true,
  ...(thresholdsFile ? { thresholdRules: readThresholdFile(thresholdsFile) } : {}),
};
let inconclusive = 0;
const over = (base: Report[], head: Report[], options: CompareOptions) =>
  compareReports(base[0]!, head[0]!, { ...options, baseRuns: base.slice(1), noiseReports: head.slice(1) });
let detected = 0;
for (const [i, t] of tries.entries()) {
  const c = over(t.without, t.with, gate);
  const shared = c.ratios.filter((r) => r.key.mapper === 'shared');
  const hit = shared.some((r) => r.verdict === 'regression');
  if (hit) detected++;
  console.log(
    `try ${i + 1}: ${hit ? 'detected' : 'missed'}; ${shared
      .filter((r) => r.verdict !== 'same' || /^(initialize\.)?speedup-vs-/.test(r.key.measure))
      .map(
        (r) =>
          `${r.key.workload} ${r.key.measure} ${(r.change * 100).toFixed(1)}% (noise ${((r.noise ?? 0) * 100).toFixed(0)}%, p ${r.p.toPrecision(2)}) ${r.verdict}`,
      )
      .join('; ')}`,
  );
}
let alarms = 0;
let pairs = 0;
for (let i = 0; i < tries.length; i++) {
  for (let j = 0; j < tries.length; j++) {
    if (i === j) continue;
    pairs++;
    const c = over(tries[i]!.without, tries[j]!.without, gate);
    if (c.regressions === 0 && c.undecided > 0) inconclusive++;
    if (c.regressions > 0) {
      alarms++;
      console.log(
        `false alarm, base try ${i + 1}, head try ${j + 1}: ${[...c.ratios, ...c.counters]
          .filter((r) => r.verdict === 'regression')
          .map((r) => r.label)
          .join(', ')}`,
      );
    }
  }
}
let plainAlarms = 0;
let plainPairs = 0;
for (const t of tries) {
  for (let a = 0; a < 5; a++) {
    for (let b = a + 1; b < 5; b++) {
      plainPairs++;
      if (compareReports(t.without[a]!, t.without[b]!).regressions > 0) plainAlarms++;
    }
  }
}
// The gate as .ci/run runs it: one stored baseline (GATE_BASELINE, e.g. reports/baseline.json)
// against a try's first run with its other four as --noise; on the runs without (false
// alarms) and with the extra work (detection).
const baselineFile = process.env.GATE_BASELINE;
if (baselineFile) {
  const baseline = JSON.parse(readFileSync(baselineFile, 'utf8')) as Report;
  let ciAlarms = 0;
  let ciDetected = 0;
  for (const t of tries) {
    const plain = compareReports(baseline, t.without[0]!, { ...gate, noiseReports: t.without.slice(1) });
    if (plain.regressions > 0) ciAlarms++;
    const slow = compareReports(baseline, t.with[0]!, { ...gate, noiseReports: t.with.slice(1) });
    if (slow.ratios.some((r) => r.key.mapper === 'shared' && r.verdict === 'regression')) ciDetected++;
  }
  console.log(
    `gate as .ci/run runs it (baseline against one run and four --noise): false alarms ${ciAlarms} of ${tries.length}, detected ${ciDetected} of ${tries.length}`,
  );
}
console.log(
  `gate over runs: detected ${detected} of ${tries.length}; false alarms ${alarms} of ${pairs}, inconclusive ${inconclusive} of ${pairs} (unchanged code, five runs against five)`,
);
console.log(`compare with default flags, one run against one: false alarms ${plainAlarms} of ${plainPairs} pairs`);
