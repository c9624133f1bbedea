import test from 'ava';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './helpers/jitlink-run.js';

/**
 * The young generation a large `jitmem run` link gets (harness/young-generation.ts), observed in
 * fresh processes. V8 hashes its flags into a code cache when it first makes or takes one, and a
 * process takes only a cache of its own flags' hash: so a cache made while the growth factor is
 * raised is turned away by plain `node` (the flag was raised), and one made after the link is
 * taken (it was put back), which is what build-run-bundle.ts relies on. And a link-shaped
 * allocation (300,000 small objects kept to the end) takes fewer scavenges.
 */

const MODULE = new URL('../harness/young-generation.js', import.meta.url).href;

const SOURCE = 'function f(x) { return x + 1; } f(1);';

const MAKER = `
import vm from 'node:vm';
import { writeFileSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { FAST_GROWTH_FROM_BYTES, withYoungGenerationFor } from ${JSON.stringify(MODULE)};
const [size, when, cacheFile] = process.argv.slice(2);
const makeCache = () => {
  const s = new vm.Script(${JSON.stringify(SOURCE)});
  s.runInThisContext();
  writeFileSync(cacheFile, s.createCachedData());
};
let scavenges = 0;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
});
observer.observe({ entryTypes: ['gc'] });
const bytes = size === 'large' ? FAST_GROWTH_FROM_BYTES : FAST_GROWTH_FROM_BYTES - 1;
const kept = await withYoungGenerationFor(bytes, async () => {
  if (when === 'during') makeCache();
  const objects = [];
  for (let i = 0; i < 300_000; i++) objects.push({ index: i, name: 'symbol' + i, value: i * 8 });
  return objects.length;
});
if (when === 'after') makeCache();
await new Promise((resolve) => setTimeout(resolve, 50));
observer.disconnect();
console.log(JSON.stringify({ kept, scavenges }));
`;

const TAKER = `
const vm = require('node:vm');
const cachedData = require('node:fs').readFileSync(process.argv[1]);
console.log(new vm.Script(${JSON.stringify(SOURCE)}, { cachedData }).cachedDataRejected ? 'rejected' : 'taken');
`;

function node(args: readonly string[]): string {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * A link-shaped allocation of `size` in a fresh process started with `flags`: its scavenges, and
 * whether a process started with the same flags takes the code cache it made `when`.
 */
function probe(
  dir: string,
  size: 'large' | 'small',
  when: 'during' | 'after',
  flags: readonly string[] = [],
): { kept: number; scavenges: number; cache: string } {
  const script = path.join(dir, 'maker.mjs');
  const cacheFile = path.join(dir, `${size}-${when}.cache`);
  writeFileSync(script, MAKER);
  const made = JSON.parse(node([...flags, script, size, when, cacheFile])) as { kept: number; scavenges: number };
  return { ...made, cache: node([...flags, '-e', TAKER, cacheFile]) };
}

test('a large link raises the growth factor while it runs and puts it back after; a small one leaves V8 alone', (t) => {
  const dir = tempDir(t);
  const during = probe(dir, 'large', 'during');
  t.is(during.kept, 300_000);
  t.is(during.cache, 'rejected', 'a cache made under the raised flag does not match plain node');
  const after = probe(dir, 'large', 'after');
  t.is(after.cache, 'taken', 'after the link the flags are as plain node has them');
  const small = probe(dir, 'small', 'during');
  t.is(small.cache, 'taken', 'below the threshold no flag changes');
  t.true(
    after.scavenges < small.scavenges,
    `the same allocation took ${after.scavenges} scavenges with fast growth and ${small.scavenges} without`,
  );
});

test("a growth factor Node was started with is the user's: the helper changes nothing", (t) => {
  const r = probe(tempDir(t), 'large', 'during', ['--semi-space-growth-factor=4']);
  t.is(r.kept, 300_000);
  t.is(r.cache, 'taken', 'the cache made during the link matches a node started with the same flag');
});
