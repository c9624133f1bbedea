import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/run-cli.js';

/**
 * The no-false-alarm check on real `jitmem bench --quick` runs: five runs of this commit give
 * the ten pairs (a, b), a < b, each compared with compare's DEFAULT flags (times and ratios,
 * judged round by round), as a new user would. Five quick runs take about two minutes on this
 * machine, so this runs only when JITMEM_REAL_BENCH=1 (.ci/run sets it).
 * JITMEM_COMPARE_FLAGS adds flags (none by default).
 */

const enabled = process.env.JITMEM_REAL_BENCH === '1';
const flags = (process.env.JITMEM_COMPARE_FLAGS ?? '').split(/\s+/).filter(Boolean);

if (!enabled) console.log('compare-bench-runs: skipped; set JITMEM_REAL_BENCH=1 to run five real `jitmem bench --quick` runs (about two minutes)');

(enabled ? test : test.skip)('no false alarms on real quick runs with default flags: at most one of the ten pairs of five runs of this commit exits 1', (t) => {
  t.timeout(15 * 60_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-bench-runs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runs: string[] = [];
  for (let i = 0; i < 5; i++) {
    const out = path.join(dir, `quick-${i}.json`);
    // Precision mode (--quick's 5%), its budget cut to 25 s a run so five fit in about two minutes.
    const r = runCli(['bench', '--quick', '--max-time', '25', '--no-charts', '--out', out]);
    t.is(r.status, 0, r.stderr);
    runs.push(out);
  }
  const statuses: string[] = [];
  let alarms = 0;
  for (let a = 0; a < runs.length; a++) {
    for (let b = a + 1; b < runs.length; b++) {
      const r = runCli(['compare', runs[a]!, runs[b]!, ...flags], { ...process.env, GITHUB_STEP_SUMMARY: '' });
      // 3 is INCONCLUSIVE (rows too noisy to judge): no alarm, and counted apart.
      t.true(r.status === 0 || r.status === 1 || r.status === 3, r.stderr);
      if (r.status === 1) {
        alarms++;
        t.log(`runs ${a} and ${b}:\n${r.stdout}`);
      }
      statuses.push(`${a}-${b}:${r.status}`);
    }
  }
  t.log(`compare ${flags.join(' ') || '(default flags)'}: ${statuses.join(' ')} (1: an alarm; 3: inconclusive)`);
  t.true(alarms <= 1, `${alarms} of 10 pairs exited 1`);
});
