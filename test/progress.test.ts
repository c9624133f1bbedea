import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { BenchProgressView, clockTime } from '../harness/bench/progress.js';
import { validateReport, type ResultRow } from '../harness/report/report.js';

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
    view.onProgress({ kind: 'iteration', index, total, cell: `c${index}`, iterations: ms, round: Math.floor(ms / 750), rounds: 4 });
  }
  for (let index = 0; index < total; index++) view.onProgress({ kind: 'cell-done', index, total, cell: `c${index}`, row });
  now = 3100;
  timer?.fn();
  view.finish();
  const draws = writes.filter((w) => w.text.startsWith('\r\x1b[K') && w.text.length > 4);
  t.true(draws.length >= 25 && draws.length <= 32, `${draws.length} redraws in 3.1 s`);
  for (let i = 1; i < draws.length; i++) t.true(draws[i]!.at - draws[i - 1]!.at >= 100, `redraws ${i - 1} and ${i} ${draws[i]!.at - draws[i - 1]!.at} ms apart`);
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

test('bench --quick without a terminal writes one progress line per finished cell on stderr, in order', async (t) => {
  const out = path.join(tmp(t), 'report.json');
  const { stderr } = await run(process.execPath, [cli, 'bench', '--quick', '--time', '60', '--iterations', '3', '--no-charts', '--out', out], {
    cwd: repoDir,
    maxBuffer: 16 << 20,
  });
  const report = validateReport(JSON.parse(readFileSync(out, 'utf8')), out);
  const n = report.results.length;
  // cray and python, each through the four mappers.
  t.is(n, 8);
  const lines = stderr.split('\n').filter(Boolean);
  t.is(lines.length, n, stderr);
  t.notRegex(stderr, /\r|\x1b/, 'no terminal control characters in a log');
  const names = new Set(report.results.map((r) => `${r.workload}/${r.pattern}/${r.mapper}${r.executor === 'none' ? '' : `@${r.executor}`}/${r.policy}`));
  lines.forEach((line, i) => {
    const m = /^\[(\d+)\/(\d+)\] (\S+): p50 [\d.]+ ms, \d+ iterations \(\d+:\d\d elapsed\)$/.exec(line);
    t.truthy(m, line);
    t.is(Number(m![1]), i + 1);
    t.is(Number(m![2]), n);
    t.true(names.delete(m![3]!), `${m![3]} is not a cell of the report, or is listed twice`);
  });
});

test('bench --quick under a pseudo-terminal redraws its line in place, and its counter never goes back', async (t) => {
  if (!existsSync('/usr/bin/script') || spawnSync('script', ['--version']).status !== 0) {
    t.log('skipped: script(1) from util-linux is absent');
    t.pass();
    return;
  }
  const out = path.join(tmp(t), 'report.json');
  const command = [process.execPath, cli, 'bench', '--quick', '--time', '400', '--iterations', '3', '--no-charts', '--out', out].map((a) => `'${a}'`).join(' ');
  // script runs the bench on a pseudo-terminal and copies what it writes (stdout and stderr) to ours.
  const { stdout } = await run('script', ['-qfec', command, '/dev/null'], { cwd: repoDir, maxBuffer: 16 << 20, env: { ...process.env, NO_COLOR: '1' } });
  const seen = counters(stdout);
  // How often it redraws is the throttle's business, checked on a fake clock above: here, that
  // a real terminal gets the redrawn line, more than once, and never a counter going back.
  t.true(seen.length >= 2, `only ${seen.length} redraws`);
  for (let i = 1; i < seen.length; i++) t.true(seen[i]![0] >= seen[i - 1]![0], `counter went from ${seen[i - 1]![0]} to ${seen[i]![0]}`);
  t.true(seen.every(([, n]) => n === 8));
  t.regex(stdout, /report: /);
  t.true(existsSync(out));
});
