import test from 'ava';
import { JitmemError } from '../core/errors.js';
import { pageSize } from '../native/index.js';
import { readObjectFile } from '../objects/read-objects.js';
import { findPythonObjects, PYTHON_CONFIG_DIR_ENV } from '../workloads/python-objects.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';
import { loadWorkload } from '../workloads/workload-sources.js';
import { makeTempDir } from './helpers/object-fixtures.js';
import { readelfTotals } from './helpers/readelf.js';
import { runCli } from './helpers/run-cli.js';
import { protName } from '../graph/alloc-group.js';

const temp = makeTempDir('jitmem-python-');
test.after.always(() => temp.remove());

test('python: python.o and every member of libpython3.11-pic.a, 180 objects, give the graphs and bytes readelf reports', (t) => {
  const python = findPythonObjects();
  t.regex(python.files[1], /libpython3\.11-pic\.a$/);
  t.is(python.files.flatMap((f) => readObjectFile(f)).length, 180);

  const expected = readelfTotals(python.files);
  const workload = loadWorkload('python');
  const summary = summarizeWorkload('python', workload.graphs, pageSize());
  t.is(summary.graphs, expected.graphs);
  t.deepEqual(summary.content, expected.content);
  t.deepEqual(summary.zeroFill, expected.zeroFill);

  // Object by object, not only in total.
  const perGraph = new Map(
    workload.graphs.map((g) => {
      const bytes: Record<string, number> = {};
      for (const s of g.sections) {
        const key = `${s.content === undefined ? 'zero-fill' : 'content'} ${protName(s.group.prot)}`;
        bytes[key] = (bytes[key] ?? 0) + s.size;
      }
      return [g.name, bytes];
    }),
  );
  t.deepEqual(perGraph, expected.perObject);

  // Every segment starts on a page: at least one page per group a graph uses, and whole pages for its bytes.
  const lowerBound = [...expected.perObject.values()].reduce((sum, bytes) => {
    const byGroup = new Map<string, number>();
    for (const [key, n] of Object.entries(bytes))
      byGroup.set(key.split(' ')[1]!, (byGroup.get(key.split(' ')[1]!) ?? 0) + n);
    return sum + [...byGroup.values()].reduce((s, n) => s + Math.ceil(n / pageSize()), 0);
  }, 0);
  t.true(
    summary.pages >= lowerBound && summary.pages < lowerBound * 1.05,
    `pages ${summary.pages}, lower bound ${lowerBound}`,
  );
  t.log(
    `python: ${summary.graphs} graphs, content ${JSON.stringify(summary.content)}, zero-fill ${JSON.stringify(summary.zeroFill)}, ${summary.pages} pages of ${pageSize()} bytes`,
  );
});

test('jitmem workloads python --json prints the same entry', (t) => {
  const { status, stdout } = runCli(['workloads', 'python', '--json']);
  t.is(status, 0);
  const expected = readelfTotals(findPythonObjects().files);
  const [entry] = JSON.parse(stdout) as Array<{
    name: string;
    graphs: number;
    content: object;
    zeroFill: object;
    pages: number;
  }>;
  t.is(entry!.name, 'python');
  t.is(entry!.graphs, expected.graphs);
  t.deepEqual(entry!.content, expected.content);
  t.deepEqual(entry!.zeroFill, expected.zeroFill);
});

test('a directory given by flag or environment is the one used', (t) => {
  const real = findPythonObjects().configDir;
  t.is(findPythonObjects({ env: { [PYTHON_CONFIG_DIR_ENV]: real } }).configDir, real);
  t.is(findPythonObjects({ configDir: real, env: { [PYTHON_CONFIG_DIR_ENV]: temp.dir } }).configDir, real);
});

test('missing CPython objects are an error that names the package and where it looked', (t) => {
  for (const [options, how] of [
    [{ configDir: temp.dir }, '--python-dir'],
    [{ env: { [PYTHON_CONFIG_DIR_ENV]: temp.dir } }, PYTHON_CONFIG_DIR_ENV],
  ] as const) {
    const err = t.throws(() => findPythonObjects(options)) as JitmemError;
    t.is(err.code, 'ERR_PYTHON_NOT_FOUND');
    t.true(err.message.includes('libpython3.11-dev'), err.message);
    t.true(err.message.includes(`${temp.dir} (from ${how})`), err.message);
  }
  const cli = runCli(['workloads', 'python', '--python-dir', temp.dir]);
  t.is(cli.status, 2);
  t.regex(cli.stderr, /libpython3\.11-dev.*\[ERR_PYTHON_NOT_FOUND\]/s);
});
