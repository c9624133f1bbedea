import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JitmemError } from '../core/errors.js';
import { OPTIONAL_PACKAGES, importOptional, missingPackage } from '../harness/optional-dependency.js';
import { makeTempDir } from './helpers/object-fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** A name no registry holds; held in a variable so that TypeScript does not look for its types. */
const ABSENT: string = 'jitmem-test-absent-package';

test('an optional package that is not installed gives one ERR_OPTIONAL_DEPENDENCY_MISSING naming every missing package and the install command', async (t) => {
  // Imported by our own module: exactly what a missing vega looks like.
  const absent = ABSENT;
  const err = await t.throwsAsync(importOptional(() => import(absent), [absent, 'ajv', 'jitmem-test-absent-too'], 'drawing a test chart'), { instanceOf: JitmemError });
  t.is(err!.code, 'ERR_OPTIONAL_DEPENDENCY_MISSING');
  t.is(
    err!.message,
    'drawing a test chart needs the packages jitmem-test-absent-package and jitmem-test-absent-too, which are not installed (optional, so that using jitmem as a library does not pull them); install with: npm install jitmem-test-absent-package jitmem-test-absent-too',
  );
  t.deepEqual(err!.details, { packages: [absent, 'jitmem-test-absent-too'], neededFor: 'drawing a test chart' });
  t.is((err!.cause as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
});

test('a missing package that is not one of the optional ones, and a present package, go through unchanged', async (t) => {
  const err = await t.throwsAsync(importOptional(() => import(ABSENT), ['vega'], 'charts'));
  t.is((err as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
  t.false(err instanceof JitmemError);
  const ajv = await importOptional(() => import('ajv'), ['ajv'], 'validation');
  t.is(typeof ajv.default, 'function');
});

test("an optional package that is installed but misses one of its own dependencies is a broken install, not a missing package", async (t) => {
  const tmp = makeTempDir('jitmem-optional-');
  t.teardown(tmp.remove);
  // A package root of our own, with a dependency that imports something absent.
  const broken = path.join(tmp.dir, 'node_modules', 'broken-chart-lib');
  mkdirSync(broken, { recursive: true });
  writeFileSync(path.join(broken, 'package.json'), JSON.stringify({ name: 'broken-chart-lib', type: 'module', main: 'index.js' }));
  writeFileSync(path.join(broken, 'index.js'), "export * from 'absent-inner-dependency';\n");
  writeFileSync(path.join(tmp.dir, 'ours.mjs'), "export * from 'broken-chart-lib';\n");
  writeFileSync(path.join(tmp.dir, 'ours-direct.mjs'), "export * from 'absent-inner-dependency';\n");
  const inner = await t.throwsAsync(import(pathToFileURL(path.join(tmp.dir, 'ours.mjs')).href));
  t.is(missingPackage(inner, ['broken-chart-lib', 'absent-inner-dependency'], tmp.dir), null);
  const direct = await t.throwsAsync(import(pathToFileURL(path.join(tmp.dir, 'ours-direct.mjs')).href));
  t.is(missingPackage(direct, ['broken-chart-lib', 'absent-inner-dependency'], tmp.dir), 'absent-inner-dependency');
  // Something else than a missing module is never taken for one.
  t.is(missingPackage(new Error("Cannot find package 'vega'"), ['vega'], tmp.dir), null);
});

test('the optional packages are optional peers of the package and development dependencies of the repository', (t) => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  t.deepEqual(Object.keys(pkg.peerDependencies!).sort(), [...OPTIONAL_PACKAGES].sort());
  for (const name of OPTIONAL_PACKAGES) {
    t.deepEqual(pkg.peerDependenciesMeta![name], { optional: true }, name);
    t.is(pkg.devDependencies![name], pkg.peerDependencies![name], `${name}: the repository installs the version the package accepts`);
    t.false(name in (pkg.dependencies ?? {}), `${name} is not a dependency`);
  }
});
