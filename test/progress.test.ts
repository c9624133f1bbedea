import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { BenchProgressView, clockTime } from '../harness/bench/progress.js';
import { validateReport, type PatternName, type ResultRow } from '../harness/report/report.js';
import { planCells, presetSelection } from '../harness/bench/matrix.js';
import { benchPlan } from '../harness/bench/run-bench.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../harness/cli.js', import.meta.url));
const repoDir = path.resolve(path.dirname(cli), '../..');

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-progress-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The `k/n cells` counters of every redraw in a terminal's output, in order. */
function counters(output: string): Array<[number, number]> {
  return [...output.matchAll(/\r\x1b\[K[█░]+ (\d+)\/(\d+) cells/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** A view without a terminal on a fake clock (`clock.now`, ms), keeping the lines it writes. */
function loggedView() {
  const clock = { now: 0 };
  const lines: string[] = [];
  const view = new BenchProgressView({
    stream: { write: (s: string) => void lines.push(s) },
    tty: false,
    now: () => clock.now,
    heartbeatMs: 1e9,
  });
  return { view, lines, clock };
}

test('the terminal view redraws at most once per 100 ms of a fake clock, draws the last state, and its counter never goes back', (t) => {
  let now = 0;
  let timer: { fn: () => void; at: number } | undefined;
  const writes: Array<{ at: number; text: string }> = [];
  const view = new BenchProgressView({
    stream: { write: (text: string) => writes.push({ at: now, text }), columns: 100 },
    tty: true,
    now: () => now,
    setTimer: (fn, ms) => {
      timer = { fn, at: now + ms };
      return { cancel: () => (timer = undefined) };
    },
  });
  const row = { latency: { p50: 1, samplesCount: 10 } } as unknown as ResultRow;
  const total = 6;
  // Three seconds of events, one every millisecond, as a fast cell sends them.
  for (let index = 0; index < total; index++) view.onProgress({ kind: 'cell-start', index, total, cell: `c${index}` });
  for (let ms = 0; ms < 3000; ms++) {
    now = ms;
    if (timer && timer.at <= now) {
      const fire = timer.fn;
      timer = undefined;
      fire();
    }
    const index = ms % total;
    view.onProgress({
      kind: 'iteration',
      index,
      total,
      cell: `c${index}`,
      iterations: ms,
      round: Math.floor(ms / 750),
      rounds: 4,
    });
  }
  for (let index = 0; index < total; index++)
    view.onProgress({ kind: 'cell-done', index, total, cell: `c${index}`, row });
  now = 3100;
  timer?.fn();
  view.finish();
  const draws = writes.filter((w) => w.text.startsWith('\r\x1b[K') && w.text.length > 4);
  t.true(draws.length >= 25 && draws.length <= 32, `${draws.length} redraws in 3.1 s`);
  for (let i = 1; i < draws.length; i++)
    t.true(
      draws[i]!.at - draws[i - 1]!.at >= 100,
      `redraws ${i - 1} and ${i} ${draws[i]!.at - draws[i - 1]!.at} ms apart`,
    );
  const seen = counters(draws.map((d) => d.text).join(''));
  t.deepEqual(seen.at(-1), [6, 6]);
  for (let i = 1; i < seen.length; i++) t.true(seen[i]![0] >= seen[i - 1]![0]);
  // The bar too: it fills with the rounds measured, and never shrinks.
  const bars = draws.map((d) => (d.text.match(/█/g) ?? []).length);
  for (let i = 1; i < bars.length; i++) t.true(bars[i]! >= bars[i - 1]!);
  t.is(bars.at(-1), 16);
  t.is(writes.at(-1)!.text, '\r\x1b[K', 'finish clears the line');
  for (const d of draws) t.true(d.text.length - 4 < 100, 'a line never wraps');
});

test('clockTime', (t) => {
  t.is(clockTime(0), '0:00');
  t.is(clockTime(75), '1:15');
  t.is(clockTime(3725), '1:02:05');
});

// One short quick run (the quick preset's cells and table shapes, fewer iterations) serves the
// progress lines on stderr and the output that fits on stdout.
test('bench --quick without a terminal: an opening line and a progress line per finished cell on stderr; at COLUMNS=100 no stdout line over 100 characters; --export-markdown and --export-csv tables', async (t) => {
  const dir = tmp(t);
  const out = path.join(dir, 'report.json');
  const markdown = path.join(dir, 'cells.md');
  const csv = path.join(dir, 'cells.csv');
  const { stderr, stdout } = await run(
    process.execPath,
    [
      cli,
      'bench',
      '--quick',
      '--time',
      '60',
      '--iterations',
      '3',
      '--no-charts',
      '--out',
      out,
      '--export-markdown',
      markdown,
      '--export-csv',
      csv,
    ],
    {
      cwd: repoDir,
      maxBuffer: 16 << 20,
      env: { ...process.env, COLUMNS: '100' },
    },
  );
  // Every line of it, the summary on stdout and the progress on stderr.
  for (const line of [...stdout.split('\n'), ...stderr.split('\n')])
    t.true(line.length <= 100, `${line.length} characters: ${line}`);
  t.regex(stdout, /^workload +pattern +mapper +.*p50 ms/m);
  t.regex(stdout, /^left out to fit 100 columns: /m);
  t.regex(stdout, /^markdown: .*cells\.md$/m);
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')), out);
  const n = report.results.length;
  // cray and python, each through the four mappers.
  t.is(n, 8);
  const [opening, ...lines] = stderr.split('\n').filter(Boolean);
  t.regex(
    opening!,
    new RegExp(`^bench: ${n} cells, expected to take about \\d+:\\d\\d \\(${n} in 8 interleaved rounds\\)$`),
  );
  // Heartbeat lines ("measuring ...") come only after 10 s without a line: leave them out of the count.
  const done = lines.filter((l) => !/\] measuring /.test(l));
  t.is(done.length, n, stderr);
  t.notRegex(stderr, /\r|\x1b/, 'no terminal control characters in a log');
  const names = new Set(
    report.results.map(
      (r) => `${r.workload}/${r.pattern}/${r.mapper}${r.executor === 'none' ? '' : `@${r.executor}`}/${r.policy}`,
    ),
  );
  done.forEach((line, i) => {
    const m = /^\[(\d+)\/(\d+)\] (\S+): p50 [\d.]+ ms, n=\d+ \(at \d+:\d\d, ~\d+:\d\d left\)$/.exec(line);
    t.truthy(m, line);
    t.is(Number(m![1]), i + 1);
    t.is(Number(m![2]), n);
    t.true(names.delete(m![3]!), `${m![3]} is not a cell of the report, or is listed twice`);
  });

  // GitHub-flavoured Markdown: a header row, a delimiter row (numbers right-aligned), a row per cell, every column.
  const md = readFileSync(markdown, 'utf8').split('\n');
  const headerAt = md.findIndex((l) => l.startsWith('| workload |'));
  t.true(headerAt > 0, md.join('\n'));
  const cellsOf = (line: string) => line.slice(2, -2).split(' | ');
  const header = cellsOf(md[headerAt]!);
  t.deepEqual(header.slice(0, 5), ['workload', 'pattern', 'mapper', 'policy', 'p50 ms']);
  t.true(header.includes('faults c/e'), 'every column, none left out');
  t.regex(md[headerAt + 1]!, /^\|:---\|:---\|:---\|:---\|---:\|/);
  t.is(md[headerAt + 1]!.split('|').length, header.length + 2);
  const rows = md.slice(headerAt + 2, headerAt + 2 + n);
  for (const row of rows) t.is(cellsOf(row).length, header.length, row);
  t.deepEqual(
    rows.map((r) => cellsOf(r).slice(0, 3).join('/')).sort(),
    report.results.map((r) => `${r.workload}/${r.pattern}/${r.mapper}`).sort(),
  );
  t.regex(md.join('\n'), /^- \*\*rme\*\*: relative margin of error/m);
  // CSV: the same header and a line per cell.
  const csvLines = readFileSync(csv, 'utf8').split('\r\n').filter(Boolean);
  t.is(csvLines[0], header.join(','));
  t.is(csvLines.length, n + 1);
});

test('bench --quick under a pseudo-terminal redraws its line in place, and its counter never goes back', async (t) => {
  if (!existsSync('/usr/bin/script') || spawnSync('script', ['--version']).status !== 0) {
    t.log('skipped: script(1) from util-linux is absent');
    t.pass();
    return;
  }
  const out = path.join(tmp(t), 'report.json');
  const command = [
    process.execPath,
    cli,
    'bench',
    '--quick',
    '--time',
    '400',
    '--iterations',
    '3',
    '--no-charts',
    '--out',
    out,
  ]
    .map((a) => `'${a}'`)
    .join(' ');
  // script runs the bench on a pseudo-terminal and copies what it writes (stdout and stderr) to ours.
  const { stdout } = await run('script', ['-qfec', command, '/dev/null'], {
    cwd: repoDir,
    maxBuffer: 16 << 20,
    env: { ...process.env, NO_COLOR: '1' },
  });
  const seen = counters(stdout);
  // How often it redraws is the throttle's business, checked on a fake clock above: here, that
  // a real terminal gets the redrawn line, more than once, and never a counter going back.
  t.true(seen.length >= 2, `only ${seen.length} redraws`);
  for (let i = 1; i < seen.length; i++)
    t.true(seen[i]![0] >= seen[i - 1]![0], `counter went from ${seen[i - 1]![0]} to ${seen[i]![0]}`);
  t.true(seen.every(([, n]) => n === 8));
  t.regex(stdout, /report: /);
  t.true(existsSync(out));
});

test('with a plan, the estimate counts down between events, follows the rounds measured, and never goes below zero', (t) => {
  let now = 0;
  const writes: string[] = [];
  const view = new BenchProgressView({
    stream: { write: (text: string) => writes.push(text) },
    tty: false,
    now: () => now,
    heartbeatMs: 1e9,
  });
  const row = { latency: { p50: 1, samplesCount: 10 } } as unknown as ResultRow;
  const cells = [0, 1, 2, 3].map((i) => ({ name: `c${i}`, expectedMs: 1000 }));
  view.onProgress({ kind: 'plan', plan: { cells, rounds: 2 } });
  t.is(writes[0], 'bench: 4 cells, expected to take about 0:04 (4 in 2 interleaved rounds)\n');
  t.is(view.etaSeconds(), 4);
  // The machine is twice as slow as planned: each round of a cell takes 1 s, not 0.5 s.
  const etas: number[] = [];
  for (const group of [
    [0, 1],
    [2, 3],
  ]) {
    for (const index of group) view.onProgress({ kind: 'cell-start', index, total: 4, cell: `c${index}` });
    for (let round = 0; round < 2; round++) {
      for (const index of group) {
        for (let step = 0; step < 10; step++) {
          view.onProgress({
            kind: 'iteration',
            index,
            total: 4,
            cell: `c${index}`,
            iterations: step,
            round,
            rounds: 2,
          });
          now += 100;
          etas.push(view.etaSeconds()!);
        }
      }
    }
    for (const index of group) view.onProgress({ kind: 'cell-done', index, total: 4, cell: `c${index}`, row });
  }
  t.is(view.etaSeconds(), 0);
  for (const eta of etas) t.true(eta >= 0);
  // Never stuck: over every second of the run the estimate moved.
  for (let i = 10; i < etas.length; i++) t.not(etas[i], etas[i - 10], `estimate stuck at ${etas[i]} s at step ${i}`);
  // Once the first group's rounds are measured, the second group's estimate is the real time left (within 30%).
  const real = (i: number) => (etas.length - 1 - i) / 10;
  for (const i of [40, 50, 60, 70])
    t.true(Math.abs(etas[i]! - real(i)) <= 0.3 * real(i), `step ${i}: estimate ${etas[i]} s, real ${real(i)} s`);
  t.regex(writes.at(-1)!, /^\[4\/4\] c3: p50 1\.00 ms, n=10 \(at 0:08, ~0:00 left\)\n$/);
});

test('with a precision target, each cell takes its part of the time budget: the estimate is the budget, whatever the rounds', (t) => {
  let now = 0;
  const writes: string[] = [];
  const view = new BenchProgressView({
    stream: { write: (text: string) => writes.push(text) },
    tty: false,
    now: () => now,
    heartbeatMs: 1e9,
  });
  const row = { latency: { p50: 1, samplesCount: 10 } } as unknown as ResultRow;
  // Two groups of two cells, 6 s of budget per group: 3 s per cell, where 8 fixed rounds would take 1 s.
  const cells = [0, 1, 2, 3].map((i) => ({ name: `c${i}`, expectedMs: 3000, budgetMs: 3000 }));
  view.onProgress({ kind: 'plan', plan: { cells, rounds: 8 } });
  t.is(writes[0], 'bench: 4 cells, expected to take about 0:12 (4 in 8 interleaved rounds)\n');
  const etas: number[] = [];
  for (const group of [
    [0, 1],
    [2, 3],
  ]) {
    for (const index of group) view.onProgress({ kind: 'cell-start', index, total: 4, cell: `c${index}` });
    // Rounds of 100 ms per cell, past the least 8, until the group's 6 s are spent.
    for (let round = 0; round < 30; round++) {
      for (const index of group) {
        view.onProgress({ kind: 'iteration', index, total: 4, cell: `c${index}`, iterations: round, round, rounds: 8 });
        now += 100;
        etas.push(view.etaSeconds()!);
      }
    }
    for (const index of group) view.onProgress({ kind: 'cell-done', index, total: 4, cell: `c${index}`, row });
  }
  t.is(view.etaSeconds(), 0);
  for (const eta of etas) t.true(eta >= 0);
  // Never stuck, and the real time left (within 10%) all along: the rounds past the least 8 do not surprise it.
  for (let i = 10; i < etas.length; i++)
    t.true(etas[i]! < etas[i - 10]!, `estimate stuck at ${etas[i]} s at step ${i}`);
  const real = (i: number) => (etas.length - 1 - i) / 10;
  for (const i of [0, 30, 60, 90])
    t.true(Math.abs(etas[i]! - real(i)) <= 0.1 * real(i), `step ${i}: estimate ${etas[i]} s, real ${real(i)} s`);
});

test('with a precision target, the plan gives each group an equal share of --max-time, split among its cells', (t) => {
  const selection = { ...presetSelection('quick'), workloads: ['cray'], patterns: ['load', 'churn'] as PatternName[] };
  const { cells } = planCells(selection, 1, false, {});
  const fixed = benchPlan({ selection }, cells, 8);
  t.true(fixed.cells.every((c) => c.budgetMs === undefined));
  const plan = benchPlan({ selection, precision: 5, maxTimeMs: 60_000 }, cells, 8);
  const groups = new Set(cells.map((c) => `${c.workload}/${c.pattern}/${c.policy}`));
  t.true(groups.size > 1);
  // No run pattern: the matrix has the whole budget, and its cells' parts add up to it.
  t.is(Math.round(plan.cells.reduce((a, c) => a + c.budgetMs!, 0)), 60_000);
  for (const [i, c] of plan.cells.entries()) {
    const group = cells.filter(
      (d) => d.workload === cells[i]!.workload && d.pattern === cells[i]!.pattern && d.policy === cells[i]!.policy,
    );
    t.is(c.budgetMs, 60_000 / groups.size / group.length);
    t.true(c.expectedMs >= c.budgetMs! && c.expectedMs >= fixed.cells[i]!.expectedMs);
  }
});

test('the run pattern first, paced by its own processes once they report, then the matrix; all counted in the cells', (t) => {
  const { view, lines, clock } = loggedView();
  const row = { latency: { p50: 1, samplesCount: 10 } } as unknown as ResultRow;
  const run = [0, 1].map((i) => ({ name: `r${i}`, iterations: 4, expectedMs: 4000 }));
  view.onProgress({
    kind: 'plan',
    plan: { cells: [{ name: 'c0', expectedMs: 1000 }], rounds: 1, run: { setupMs: 1000, cells: run } },
  });
  t.is(lines[0], 'bench: 3 cells, expected to take about 0:10 (2 end to end, then 1 in 1 interleaved round)\n');
  t.is(view.etaSeconds(), 10);
  // Set-up and r0's processes take 3 s each where the plan said 1 s: r1's are paced by them.
  clock.now = 3000;
  view.onProgress({ kind: 'run', cell: 'r0', done: 1, total: 4 });
  for (let i = 2; i <= 4; i++) {
    clock.now += 3000;
    view.onProgress({ kind: 'run', cell: 'r0', done: i, total: 4 });
  }
  // r1's 4 processes (the plan's 4 s at the pace measured, its own plan counted as a little evidence) and c0's 1 s.
  const paced = view.etaSeconds()!;
  t.true(paced > 8 && paced < 14, `${paced} s`);
  for (let i = 1; i <= 4; i++) {
    clock.now += 3000;
    view.onProgress({ kind: 'run', cell: 'r1', done: i, total: 4 });
  }
  // What is left is the matrix's cell, at its plan.
  t.is(view.etaSeconds(), 1);
  view.onProgress({ kind: 'cell-start', index: 0, total: 1, cell: 'c0' });
  clock.now += 1000;
  view.onProgress({ kind: 'cell-done', index: 0, total: 1, cell: 'c0', row });
  t.is(view.etaSeconds(), 0);
  t.is(view.line(100).match(/ (\d+)\/(\d+) cells/)![0], ' 3/3 cells');
  t.deepEqual(
    lines.slice(1).map((l) => l.slice(0, l.indexOf(' ('))),
    ['[1/3] r0: 4 verified', '[2/3] r1: 4 verified', '[3/3] c0: p50 1.00 ms, n=10'],
  );
});

test('with a precision target the run pattern takes its share of the time budget, whatever its plan of processes', (t) => {
  const { view, lines, clock } = loggedView();
  const run = [0, 1].map((i) => ({ name: `r${i}`, iterations: 8, expectedMs: 60_000 }));
  view.onProgress({
    kind: 'plan',
    plan: {
      cells: [{ name: 'c0', expectedMs: 11_000, budgetMs: 10_000 }],
      rounds: 8,
      run: { setupMs: 5000, cells: run, budgetMs: 40_000 },
    },
  });
  t.is(lines[0], 'bench: 3 cells, expected to take about 0:51 (2 end to end, then 1 in 8 interleaved rounds)\n');
  // 25 s into the run pattern (set-up and r0's first processes): 15 s of its share left, and the matrix's cell.
  clock.now = 20_000;
  view.onProgress({ kind: 'run', cell: 'r0', done: 1, total: 2 });
  clock.now = 25_000;
  t.is(view.etaSeconds(), 15 + 11);
  // Past its share (its least rounds run on): a twentieth of it, until its cells are done.
  clock.now = 45_000;
  view.onProgress({ kind: 'run', cell: 'r0', done: 2, total: 3 });
  t.is(view.etaSeconds(), 2 + 11);
  view.onProgress({ kind: 'run', cell: 'r0', done: 2, total: 2 });
  view.onProgress({ kind: 'run', cell: 'r1', done: 2, total: 2 });
  t.is(view.etaSeconds(), 11);
});

test("with a precision target a run cell's count stays one ahead until it is done; then it is counted, and its line printed, once", (t) => {
  const { view, lines } = loggedView();
  const run = [0, 1].map((i) => ({ name: `r${i}`, iterations: 8, expectedMs: 800 }));
  view.onProgress({ kind: 'plan', plan: { cells: [], rounds: 1, run: { setupMs: 0, cells: run } } });
  for (let i = 1; i <= 4; i++) view.onProgress({ kind: 'run', cell: 'r0', done: i, total: i + 1 });
  view.onProgress({ kind: 'run', cell: 'r0', done: 4, total: 4 });
  view.onProgress({ kind: 'run', cell: 'r0', done: 4, total: 4 });
  t.is(view.line(100).match(/ (\d+)\/(\d+) cells/)![0], ' 1/2 cells');
  t.deepEqual(
    lines.filter((l) => l.includes('verified')).map((l) => l.slice(0, l.indexOf(' ('))),
    ['[1/2] r0: 4 verified'],
  );
});

test("a warm controller's fast iterations do not set the pace of the fresh processes of another kind", (t) => {
  const { view, clock } = loggedView();
  const run = [
    { name: 'cray/run/inprocess [jitmem, warm controller]', iterations: 4, expectedMs: 1000 },
    { name: 'cray/run/inprocess [jitmem]', iterations: 4, expectedMs: 4000 },
  ];
  view.onProgress({ kind: 'plan', plan: { cells: [], rounds: 1, run: { setupMs: 0, cells: run } } });
  for (let done = 1; done <= 4; done++) {
    clock.now += 100;
    view.onProgress({ kind: 'run', cell: run[0]!.name, done, total: 4 });
  }
  // A fresh process took 3 s where 1 s was planned: the other three take about that, not the warm pace.
  clock.now += 3000;
  view.onProgress({ kind: 'run', cell: run[1]!.name, done: 1, total: 4 });
  const eta = view.etaSeconds()!;
  t.true(eta > 4 && eta < 9, `${eta} s`);
});
