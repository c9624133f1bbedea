import test from 'ava';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRunBundle } from '../harness/build-run-bundle.js';
import { parseRunArgs } from '../harness/commands/run.js';
import type { FirstLinkProbeResult } from '../harness/component-benches/first-link-probe.js';
import { judgeFirstLinks, parseLlvmTimes, type LinkSample } from '../harness/component-benches/link-bench.js';
import { runBundleIsFresh } from '../harness/run-bundle-loader.cjs';
import { JitmemError } from '../core/errors.js';
import { compile, jitmemRun, tempDir } from './helpers/jitlink-run.js';

/** `jitmem run`'s command line: help, flag checks with typed errors, exit statuses. */

test('jitmem run --help prints the usage and the exit statuses, and exits 0', async (t) => {
  const r = await jitmemRun(['--help']);
  t.is(r.status, 0);
  t.regex(
    r.stdout.toString(),
    /^usage: jitmem run \[--mapper inprocess\|shared\|rpc\] \[--executor jitmem\|llvm\] \[--preload LIB\]\.\.\./,
  );
  t.regex(r.stdout.toString(), /exit status:/);
});

test('bad flags exit 2 with a typed error naming the flag', async (t) => {
  for (const [args, pattern] of [
    [
      ['--mapper', 'tcp', 'x.o'],
      /--mapper must be one of inprocess, shared, rpc; got "tcp" \[ERR_INVALID_OPTION_VALUE\]/,
    ],
    [
      ['--executor', 'llvm', '--mapper', 'inprocess', 'x.o'],
      /--executor llvm needs --mapper shared or rpc.*\[ERR_CONFLICTING_OPTIONS\]/,
    ],
    [
      ['--frobnicate', 'x.o'],
      /unknown option "--frobnicate" for jitmem run; program arguments go after "--".*\[ERR_UNKNOWN_OPTION\]/,
    ],
    [[], /^jitmem run: no object file or archive to link: name at least one .*\[ERR_LINK_NO_INPUT\]/],
    [['--preload'], /--preload needs a value.*\[ERR_MISSING_OPTION_VALUE\]/],
    [['/nonexistent/prog.o'], /cannot read object file \/nonexistent\/prog\.o: no such file \[ERR_OBJECT_UNREADABLE\]/],
  ] as const) {
    const r = await jitmemRun([...args]);
    t.is(r.status, 2, args.join(' '));
    t.regex(r.stderr, pattern);
    t.is(r.stdout.length, 0);
  }
});

test('parseRunArgs: defaults, the executor implies shared, and arguments after -- belong to the program', (t) => {
  t.like(parseRunArgs(['a.o']), { mapper: 'inprocess', executor: 'jitmem', files: ['a.o'], args: [] });
  t.like(parseRunArgs(['--executor', 'llvm', 'a.o', 'b.a']), {
    mapper: 'shared',
    executor: 'llvm',
    files: ['a.o', 'b.a'],
  });
  t.like(
    parseRunArgs(['--mapper=rpc', '--preload', 'libm.so.6', '--preload=libz.so.1', 'a.o', '--', '--mapper', 'x']),
    {
      mapper: 'rpc',
      preload: ['libm.so.6', 'libz.so.1'],
      files: ['a.o'],
      args: ['--mapper', 'x'],
    },
  );
  t.throws(() => parseRunArgs(['--show-times=yes', 'a.o']), {
    instanceOf: JitmemError,
    code: 'ERR_INVALID_OPTION_VALUE',
  });
});

test("parseLlvmTimes reads llvm-jitlink's -show-times table", (t) => {
  const text = `
   ---User Time---   --System Time--   --User+System--   ---Wall Time---  --- Name ---
   0.0858 ( 95.0%)   0.0329 ( 82.7%)   0.1187 ( 91.3%)   0.1597 ( 84.4%)  time to link object files
   0.0007 (  0.8%)   0.0005 (  1.2%)   0.0012 (  0.9%)   0.0046 (  2.4%)  time to load/add object files
`;
  const s = parseLlvmTimes(text);
  t.is(Math.round(s.wall * 10), 1597);
  t.is(Math.round(s.cpu * 10), 1187);
  t.is(Math.round(s.loadWall * 10), 46);
  t.throws(() => parseLlvmTimes('nothing here'));
});

/** A link sample of `total` ms wall and `cpu` ms CPU (phases split evenly). */
function sampleOf(total: number, cpu = total): LinkSample {
  const q = total / 4;
  return { readObjects: q, resolve: q, layout: q, applyRelocations: q, total, cpu };
}

test('first links in fresh processes are judged on the 95% interval of the paired ratios: ok, over or undecided', (t) => {
  const llvm = [50, 52, 54, 51, 53].map((wall) => ({ wall, cpu: wall * 1.7, loadWall: 1 }));
  const judge = (ratios: readonly number[]) =>
    judgeFirstLinks(
      ratios.map((r, i) => sampleOf(llvm[i]!.wall * r, llvm[i]!.cpu * r)),
      ratios.map(() => 'modules' as const),
      llvm.slice(0, ratios.length),
    );
  const within = judge([0.9, 0.92, 0.88, 0.91, 0.9]);
  t.is(within.ratio?.verdict, 'ok');
  t.is(within.ratio?.n, 5);
  t.true(within.ratio!.ci95[1] < 1 && within.ratio!.ci95[0] > 0.85);
  t.is(Math.round(within.cpuRatio!.geomean * 100), Math.round(within.ratio!.geomean * 100));
  t.is(judge([1.5, 1.45, 1.55, 1.5, 1.48]).ratio?.verdict, 'over');
  // One round past the budget, one well within: the interval straddles 1.0x.
  t.is(judge([0.7, 1.3, 0.9, 1.2, 1.0]).ratio?.verdict, 'undecided');
  // Without llvm-jitlink, or with one round, there is no interval to judge.
  t.is(judgeFirstLinks([sampleOf(60)], ['modules'], null).ratio, undefined);
  t.is(judge([0.9]).ratio, undefined);
});

const FIRST_LINK_PROBE = fileURLToPath(new URL('../harness/component-benches/first-link-probe.js', import.meta.url));

test("bench-link's first-link probe links in a fresh process from jitmem run's bundle and its code cache, or from the modules", async (t) => {
  if (!runBundleIsFresh()) t.true(await buildRunBundle(), 'esbuild is a dev dependency: the bundle can be built');
  const dir = tempDir(t);
  const main = compile(dir, 'main.c', 'int twice(int);\nint main(void) { return twice(21) == 42 ? 0 : 1; }\n', ['-O2']);
  const lib = compile(dir, 'twice.c', 'int twice(int x) { return 2 * x; }\n', ['-O2', '-fPIC']);
  const archive = path.join(dir, 'libtwice.a');
  execFileSync('ar', ['rcs', archive, lib]);
  const probe = (env: Record<string, string>) =>
    JSON.parse(
      execFileSync(process.execPath, [FIRST_LINK_PROBE, main, archive], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      }),
    ) as FirstLinkProbeResult;
  for (const [env, source] of [
    [{}, 'bundle, code cache used'],
    [{ JITMEM_RUN_BUNDLE: '0' }, 'modules'],
  ] as const) {
    const r = probe(env);
    t.is(r.source, source);
    const s = r.sample;
    for (const k of ['readObjects', 'resolve', 'layout', 'applyRelocations', 'cpu'] as const) t.true(s[k] >= 0, k);
    t.is(s.total, s.readObjects + s.resolve + s.layout + s.applyRelocations);
    t.true(s.total > 0);
  }
});

test('--show-times says how start-up went: to the command, to the modules, and the executor spawn to Setup', async (t) => {
  const object = compile(tempDir(t), 'seven.c', 'int main(void) { return 7; }\n', ['-O2']);
  const number = String.raw`\s+\d+\.\d\d ms`;
  for (const mapper of ['inprocess', 'shared', 'rpc']) {
    const r = await jitmemRun(['--show-times', '--mapper', mapper, object]);
    t.is(r.status, 7, mapper);
    t.regex(r.stderr, new RegExp(`start: process start to command ready${number}`), mapper);
    t.regex(r.stderr, new RegExp(`start: command ready to modules loaded${number}`), mapper);
    const spawnLine = new RegExp(`start: executor spawn to Setup${number} \\(while the modules load\\)`);
    if (mapper === 'inprocess') t.notRegex(r.stderr, spawnLine);
    else t.regex(r.stderr, spawnLine, mapper);
    t.regex(r.stderr, /read objects/);
  }
});
