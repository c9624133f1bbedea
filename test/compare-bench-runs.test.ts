import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/run-cli.js';

/**
 * The no-false-alarm check on real `jitmem bench --quick` runs: five runs of this commit give
 * the ten pairs (a, b), a < b, each compared as CI compares, the other three runs serving as
 * noise runs (--noise). Five quick runs take about a minute, so this runs only when
 * JITMEM_REAL_BENCH=1; test/compare.test.ts makes the same check on reports measured
 * in-process. JITMEM_CI_COMPARE_FLAGS sets the compare flags (default: the gate's,
 * --ratios-only --alpha 0.01); JITMEM_NO_NOISE_RUNS=1 leaves out the noise runs.
 */

const enabled = process.env.JITMEM_REAL_BENCH === '1';
const flags = (process.env.JITMEM_CI_COMPARE_FLAGS ?? '--ratios-only --alpha 0.01').split(/\s+/).filter(Boolean);
const withNoise = process.env.JITMEM_NO_NOISE_RUNS !== '1';

if (!enabled) console.log('compare-bench-runs: skipped; set JITMEM_REAL_BENCH=1 to run five real `jitmem bench --quick` runs (about a minute)');

(enabled ? test : test.skip)('no false alarms on real quick runs: the ten pairs of five runs of this commit exit 0 in at least nine', (t) => {
  t.timeout(10 * 60_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-bench-runs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const runs: string[] = [];
  for (let i = 0; i < 5; i++) {
    const out = path.join(dir, `quick-${i}.json`);
    const r = runCli(['bench', '--quick', '--out', out]);
    t.is(r.status, 0, r.stderr);
    runs.push(out);
  }
  const statuses: string[] = [];
  let passed = 0;
  for (let a = 0; a < runs.length; a++) {
    for (let b = a + 1; b < runs.length; b++) {
      const noise = withNoise ? runs.filter((_, i) => i !== a && i !== b).flatMap((f) => ['--noise', f]) : [];
      const r = runCli(['compare', runs[a]!, runs[b]!, ...flags, ...noise], { ...process.env, GITHUB_STEP_SUMMARY: '' });
      t.true(r.status === 0 || r.status === 1, r.stderr);
      if (r.status === 0) passed++;
      else t.log(`runs ${a} and ${b}:\n${r.stdout}`);
      statuses.push(`${a}-${b}:${r.status}`);
    }
  }
  t.log(`compare ${flags.join(' ')}${withNoise ? ' with the other three runs as --noise' : ''}: ${statuses.join(' ')}`);
  t.true(passed >= 9, `${passed} of 10 pairs passed`);
});
