import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareReports } from '../../harness/compare/judge.js';
import { formatText } from '../../harness/compare/format.js';
import { readReport } from '../../harness/report/report.js';

/**
 * How long `jitmem compare` takes on two reports (a benchmark, printed beside its budget, not a
 * test): node dist/test/tools/compare-speed.js BASE.json HEAD.json. Prints the time to read and
 * validate both, to compare, and the whole CLI run (node start-up included), median of 5.
 */
const [baseFile, headFile] = process.argv.slice(2) as [string, string];
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../harness/cli.js');
const BUDGET_MS = 1000;
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const read: number[] = [];
const cmp: number[] = [];
const whole: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < 5; i++) {
  const c0 = process.cpuUsage();
  let t0 = performance.now();
  const base = readReport(baseFile);
  const head = readReport(headFile);
  read.push(performance.now() - t0);
  t0 = performance.now();
  formatText(compareReports(base, head, { phases: true }), baseFile, headFile);
  cmp.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
  t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'compare', baseFile, headFile], { encoding: 'utf8' });
  whole.push(performance.now() - t0);
  if (r.status !== 0 && r.status !== 1) throw new Error(r.stderr);
}
const rows = readReport(baseFile).results.length;
console.log(`compare of ${path.basename(baseFile)} and ${path.basename(headFile)} (${rows} cells each), median of 5:`);
console.log(`  read and validate both: ${med(read).toFixed(0)} ms`);
console.log(`  compare (with --phases) and format: ${med(cmp).toFixed(0)} ms`);
console.log(`  CPU time of reading, comparing and formatting (this process): ${med(cpu).toFixed(0)} ms`);
console.log(`  jitmem compare, whole process (node start-up included), wall clock: ${med(whole).toFixed(0)} ms (budget ${BUDGET_MS} ms: ${med(whole) <= BUDGET_MS ? 'ok' : 'OVER'})`);
console.log(`  load average now: ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs (wall clock grows with it; CPU time does not)`);
