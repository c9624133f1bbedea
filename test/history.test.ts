import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { compareReports } from '../harness/compare/judge.js';
import type { Report } from '../harness/report/report.js';
import { runCli } from './helpers/run-cli.js';
import { measuredReport, withRowsScaled } from './helpers/reports.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-history-'));
// The reports every test of this file writes; removed once they have all run.
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function save(report: Report): string {
  const file = path.join(dir, `r${files++}.json`);
  writeFileSync(file, JSON.stringify(report));
  return file;
}
const env = (extra: Record<string, string> = {}) => {
  const e = { ...process.env, ...extra };
  if (!extra.GITHUB_STEP_SUMMARY) delete e.GITHUB_STEP_SUMMARY;
  return e;
};
const commitA = 'a'.repeat(40);
const commitB = 'b'.repeat(40);
const withCommit = (r: Report, commit: string, createdAt: string): Report => ({
  ...r,
  createdAt,
  env: { ...r.env, commit, dirty: false },
});
const slowRow = (r: Report['results'][number]) =>
  r.workload === 'python' && r.pattern === 'load' && r.mapper === 'shared';

test.serial(
  'history stores reports per commit, prints the headline trend with intervals, draws it with commits on the x axis and writes Markdown',
  async (t) => {
    const store = path.join(dir, 'store');
    // Commit b's run holds the same measurements as commit a's first: the change is then half
    // the difference between a's two runs, whose spread the test judges it by (t about 0.58,
    // whatever the machine did), so "~" does not rest on three runs under the suite's load
    // agreeing (once they did not: -5.2%, flagged).
    const first = await measuredReport({ samples: 80 });
    const a1 = save(withCommit(first, commitA, '2026-01-01T00:00:00.000Z'));
    const a2 = save(withCommit(await measuredReport({ samples: 80 }), commitA, '2026-01-01T00:01:00.000Z'));
    const b1 = save(withCommit(first, commitB, '2026-01-02T00:00:00.000Z'));
    const r = runCli(['history', store, '--add', b1, '--add', a1, '--add', a2], env());
    t.is(r.status, 0, r.stderr);
    t.is(readdirSync(store).filter((f) => f.endsWith('.json')).length, 3);
    t.regex(r.stdout, /^3 reports in /m);
    // Two headline rows (shared over RPC copy for cray and python), two commits each, oldest first.
    // The same measurements on both commits: the change is marked ~ (not significant), by compare's judgement.
    t.regex(
      r.stdout,
      /^cray\/load\/shared\/jitmem\/first-fit\/speedup-vs-rpc +2 +\S{2} +bbbbbbb: \d\.\d\dx \[\d\.\d\dx, \d\.\d\dx\] +~[-+]\d+\.\d%$/m,
    );
    t.regex(r.stdout, /^vs commit before: .*~ not significant\.$/m);
    t.regex(r.stdout, /^aaaaaaa +2 +\d\.\d\dx/m);
    t.regex(r.stdout, /^bbbbbbb +1 +\d\.\d\dx/m);
    t.true(r.stdout.indexOf('aaaaaaa') < r.stdout.indexOf('bbbbbbb  '));
    const svg = readFileSync(path.join(store, 'trend', 'trend.svg'), 'utf8');
    for (const text of [
      'commit',
      'speedup (x, log)',
      '95% intervals',
      'aaaaaaa',
      'bbbbbbb',
      'cray/load/shared/jitmem/first-fit/speedup-vs-rpc',
    ])
      t.true(svg.includes(text), text);
    t.true(
      readFileSync(path.join(store, 'trend', 'trend.png'))
        .subarray(1, 4)
        .toString() === 'PNG',
    );
    const spec = JSON.parse(readFileSync(path.join(store, 'trend', 'trend.vl.json'), 'utf8')) as {
      data: { values: Array<{ commit: string; low: number; high: number; speedup: number }> };
    };
    t.true(spec.data.values.every((v) => v.low <= v.speedup && v.speedup <= v.high));
    // A log axis, and a rule at 1x in every panel.
    const layers = (
      spec as unknown as {
        spec: {
          layer: Array<{ mark: { type: string }; encoding: { y: { datum?: number; scale?: { type: string } } } }>;
        };
      }
    ).spec.layer;
    t.deepEqual(layers[0]!.mark.type, 'rule');
    t.is(layers[0]!.encoding.y.datum, 1);
    t.is(layers[0]!.encoding.y.scale?.type, 'log');
    t.true(svg.includes('1x (no difference)'));
    // Stored reports are trimmed: samples capped as compare caps them, no slab series.
    for (const f of readdirSync(store).filter((n) => n.endsWith('.json'))) {
      const stored = JSON.parse(readFileSync(path.join(store, f), 'utf8')) as Report;
      t.true(
        stored.results.every((row) => row.latency.samples.length <= 2048 && row.slabSeries === undefined),
        f,
      );
    }

    const summary = path.join(dir, 'summary.md');
    writeFileSync(summary, '');
    const md = runCli(['history', store, '--format', 'markdown', '--no-chart'], env({ GITHUB_STEP_SUMMARY: summary }));
    t.is(md.status, 0, md.stderr);
    t.regex(md.stdout, /^## jitmem history/m);
    t.regex(md.stdout, /^\| `python\/load\/shared\/jitmem\/first-fit\/speedup-vs-rpc` \| 2 \| /m);
    t.is(readFileSync(summary, 'utf8'), md.stdout + '\n');

    // --markdown FILE: the chart linked relative to the file, as a PR comment or an uploaded artifact reads it.
    const mdFile = path.join(dir, 'pr', 'history.md');
    const missing = runCli(['history', store, '--markdown', mdFile, '--out', path.join(dir, 'pr', 'chart')], env());
    t.is(missing.status, 2);
    t.regex(missing.stderr, /directory .*pr does not exist.*\[ERR_OUTPUT_DIRECTORY_MISSING\]/);
    mkdirSync(path.join(dir, 'pr'));
    const withFile = runCli(['history', store, '--markdown', mdFile, '--out', path.join(dir, 'pr', 'chart')], env());
    t.is(withFile.status, 0, withFile.stderr);
    t.regex(readFileSync(mdFile, 'utf8'), /^!\[Headline speedups across commits\]\(chart\/trend\.svg\)$/m);
  },
);

test('the sparkline spans the intervals on a log scale: overlapping intervals never read as bottom and top', async (t) => {
  const { sparkline } = await import('../harness/report/history.js');
  // 1.0 and 1.28 (+28%), whose intervals overlap: not ▁█.
  const overlapping = sparkline([
    { speedup: 1.0, ci95: [0.8, 1.2] },
    { speedup: 1.28, ci95: [1.1, 1.5] },
  ]);
  t.notRegex(overlapping, /▁█|█▁/);
  // Far apart with tight intervals: the full height.
  t.is(
    sparkline([
      { speedup: 1.0, ci95: [0.99, 1.01] },
      { speedup: 2.0, ci95: [1.98, 2.02] },
    ]),
    '▁█',
  );
});

test.serial(
  'history marks a significant change without ~, judged by compare over the runs of each commit',
  async (t) => {
    const store = path.join(dir, 'significant');
    const runsA: string[] = [];
    const runsB: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await measuredReport({ samples: 80 });
      runsA.push(save(withCommit(r, commitA, `2026-01-01T00:0${i}:00.000Z`)));
      runsB.push(save(withRowsScaled(withCommit(r, commitB, `2026-01-02T00:0${i}:00.000Z`), slowRow, 1.5)));
    }
    const r = runCli(['history', store, ...[...runsA, ...runsB].flatMap((f) => ['--add', f]), '--no-chart'], env());
    t.is(r.status, 0, r.stderr);
    // python's shared-memory cell 50% slower: its speedup over RPC copy fell, significantly (no ~).
    t.regex(r.stdout, /^python\/load\/shared\/jitmem\/first-fit\/speedup-vs-rpc +2 +\S{2} +bbbbbbb: .* -\d+\.\d%$/m);
  },
);

test.serial(
  'compare --history gates a run against the last N stored runs of other commits: a mapper 30% slower fails, the same code is no regression',
  async (t) => {
    const store = path.join(dir, 'gate');
    // The stored runs and the heads are measured alternately, so that a change of load while the
    // rest of the suite runs falls on both sides alike, as it would on two commits' CI runs.
    const stored: string[] = [];
    const slowHeads: string[] = [];
    for (let i = 0; i < 5; i++) {
      stored.push(save(withCommit(await measuredReport({ samples: 80 }), commitA, `2026-01-01T00:0${i}:00.000Z`)));
      if (i === 4) break;
      const r = withCommit(await measuredReport({ samples: 80 }), commitB, `2026-01-02T00:0${i}:00.000Z`);
      slowHeads.push(save(withRowsScaled(r, slowRow, 1.3)));
    }
    for (const file of stored) t.is(runCli(['history', store, '--add', file, '--no-chart'], env()).status, 0);
    const gate = (files: string[]) => [
      'compare',
      '--history',
      store,
      '--last',
      '5',
      files[0]!,
      ...files.slice(1).flatMap((f) => ['--noise', f]),
      '--ratios-only',
      '--format',
      'json',
    ];
    const slow = runCli(gate(slowHeads), env());
    t.is(slow.status, 1, slow.stdout);
    const json = JSON.parse(slow.stdout) as ReturnType<typeof compareReports>;
    t.is(json.baseRuns, 5);
    t.is(json.noiseRuns, 4);
    const row = json.ratios.find((r) => r.label === 'python/load/shared/jitmem/first-fit/speedup-vs-rpc')!;
    t.is(row.verdict, 'regression');
    t.is(row.evidence, 'runs');
    t.true(Math.abs(row.change - (1 / 1.3 - 1)) < 0.1, String(row.change));
    // The same code is never a regression: the history's own runs, as commit b's, pass when
    // every row is judged and are INCONCLUSIVE (exit 3, rows named) when the noise leaves some
    // undecided. Runs of one commit measured apart, as the heads above, differ beyond the
    // threshold now and then, as often as the gate's false-alarm budget allows (at most one pair
    // in ten): compare's and compare-bench-runs' tests hold that budget over ten pairs; one pair
    // here failed this test once in a CI run (cray's shared over RPC copy 5.2% apart).
    const heads = stored
      .slice(0, 4)
      .map((f, i) =>
        save(withCommit(JSON.parse(readFileSync(f, 'utf8')) as Report, commitB, `2026-01-02T00:1${i}:00.000Z`)),
      );
    const same = runCli(gate(heads), env());
    t.true(same.status === 0 || same.status === 3, same.stdout);
    const sameJson = JSON.parse(same.stdout) as ReturnType<typeof compareReports>;
    t.is(sameJson.regressions, 0);
    t.is(same.status === 3, sameJson.undecided > 0);
  },
);

test('history and compare --history refuse what they cannot use, with exit 2 and a message', (t) => {
  const missing = path.join(dir, 'no-such-dir');
  let r = runCli(['history', missing], env());
  t.is(r.status, 2);
  t.regex(r.stderr, /cannot read history directory .*no-such-dir.*\[ERR_HISTORY_UNREADABLE\]/);
  r = runCli(['history'], env());
  t.is(r.status, 2);
  t.regex(r.stderr, /history takes one directory; got 0/);
  const empty = mkdtempSync(path.join(dir, 'empty-'));
  r = runCli(['history', empty], env());
  t.is(r.status, 2);
  t.regex(r.stderr, /holds no report.*\[ERR_HISTORY_EMPTY\]/);
  r = runCli(['compare', '--history', empty, 'x.json', 'y.json'], env());
  t.is(r.status, 2);
  t.regex(r.stderr, /with --history, compare takes one report file, HEAD\.json; got 2/);
  t.false(existsSync(path.join(empty, 'trend')));
});
