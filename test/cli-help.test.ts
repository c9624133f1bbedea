import test from 'ava';
import { runCli } from './helpers/run-cli.js';

/**
 * What a new user meets first: every command answers --help with its usage and exit statuses,
 * and a wrong flag with one line (not the whole help) and status 2.
 */

const COMMANDS = ['bench', 'bench-alloc', 'bench-remote', 'charts', 'compare', 'history', 'profile', 'workloads'];

for (const command of COMMANDS) {
  test(`jitmem ${command} --help prints its usage and exits 0; a wrong flag is one line and exit 2`, (t) => {
    const help = runCli([command, '--help']);
    t.is(help.status, 0, help.stderr);
    t.regex(help.stdout, new RegExp(`^usage: jitmem ${command}`));
    const bad = runCli([command, '--no-such-flag']);
    t.is(bad.status, 2, bad.stdout);
    t.is(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    t.regex(bad.stderr, /no-such-flag/);
  });
}

test('bench, bench-alloc, bench-remote and profile say what their exit statuses mean', (t) => {
  for (const command of ['bench', 'bench-alloc', 'bench-remote', 'profile'])
    t.regex(runCli([command, '--help']).stdout, /exit status/, command);
  const bench = runCli(['bench', '--help']).stdout;
  t.regex(bench, /--time MS .*\(quick 1200, default 700,\s+full 2000\)/s);
  t.regex(bench, /--iterations N .*\(quick 24, default 12, full 30\)/);
  t.regex(bench, /--check-budgets/);
});

test('executor --help describes every flag, its exit statuses, and how llvm-jitlink drives it', (t) => {
  const r = runCli(['executor', '--help']);
  t.is(r.status, 0, r.stderr);
  for (const flag of [
    '--fds',
    '--listen',
    '--connect',
    '--allow-remote',
    '--no-auth',
    '--sessions',
    '--max-frame-size',
    '--max-unsent-bytes',
    '--close-when-idle',
    '--no-close-when-idle',
    '--help',
  ]) {
    t.regex(r.stdout, new RegExp(`^  (-h, )?${flag}\\b.*\\S`, 'm'), flag);
  }
  t.regex(r.stdout, /exit status:/);
  t.regex(r.stdout, /llvm-jitlink --oop-executor-connect=127\.0\.0\.1:\d+ hello\.o/);
  const bad = runCli(['executor', '--no-such-flag']);
  t.is(bad.status, 2);
  t.is(bad.stderr.trim().split('\n').length, 1);
});

test('bench-alloc --sizes takes counts as the help writes them (10k)', (t) => {
  const r = runCli(['bench-alloc', '--sizes', '10k', '--policy', 'first-fit', '--time', '50', '--json']);
  t.is(r.status, 0, r.stderr);
  const { rows } = JSON.parse(r.stdout) as { rows: Array<{ freeRanges: number }> };
  t.deepEqual(
    rows.map((x) => x.freeRanges),
    [10000],
  );
  const bad = runCli(['bench-alloc', '--sizes', '10q']);
  t.is(bad.status, 2);
  t.regex(
    bad.stderr,
    /--sizes must be positive counts such as 1000, 10k or 1m; got "10q" \[ERR_INVALID_OPTION_VALUE\]/,
  );
});

test('bench-alloc --rounds takes 3 to 1000 rounds, and names the value and what it takes otherwise', (t) => {
  const few = runCli(['bench-alloc', '--rounds', '2']);
  t.is(few.status, 2);
  t.regex(few.stderr, /--rounds must be at least 3 rounds \(an interval needs them\); got "2" \[ERR_INVALID_OPTION_VALUE\]/);
  const many = runCli(['bench-alloc', '--rounds', '1001']);
  t.is(many.status, 2);
  t.regex(many.stderr, /--rounds "1001" is above the limit of 1000 \[ERR_OPTION_VALUE_TOO_LARGE\]/);
  const r = runCli(['bench-alloc', '--sizes', '1k,100k', '--policy', 'best-fit', '--rounds', '3', '--time', '30', '--json']);
  t.is(r.status, 0, r.stderr);
  const { rows, budgets } = JSON.parse(r.stdout) as {
    rows: Array<{ roundP50s: number[] }>;
    budgets: Array<{ label: string; rounds: number; verdict: string }>;
  };
  t.deepEqual(
    rows.map((x) => x.roundP50s.length),
    [3, 3],
  );
  t.deepEqual(
    budgets.map((b) => [b.label, b.rounds]),
    [['best-fit: round median at 100k over at 1k', 3]],
  );
  t.true(['ok', 'over', 'undecided'].includes(budgets[0]!.verdict));
});

test('bench-remote --json prints its figures as JSON on stdout and its commentary on stderr; flags are checked', (t) => {
  const r = runCli(['bench-remote', '--iterations', '1', '--calls', '200', '--json']);
  t.is(r.status, 0, r.stderr);
  const figures = JSON.parse(r.stdout) as {
    latencyUs: Record<string, { median: number } | null>;
    loadMs: Record<string, number>;
    extraMs: { shared: number; rpc: number };
    budgetsMs: { shared: number; rpc: number };
  };
  t.true(figures.latencyUs['same-cpu']!.median > 0);
  t.deepEqual(Object.keys(figures.loadMs).sort(), ['in-process', 'rpc-copy', 'shared']);
  t.deepEqual(figures.budgetsMs, { shared: 8, rpc: 15 });
  t.regex(r.stderr, /CPython-shaped load/);
  for (const [flag, value] of [
    ['--iterations', '0'],
    ['--calls', 'many'],
  ]) {
    const bad = runCli(['bench-remote', flag!, value!]);
    t.is(bad.status, 2);
    t.regex(bad.stderr, new RegExp(`${flag} must be a positive integer; got "${value}"`));
  }
});
