import test from 'ava';
import { intervalEstimateTest, normalCdf, seededRandom } from '../harness/statistics.js';

test('intervalEstimateTest: equal estimates give p = 1; a difference of k pooled standard errors gives the normal p-value', (t) => {
  const ci = (value: number, se: number): [number, number] => [
    value * Math.exp(-1.959964 * se),
    value * Math.exp(1.959964 * se),
  ];
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

test('wilcoxonSignedRank: exact p for small n without ties, its floor 2/2^n, and symmetry', async (t) => {
  const { wilcoxonSignedRank } = await import('../harness/statistics.js');
  // Eight rounds all in one direction: the most extreme of 2^8 sign patterns, twice (two-sided).
  t.is(wilcoxonSignedRank([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]).p, 2 / 256);
  t.is(wilcoxonSignedRank([-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8]).p, 2 / 256);
  // n = 5, W+ = 1 (only the smallest is positive): P(W <= 1) = 2/32, two-sided 4/32.
  const r = wilcoxonSignedRank([0.1, -0.2, -0.3, -0.4, -0.5]);
  t.is(r.wPlus, 1);
  t.is(r.p, 4 / 32);
  t.is(wilcoxonSignedRank([]).p, 1);
  t.is(wilcoxonSignedRank([0, 0]).p, 1);
});

test("welchTTest gives Welch's t = 1.8974, df = 5.8824, p = 0.1076 for (2,4,6,8,10) against (1,2,3,4,5)", async (t) => {
  const { welchTTest } = await import('../harness/statistics.js');
  const w = welchTTest([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]);
  t.is(w.diff, 3);
  t.true(Math.abs(w.t - 1.8974) < 1e-4, String(w.t));
  t.true(Math.abs(w.df - 5.8824) < 1e-4, String(w.df));
  t.true(Math.abs(w.p - 0.1076) < 1e-4, String(w.p));
  // R's interval: -0.8877 to 6.8877 (3 -+ t(0.975, 5.8824) * sqrt(2.5)).
  t.true(Math.abs(w.low - -0.8877) < 1e-3 && Math.abs(w.high - 6.8877) < 1e-3, `${w.low} ${w.high}`);
  // Identical constant sets: no difference, p = 1; different constants: certain.
  t.is(welchTTest([1, 1, 1], [1, 1, 1]).p, 1);
  t.is(welchTTest([1, 1, 1], [2, 2, 2]).p, 0);
  t.true(Number.isNaN(welchTTest([1], [2, 3]).p));
});

test('holmSignificant steps down: each p against alpha / (rows left) until the first that fails', async (t) => {
  const { holmSignificant } = await import('../harness/statistics.js');
  // alpha 0.05 over 4: 0.01 <= 0.0125 yes, 0.015 <= 0.0167 yes, 0.03 > 0.025 stop.
  t.deepEqual(holmSignificant([0.03, 0.01, 0.5, 0.015], 0.05), [false, true, false, true]);
  t.deepEqual(holmSignificant([0.02, 0.02], 0.05), [true, true]);
  // NaN (a refused row) takes no part and shrinks the family.
  t.deepEqual(holmSignificant([Number.NaN, 0.04], 0.05), [false, true]);
});
