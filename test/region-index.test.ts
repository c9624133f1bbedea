import test from 'ava';
import { RegionIndex } from '../mappers/region-index.js';

/**
 * The index against the pass over every region it replaced: 20,000 random operations on regions
 * of 1-5 units in a space of 400 (set where nothing overlaps, as initialize does, delete, and
 * every query), each query answered as the pass answers it.
 */

/** A small deterministic generator (mulberry32), so that a failure replays. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

type Region = { readonly end: number; readonly tag: number };

/** The pass over every region, as the mappers made it: the lowest overlapping, any holding, the one at an address. */
function lowestOverlapping(model: Map<number, Region>, start: number, end: number): number | undefined {
  const keys = [...model.keys()].filter((k) => k < end && model.get(k)!.end > start);
  return keys.length ? Math.min(...keys) : undefined;
}
function holds(model: Map<number, Region>, address: number, size: number): boolean {
  return [...model].some(([k, r]) => address >= k && address + size <= r.end);
}
function at(model: Map<number, Region>, address: number): Region | undefined {
  return [...model].find(([k, r]) => address >= k && address < r.end)?.[1];
}

for (const seed of [1, 2, 3]) {
  test(`20,000 operations answer as a pass over every region would (seed ${seed})`, (t) => {
    const next = random(seed);
    const int = (n: number) => Math.floor(next() * n);
    const index = new RegionIndex<Region>();
    const model = new Map<number, Region>();
    let mismatches = 0;
    let most = 0;
    const check = (ok: boolean, what: () => string) => {
      if (!ok && mismatches++ < 5) t.fail(what());
    };
    for (let op = 0; op < 20_000; op++) {
      const start = int(400);
      const size = int(6);
      const kind = int(10);
      switch (kind < 4 ? 0 : kind === 4 ? 1 : 2) {
        case 0: {
          // Record a region, only where none overlaps it (what initialize checks first).
          if (size === 0 || lowestOverlapping(model, start, start + size) !== undefined) break;
          const region = { end: start + size, tag: op };
          index.set(start, region);
          model.set(start, region);
          break;
        }
        case 1: {
          const keys = [...model.keys()];
          const key = keys.length && next() < 0.9 ? keys[int(keys.length)]! : start;
          check(index.delete(key) === model.delete(key), () => `delete ${key}`);
          break;
        }
        default: {
          const got = index.overlapping(start, start + size);
          const want = lowestOverlapping(model, start, start + size);
          check(got?.key === want, () => `overlapping [${start}, ${start + size}): ${got?.key} against ${want}`);
          if (got) check(got.region === model.get(got.key), () => `overlapping's region at ${got.key}`);
          check(!!index.holding(start, size) === holds(model, start, size), () => `holding ${start}+${size}`);
          check(index.at(start) === at(model, start), () => `at ${start}`);
        }
      }
      check(index.size === model.size, () => `size ${index.size} against ${model.size}`);
      most = Math.max(most, model.size);
    }
    t.is(mismatches, 0);
    // The order regions were recorded in is kept (a mapper tears them down in reverse).
    t.deepEqual([...index.keys()], [...model.keys()]);
    t.deepEqual([...index.values()], [...model.values()]);
    t.true(most >= 40, `at most ${most} regions at once`);
  });
}

test('a region set again under its key is replaced, not added twice', (t) => {
  const index = new RegionIndex<{ end: number }>();
  index.set(10, { end: 20 });
  index.set(10, { end: 15 });
  t.is(index.size, 1);
  t.is(index.overlapping(16, 18), undefined);
  t.deepEqual(index.overlapping(14, 18), { key: 10, region: { end: 15 } });
  t.true(index.delete(10));
  t.false(index.delete(10));
  t.is(index.overlapping(0, 100), undefined);
});
