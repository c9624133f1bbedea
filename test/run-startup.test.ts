import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRunBundle } from '../harness/build-run-bundle.js';
import {
  RUN_BUNDLE,
  RUN_BUNDLE_CACHE,
  RUN_BUNDLE_INPUTS,
  contentDigest,
  runBundleIsFresh,
} from '../harness/run-bundle-loader.cjs';
import { CLI } from './helpers/executor-process.js';
import { compile, tempDir } from './helpers/jitlink-run.js';

/**
 * What `jitmem run` loads, read from Node's own module hooks: never the bench, the charts,
 * the reports or compare; with a fresh bundle, one file for the whole command; with a bundle
 * older than a module it holds, the modules themselves (so a tsc run alone never runs stale code).
 */

const REGISTER = fileURLToPath(new URL('./helpers/module-log-register.js', import.meta.url));
const DIST = path.resolve(path.dirname(CLI), '..');

function loadedModules(
  t: { teardown(fn: () => void): void },
  args: readonly string[],
  env: Record<string, string> = {},
) {
  const log = path.join(tempDir(t, 'jitmem-modules-'), 'loaded.txt');
  const r = spawnSync(process.execPath, ['--import', REGISTER, CLI, 'run', ...args], {
    env: { ...process.env, ...env, JITMEM_MODULE_LOG: log },
    encoding: 'utf8',
  });
  const urls = readFileSync(log, 'utf8')
    .split('\n')
    .filter((u) => u.startsWith('file:'));
  const ours = urls.map((u) => path.relative(DIST, fileURLToPath(u))).filter((p) => !p.startsWith('..'));
  return { status: r.status, stderr: r.stderr, ours: [...new Set(ours)].sort() };
}

const HARNESS_ONLY = /^harness\/(bench|charts|compare|report|component-benches|profile)\//;

test('jitmem run from its modules loads no bench, chart, report or compare module', (t) => {
  const object = compile(tempDir(t), 'seven.c', 'int main(void) { return 7; }\n', ['-O2']);
  for (const mapper of ['inprocess', 'shared']) {
    const r = loadedModules(t, ['--mapper', mapper, object], { JITMEM_RUN_BUNDLE: '0' });
    t.is(r.status, 7, r.stderr);
    t.true(r.ours.includes('harness/commands/run.js'));
    t.true(r.ours.includes('loader/run-program.js'));
    t.deepEqual(
      r.ours.filter((p) => HARNESS_ONLY.test(p)),
      [],
      mapper,
    );
    // Only the mapper asked for.
    t.is(r.ours.includes('mappers/rpc-copy-mapper.js'), false, mapper);
  }
});

test('with a fresh bundle jitmem run loads one file for the command; a module with other content than in the bundle turns it off', async (t) => {
  if (!runBundleIsFresh()) t.true(await buildRunBundle(), 'esbuild is a dev dependency: the bundle can be built');
  t.true(runBundleIsFresh());
  t.true(statSync(RUN_BUNDLE_CACHE).size > 0, 'V8 code cache made with the bundle');
  const object = compile(tempDir(t), 'seven.c', 'int main(void) { return 7; }\n', ['-O2']);
  const r = loadedModules(t, ['--mapper', 'shared', object]);
  t.is(r.status, 7, r.stderr);
  // The command runs from the bundle, read and compiled as one script: no command table, no
  // modules of its own; the entry and the bundle's loader are CommonJS (no ES module loader needed).
  t.deepEqual(r.ours, ['harness/cli.cjs', 'harness/cli.js', 'harness/run-bundle-loader.cjs']);
  // Every module the bundle holds is listed with its content's digest, and exists.
  const listed = readFileSync(RUN_BUNDLE_INPUTS, 'utf8');
  const inputs = listed
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ') as [string, string]);
  const paths = inputs.map(([, p]) => p);
  t.true(paths.includes('commands/run.js') && paths.includes('../loader/run-program.js'), paths.join(' '));
  for (const [digest, input] of inputs) t.is(contentDigest(path.join(path.dirname(RUN_BUNDLE), input)), digest, input);
  // Every module newer than the bundle but with the content it was made from (an installed
  // package's files all get the time they were unpacked): the bundle is used.
  const { atime, mtime } = statSync(RUN_BUNDLE);
  utimesSync(RUN_BUNDLE, atime, new Date(1_000_000));
  try {
    t.true(runBundleIsFresh());
    // A module whose content is not the one the bundle holds: the CLI loads the modules.
    writeFileSync(
      RUN_BUNDLE_INPUTS,
      listed.replace(/^[0-9a-f]{40} commands\/run\.js$/m, `${'0'.repeat(40)} commands/run.js`),
    );
    t.false(runBundleIsFresh());
    const stale = loadedModules(t, [object]);
    t.is(stale.status, 7, stale.stderr);
    t.true(stale.ours.includes('harness/commands/run.js') && stale.ours.includes('loader/run-program.js'));
  } finally {
    writeFileSync(RUN_BUNDLE_INPUTS, listed);
    utimesSync(RUN_BUNDLE, atime, mtime);
  }
  t.true(runBundleIsFresh());
});
