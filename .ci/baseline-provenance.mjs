// Says which commit the committed baseline was measured on, from the report's own environment,
// so that a comparison in CI is read against the right code. Warns when that tree was dirty
// (the baseline then matches no commit) or the report names no commit.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'reports/baseline.json';
const report = JSON.parse(readFileSync(file, 'utf8'));
const { commit, dirty, node, cpuModel, cpus } = report.env ?? {};
const where = `${report.options?.preset ?? '?'} preset, ${report.createdAt}, node ${node}, ${cpuModel} x${cpus}`;
if (!commit) {
  console.log(`baseline ${file}: no commit recorded (${where}); warning: regenerate it from a clean checkout`);
} else if (dirty) {
  console.log(`baseline ${file}: commit ${commit.slice(0, 12)} with uncommitted changes (${where}); warning: regenerate it from a clean checkout`);
} else {
  console.log(`baseline ${file}: commit ${commit.slice(0, 12)} (${where})`);
}
