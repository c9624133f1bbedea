import test from 'ava';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { pageSize } from '../native/index.js';
import { buildCray, renderNativeCray } from '../workloads/cray/cray-build.js';
import { summarizeWorkload } from '../workloads/workload-summary.js';
import { loadWorkload } from '../workloads/workload-sources.js';
import { readelfTotals } from './helpers/readelf.js';
import { runCli } from './helpers/run-cli.js';

/** sha256 of the native cray's rendering of workloads/cray/scene.txt (160x120, binary PPM). */
const SCENE_PPM_SHA256 = '3f5995daf42e45d765b1794335e1fb8c9842dec1130d58b3797331effb5b2f2d';

test('the native cray renders the committed scene to the pinned image', (t) => {
  const build = buildCray();
  const ppm = renderNativeCray(build);
  t.is(ppm.subarray(0, 15).toString('latin1'), 'P6\n160 120\n255\n');
  t.is(ppm.length, 15 + 160 * 120 * 3);
  t.is(createHash('sha256').update(ppm).digest('hex'), SCENE_PPM_SHA256);
});

test('cray: graph count and bytes per group match readelf', (t) => {
  const workload = loadWorkload('cray');
  const expected = readelfTotals(workload.files);
  const summary = summarizeWorkload('cray', workload.graphs, pageSize());
  t.is(summary.graphs, 1);
  t.is(summary.graphs, expected.graphs);
  t.deepEqual(summary.content, expected.content);
  t.deepEqual(summary.zeroFill, expected.zeroFill);
  t.true((summary.content['r-x'] ?? 0) > 4000, 'cray has code');
  t.log(
    `cray: content ${JSON.stringify(summary.content)}, zero-fill ${JSON.stringify(summary.zeroFill)}, ${summary.pages} pages`,
  );
});

test('builds are cached by source, flags and compiler, and rebuilt when one changes', (t) => {
  const first = buildCray();
  const before = statSync(first.object).mtimeMs;
  const again = buildCray();
  t.is(again.object, first.object);
  t.is(statSync(again.object).mtimeMs, before, 'an unchanged build is not redone');
  t.true(first.object.includes(path.join('build', 'workloads', 'cray')));
  // Naming the compiler differently changes the key: a build of its own.
  const other = buildCray({ ...process.env, CC: 'gcc' });
  t.not(other.object, first.object);
  t.is(createHash('sha256').update(renderNativeCray(other)).digest('hex'), SCENE_PPM_SHA256);
});

test('jitmem workloads --objects FILE --json prints one entry named objects', (t) => {
  const build = buildCray();
  const { status, stdout } = runCli(['workloads', '--objects', build.object, '--json']);
  t.is(status, 0);
  const entries = JSON.parse(stdout) as Array<{
    name: string;
    graphs: number;
    content: object;
    zeroFill: object;
    pages: number;
  }>;
  const expected = readelfTotals([build.object]);
  t.is(entries.length, 1);
  t.like(entries[0], { name: 'objects', graphs: 1, content: expected.content, zeroFill: expected.zeroFill });

  const table = runCli(['workloads', 'cray']);
  t.is(table.status, 0);
  const [header, row] = table.stdout.trimEnd().split('\n');
  t.regex(header!, /^workload\s+graphs\s+r-x bytes\s+r-- bytes\s+rw- zero-fill\s+pages$/);
  t.regex(row!, /^cray\s+1\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+\d+$/);
  t.is(header!.length, row!.length, 'columns line up');

  const bad = runCli(['workloads', '--objects', build.source]);
  t.is(bad.status, 2);
  t.regex(bad.stderr, /cray\.c: at byte offset 0 .*\[ERR_OBJECT_UNKNOWN_FORMAT\]/);
});
