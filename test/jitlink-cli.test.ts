import test from 'ava';
import { parseRunArgs } from '../harness/commands/run.js';
import { parseLlvmTimes } from '../harness/component-benches/link-bench.js';
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
