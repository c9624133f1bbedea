import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readReport, type Report, type ResultRow } from '../harness/report/report.js';
import type { compareReports } from '../harness/compare/judge.js';
import { runCli } from './helpers/run-cli.js';
import { withRowsScaled, withSteadyRounds } from './helpers/reports.js';

/**
 * The gate never calls "can't tell" a pass. From one real quick run (precision mode, a short
 * budget), a copy whose shared-memory mapper is 30% slower (its latencies, rounds and every
 * ratio involving it) must fail the gate: exit 1 when its rows can be judged, exit 3 with
 * INCONCLUSIVE on the first line when they cannot, never 0. A report with empty results, or
 * with ratios that are not its results', is unusable input: exit 2.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-gate-honesty-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const save = (report: unknown) => {
  const file = path.join(dir, `r${n++}.json`);
  writeFileSync(file, JSON.stringify(report));
  return file;
};
const env = () => ({ ...process.env, NO_COLOR: '1' });
const sharedRows = (r: ResultRow) => r.mapper === 'shared';

let real: Report;
test.before(() => {
  const out = path.join(dir, 'quick.json');
  const r = runCli(['bench', '--quick', '--no-charts', '--max-time', '20', '--out', out], env());
  if (r.status !== 0) throw new Error(`the quick bench failed (${r.status}): ${r.stderr}`);
  real = readReport(out);
});

test('a shared-memory mapper 30% slower than a real quick run: exit 1 when judged, 3 (INCONCLUSIVE first) when not, never 0', (t) => {
  t.is(real.sampling?.precision, 5);
  const base = save(real);
  const slow = save(withRowsScaled(real, sharedRows, 1.3));
  const r = runCli(['compare', base, slow, '--ratios-only'], env());
  t.true(r.status === 1 || r.status === 3, `exit ${r.status}: ${r.stdout}${r.stderr}`);
  if (r.status === 3) t.regex(r.stdout.split('\n')[0]!, /^INCONCLUSIVE: \d+ rows? too noisy to judge \(/);
  t.notRegex(r.stdout, /No significant regression/);
  // --allow-inconclusive accepts rows it cannot judge, never a regression.
  const allowed = runCli(['compare', base, slow, '--ratios-only', '--allow-inconclusive'], env());
  t.is(allowed.status, r.status === 3 ? 0 : 1);
  // The same run with its rounds held steady: every row can be judged, and the slower mapper fails the gate.
  const steady = withSteadyRounds(real);
  const judged = runCli(
    ['compare', save(steady), save(withRowsScaled(steady, sharedRows, 1.3)), '--ratios-only', '--format', 'json'],
    env(),
  );
  t.is(judged.status, 1, judged.stdout);
  const json = JSON.parse(judged.stdout) as ReturnType<typeof compareReports>;
  t.is(json.undecided, 0);
  t.true(
    json.ratios.some(
      (x) => x.label === 'python/load/shared/jitmem/first-fit/speedup-vs-rpc' && x.verdict === 'regression',
    ),
  );
});

test("a real quick run with empty results, or with ratios that are not its results', is unusable input: exit 2", (t) => {
  const good = save(real);
  const empty = runCli(['compare', save({ ...real, results: [] }), good, '--ratios-only'], env());
  t.is(empty.status, 2);
  t.regex(empty.stderr, /has no results \(an empty results array\).*\[ERR_REPORT_UNUSABLE\]/);
  const emptyHead = runCli(['compare', good, save({ ...real, results: [] }), '--ratios-only'], env());
  t.is(emptyHead.status, 2);
  const stale = runCli(
    ['compare', save({ ...real, ratios: withRowsScaled(real, sharedRows, 1.3).ratios }), good, '--ratios-only'],
    env(),
  );
  t.is(stale.status, 2);
  t.regex(stale.stderr, /the ratios do not match the results.*\[ERR_REPORT_UNUSABLE\]/);
});

test("CPU time is gateable: --cpu compares each cell's controller and executor CPU per iteration, and catches a cell that burns 30% more", (t) => {
  const withCpuScaled = (report: Report, factor: number): Report => ({
    ...report,
    results: report.results.map((r) =>
      sharedRows(r) && r.cpu?.executor
        ? {
            ...r,
            cpu: { ...r.cpu, executor: { ...r.cpu.executor, samples: r.cpu.executor.samples.map((x) => x * factor) } },
          }
        : r,
    ),
  });
  const steady = withSteadyCpu(real);
  const same = JSON.parse(
    runCli(['compare', save(steady), save(steady), '--ratios-only', '--cpu', '--format', 'json'], env()).stdout,
  ) as ReturnType<typeof compareReports>;
  const labels = same.times.map((r) => r.label);
  t.true(labels.includes('python/load/shared/jitmem/first-fit/cpu-executor'));
  t.true(labels.includes('python/load/inprocess/none/first-fit/cpu-controller'));
  t.false(
    labels.some((l) => l.endsWith('/latency')),
    '--ratios-only keeps wall-time rows out',
  );
  const hot = runCli(
    ['compare', save(steady), save(withCpuScaled(steady, 1.3)), '--ratios-only', '--cpu', '--format', 'json'],
    env(),
  );
  t.is(hot.status, 1, hot.stdout);
  const json = JSON.parse(hot.stdout) as ReturnType<typeof compareReports>;
  t.true(
    json.times.some(
      (r) => r.label === 'python/load/shared/jitmem/first-fit/cpu-executor' && r.verdict === 'regression',
    ),
  );
});

/** Every CPU sample of a round at the row's median: no spread, so verdicts follow the change alone. */
function withSteadyCpu(report: Report): Report {
  const steadyStats = (s: NonNullable<ResultRow['cpu']>['controller']) => {
    const sorted = [...s.samples].sort((a, b) => a - b);
    const m = sorted[sorted.length >> 1]!;
    return { ...s, samples: s.samples.map(() => m) };
  };
  return {
    ...report,
    results: report.results.map((r) =>
      r.cpu
        ? {
            ...r,
            cpu: {
              controller: steadyStats(r.cpu.controller),
              executor: r.cpu.executor ? steadyStats(r.cpu.executor) : null,
            },
          }
        : r,
    ),
  };
}
