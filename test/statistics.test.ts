import test from 'ava';
import { intervalEstimateTest, normalCdf, seededRandom } from '../harness/statistics.js';

test('intervalEstimateTest: equal estimates give p = 1; a difference of k pooled standard errors gives the normal p-value', (t) => {
  const ci = (value: number, se: number): [number, number] => [value * Math.exp(-1.959964 * se), value * Math.exp(1.959964 * se)];
  const same = intervalEstimateTest({ value: 2, ci95: ci(2, 0.05) }, { value: 2, ci95: ci(2, 0.05) });
  t.is(same.z, 0);
  t.true(same.p > 0.999); // normalCdf's approximation gives 1 - 1e-9 at z = 0
  // Two standard errors of 0.03 pool to 0.03 * sqrt(2); a log difference of twice that is z = 2.
  const se = 0.03;
  const head = 2 * Math.exp(2 * se * Math.SQRT2);
  const r = intervalEstimateTest({ value: 2, ci95: ci(2, se) }, { value: head, ci95: ci(head, se) });
  t.true(Math.abs(r.z - 2) < 1e-6);
  t.true(Math.abs(r.p - 2 * (1 - normalCdf(2))) < 1e-9);
  // Symmetric: swapping base and head flips the sign only.
  const back = intervalEstimateTest({ value: head, ci95: ci(head, se) }, { value: 2, ci95: ci(2, se) });
  t.true(Math.abs(back.z + r.z) < 1e-9);
});

test('intervalEstimateTest: degenerate input gives NaN or certainty, never a throw', (t) => {
  t.true(Number.isNaN(intervalEstimateTest({ value: 0, ci95: [1, 2] }, { value: 1, ci95: [1, 2] }).p));
  t.true(Number.isNaN(intervalEstimateTest({ value: 1, ci95: [-1, 2] }, { value: 1, ci95: [1, 2] }).p));
  t.deepEqual(intervalEstimateTest({ value: 1, ci95: [1, 1] }, { value: 1, ci95: [1, 1] }), { z: 0, p: 1 });
  t.is(intervalEstimateTest({ value: 1, ci95: [1, 1] }, { value: 2, ci95: [2, 2] }).p, 0);
});

test('intervalEstimateTest holds its level: about 5% of unchanged estimates are called different at alpha 0.05', (t) => {
  // Simulated pairs of estimates of the same quantity, each with its own correct interval.
  const rand = seededRandom(11);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const se = 0.04;
  let rejected = 0;
  const trials = 4000;
  for (let i = 0; i < trials; i++) {
    const a = 3 * Math.exp(se * normal());
    const b = 3 * Math.exp(se * normal());
    const ci = (v: number): [number, number] => [v * Math.exp(-1.959964 * se), v * Math.exp(1.959964 * se)];
    if (intervalEstimateTest({ value: a, ci95: ci(a) }, { value: b, ci95: ci(b) }).p < 0.05) rejected++;
  }
  const rate = rejected / trials;
  t.true(rate > 0.035 && rate < 0.065, `rejection rate ${rate}`);
});
