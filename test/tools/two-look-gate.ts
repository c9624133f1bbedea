import { gateThreshold } from '../../harness/compare/calibrate.js';
import type { RowKey } from '../../harness/compare/comparison.js';
import type { RowRun } from '../../harness/compare/row-runs.js';
import { runsTest } from '../../harness/compare/row-tests.js';
import { seededRandom } from '../../harness/statistics.js';

/**
 * What CI's second look (.ci/gate: four more head runs when the first four leave a row
 * INCONCLUSIVE, then the gate over all eight) does to one speedup row's outcomes, simulated with
 * the gate's own pieces: the row's threshold from gateThreshold (eight base runs of log standard
 * deviation s, four head runs), each look from runsTest. A look calls the row a regression when
 * its one-sided p is below alpha / 12 (Holm's first step over CI's twelve rows) and the loss is
 * beyond the threshold, "same" when the one-sided 95% bound of the loss stays within it (judge.ts),
 * and INCONCLUSIVE otherwise.
 *
 *   node dist/test/tools/two-look-gate.js [TRIES]
 *
 * prints, per scenario (the head's true loss of speedup, its runs' spread relative to the base's),
 * how often one look and two looks end INCONCLUSIVE and how often they pass the row as "same".
 */

const tries = Number(process.argv[2] ?? 20_000);
if (!Number.isInteger(tries) || tries < 100) {
  console.error(`two-look-gate: TRIES must be an integer of at least 100; got ${process.argv[2]}`);
  process.exit(2);
}

const BASE_RUNS = 8;
const FIRST_LOOK = 4;
const SECOND_LOOK = 8;
const ROWS = 12;
const ALPHA = 0.05;
const KEY: RowKey = {
  workload: 'python',
  pattern: 'load',
  mapper: 'rpc',
  executor: 'jitmem',
  policy: 'first-fit',
  measure: 'speedup-vs-inprocess',
};

const uniform = seededRandom(20261207);
function normal(): number {
  // Box–Muller; 1 - u keeps the logarithm finite.
  return Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
const run = (value: number): RowRun => ({ key: KEY, rounds: [value], value, median: 0, samples: 0 });

// Base runs whose standard deviation is exactly s (the calibration sees one such set).
const s = 0.015;
const raw = Array.from({ length: BASE_RUNS }, normal);
const rawMean = raw.reduce((a, x) => a + x, 0) / raw.length;
const rawSd = Math.sqrt(raw.reduce((a, x) => a + (x - rawMean) ** 2, 0) / (raw.length - 1));
const threshold = gateThreshold(
  raw.map((x) => ((x - rawMean) / rawSd) * s),
  FIRST_LOOK,
  'ratio',
  0.05,
).threshold;
const thresholdLog = -Math.log1p(-threshold);

type Outcome = 'regression' | 'same' | 'inconclusive';
function look(base: readonly number[], head: readonly number[]): Outcome {
  const t = runsTest(base.map(run), head.map(run), { alpha: ALPHA, rows: ROWS })!;
  const loss = -t.diff;
  const oneSidedP = t.p / 2;
  if (loss > 0 && oneSidedP < ALPHA / ROWS && -Math.expm1(t.diff) > threshold) return 'regression';
  return loss + t.oneSidedHalf! <= thresholdLog ? 'same' : 'inconclusive';
}

interface Scenario {
  readonly name: string;
  /** The head's true loss on the log scale. */
  readonly loss: number;
  /** The head runs' spread over the base runs'. */
  readonly spread: number;
}
const scenarios: Scenario[] = [
  { name: 'unchanged, head spreads as the base', loss: 0, spread: 1 },
  { name: 'unchanged, head spreads 2x', loss: 0, spread: 2 },
  { name: 'unchanged, head spreads 2.5x', loss: 0, spread: 2.5 },
  { name: 'unchanged, the runner reads one base sd lower, spreads 2x', loss: s, spread: 2 },
  { name: 'unchanged, the runner reads one base sd lower, spreads 2.5x', loss: s, spread: 2.5 },
  { name: 'a loss exactly at the threshold', loss: thresholdLog, spread: 1 },
  { name: 'a loss at the threshold, head spreads 2x', loss: thresholdLog, spread: 2 },
  { name: 'a loss 2 base sd past the threshold', loss: thresholdLog + 2 * s, spread: 1 },
];

console.log(
  `one speedup row: base runs' log sd s = ${s}, calibrated threshold ${(threshold * 100).toFixed(0)}% (${BASE_RUNS} base runs against ${FIRST_LOOK} head runs); ${tries} simulated gates per scenario`,
);
console.log('');
console.log('| scenario | one look: inconclusive | two looks: inconclusive | one look: "same" | two looks: "same" |');
console.log('|:---|---:|---:|---:|---:|');
const pct = (n: number): string => `${((n / tries) * 100).toFixed(2)}%`;
for (const sc of scenarios) {
  let firstInconclusive = 0;
  let finalInconclusive = 0;
  let firstSame = 0;
  let finalSame = 0;
  for (let i = 0; i < tries; i++) {
    const base = Array.from({ length: BASE_RUNS }, () => s * normal());
    const head = Array.from({ length: SECOND_LOOK }, () => -sc.loss + sc.spread * s * normal());
    const first = look(base, head.slice(0, FIRST_LOOK));
    if (first === 'same') firstSame++;
    const final = first === 'inconclusive' ? look(base, head) : first;
    if (first === 'inconclusive') firstInconclusive++;
    if (final === 'inconclusive') finalInconclusive++;
    if (final === 'same') finalSame++;
  }
  console.log(
    `| ${sc.name} | ${pct(firstInconclusive)} | ${pct(finalInconclusive)} | ${pct(firstSame)} | ${pct(finalSame)} |`,
  );
}
