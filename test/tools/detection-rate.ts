import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectionTry } from '../helpers/power.js';

/**
 * The detection rate of the CI gate (too long for CI: about ten quick benches per try):
 * node dist/test/tools/detection-rate.js [TRIES [KEEP-DIR]]. Each try runs five quick benches with a
 * shared-memory mapper whose initialize costs 30% more and five without, and compares them as
 * the gate does; a try detects when the gate exits 1 with a shared-memory ratio as regression.
 */
const tries = Number(process.argv[2] ?? 10);
/**
 * With a directory, every try's reports are kept there (try<i>-with-<k>.json,
 * try<i>-without-<k>.json), to study offline.
 */
const keep = process.argv[3];
let detected = 0;
for (let i = 0; i < tries; i++) {
  const dir = keep
    ? (mkdirSync(keep, { recursive: true }), keep)
    : mkdtempSync(path.join(os.tmpdir(), 'jitmem-detect-'));
  try {
    const r = detectionTry(dir, `try${i}`);
    const hit = r.status === 1 && r.shared.some((x) => x.verdict === 'regression');
    if (hit) detected++;
    const rows = r.shared.map(
      (x) =>
        `${x.label.replace('/jitmem/first-fit', '')} ${(x.change * 100).toFixed(1)}% (noise ${x.noise === null ? '-' : (x.noise * 100).toFixed(1) + '%'}, p ${x.p.toPrecision(2)}) ${x.verdict}`,
    );
    const extra = Object.entries(r.extraMs)
      .map(([w, e]) => `${w} +${e.extraMs.toFixed(3)} ms`)
      .join(', ');
    console.log(
      `try ${i + 1}: exit ${r.status}, ${hit ? 'DETECTED' : 'missed'} (extra initialize work: ${extra})\n  ${rows.join('\n  ')}`,
    );
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
console.log(`detected ${detected} of ${tries}`);
