import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectionTry } from './helpers/power.js';

/**
 * Power of the CI gate, one try: five quick benches with a shared-memory mapper whose
 * initialize costs 30% more (SHA-256 passes over the working memory, sized from a run without)
 * and five without, compared as the gate compares runs (--ratios-only, runs on both sides).
 * The gate must flag a shared-memory speedup (whole iteration or one of its phases, such as
 * initialize.speedup-vs-rpc) as a regression. About ten quick benches. The rate over ten
 * tries: node dist/test/tools/detection-rate.js.
 */

/*
 * Only with JITMEM_POWER_TEST=1, not with JITMEM_REAL_BENCH alone (so not in .ci/run): on the
 * 2-vCPU machine CI runs on, loaded by other work, the gate detects this regression in far
 * fewer than 9 of 10 tries (measured: 5 of 10 at load average 10 to 20 with the per-phase
 * speedups, 1 of 10 without; 4 of 4 in a quieter spell, load 2 to 6, too few to show 9 of 10), because the spread between runs of one commit is larger than the
 * change even in the initialize phase's own paired speedup. The statistics are not loosened to pass it: a CI test that fails most of the time
 * says nothing. Run it on a quiet machine, or measure the rate with detection-rate.js.
 */
const enabled = process.env.JITMEM_POWER_TEST === '1';

(enabled ? test : test.skip)('power: the gate flags the shared-memory speedup when its initialize costs 30% more', (t) => {
  t.timeout(20 * 60_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-power-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = detectionTry(dir, 'ci');
  t.log(JSON.stringify(r, null, 1));
  t.is(r.status, 1);
  t.true(r.shared.some((x) => x.verdict === 'regression' && x.change < 0));
});
