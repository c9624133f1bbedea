import test from 'ava';
import { CellRunner, type Cell } from '../harness/bench/cell-runner.js';
import type { AddressRange } from '../harness/bench/integrity.js';
import { openHandle } from '../harness/bench/mapper-handles.js';
import { churnPlan } from '../workloads/patterns/churn-pattern.js';
import type { Plan } from '../workloads/patterns/plan.js';
import { CorruptingMapper } from './helpers/corrupting-mapper.js';
import { incGraph } from './helpers/graphs.js';

/**
 * Where the bench checks the executor's memory (cell-runner.ts IntegrityChecks): every free of
 * the first round's first warm-up iterations, the end of the warm-up iteration of each later
 * round, nothing in measured iterations. Over the churn pattern, whose frees come one at a time in
 * the middle of an iteration and all together at its end, an iteration that checks every free
 * hashes once per free step, one that checks its end hashes once, the others not at all.
 */

const cell: Cell = { workload: 'inc', pattern: 'churn', mapper: 'inprocess', executor: 'none', policy: 'first-fit' };
const graphs = [incGraph('a'), incGraph('b'), incGraph('c')];
const plan = churnPlan(graphs, { seed: 3, operations: 40, liveSet: 4 });
const options = { time: 50, iterations: 4, warmupIterations: 2, cold: false, granularity: 1 << 20 };

function freeSteps(p: Plan): Array<readonly number[]> {
  return [...p.steps()].flatMap((s) => (s.op === 'free' ? [s.ids] : []));
}

test('the first round checks every free of its first warmupIterations warm-ups, a later round\'s warm-up its end, a measured iteration nothing', async (t) => {
  const handle = await openHandle('inprocess', 'none', { executorCpus: null });
  t.teardown(() => handle.close());
  const hashed: number[] = [];
  const counted = {
    ...handle,
    digest: (ranges: readonly AddressRange[]) => {
      hashed.push(ranges.length);
      return handle.digest(ranges);
    },
  };
  const frees = freeSteps(plan);
  // Mid-iteration frees of one allocation each, then the drain of what is left.
  t.true(frees.length > 3 && frees.slice(0, -1).every((ids) => ids.length === 1), JSON.stringify(frees));
  const runner = new CellRunner(cell, counted, plan, options);
  const hashesOf = async (run: () => Promise<unknown>) => {
    const before = hashed.length;
    await run();
    return hashed.slice(before);
  };
  const everyFree = frees.map((ids) => ids.length * 3);
  t.deepEqual(await hashesOf(() => runner.firstRoundWarmupStep()), everyFree);
  t.deepEqual(await hashesOf(() => runner.firstRoundWarmupStep()), everyFree);
  t.deepEqual(await hashesOf(() => runner.firstRoundWarmupStep()), []);
  await runner.beginMeasuring();
  t.deepEqual(await hashesOf(() => runner.step()), []);
  await runner.endMeasuring();
  // The next round's warm-up, two iterations: each hashes the three segments of every
  // allocation its drain frees.
  const drained = frees.at(-1)!.length * 3;
  t.deepEqual(await hashesOf(() => runner.warmup(2)), [drained, drained]);
  await runner.beginMeasuring();
  t.deepEqual(await hashesOf(() => runner.step()), []);
  await runner.endMeasuring();
  // Only the measured iterations are recorded.
  t.is(runner.latencies.length, 2);
});

test('a byte flipped in an allocation the churn frees mid-iteration: the first warm-up catches it at that free, naming the address', async (t) => {
  // The first allocation (id 0) must be freed before the drain, or the end-of-iteration check
  // would catch it anyway and the test would not tell the two checks apart.
  const frees = freeSteps(plan);
  const freedAt = frees.findIndex((ids) => ids.includes(0));
  t.true(freedAt >= 0 && freedAt < frees.length - 1, `id 0 freed by free step ${freedAt} of ${frees.length}`);
  const handle = await openHandle('inprocess', 'none', { executorCpus: null });
  t.teardown(() => handle.close());
  const corrupter = new CorruptingMapper(handle.memoryMapper);
  const runner = new CellRunner(cell, { ...handle, memoryMapper: corrupter }, plan, options);
  const err = await t.throwsAsync(runner.firstRoundWarmupStep(), { code: 'ERR_INTEGRITY' });
  t.truthy(corrupter.flipped);
  t.true(err!.message.includes(`address 0x${corrupter.flipped!.toString(16)}`), err!.message);
  t.regex(err!.message, /cell inc\/churn\/inprocess\/first-fit/);
});

test('a byte flipped in an allocation live at the end: a later round\'s warm-up catches it at the drain, a measured iteration does not look', async (t) => {
  const handle = await openHandle('inprocess', 'none', { executorCpus: null });
  t.teardown(() => handle.close());
  // Two allocations of one graph, both freed by the plan's last step.
  const endPlan = churnPlan([incGraph('a')], { seed: 1, operations: 0, liveSet: 2, band: 0 });
  t.deepEqual(freeSteps(endPlan), [[0, 1]]);
  const corrupter = new CorruptingMapper(handle.memoryMapper);
  const runner = new CellRunner(cell, { ...handle, memoryMapper: corrupter }, endPlan, options);
  await runner.beginMeasuring();
  await runner.step();
  await runner.endMeasuring();
  t.truthy(corrupter.flipped);
  corrupter.flipped = undefined;
  // The measured iteration ran with a flipped byte and said nothing; the warm-up flips its own
  // first allocation's and names it at the drain.
  const err = await t.throwsAsync(runner.warmup(1), { code: 'ERR_INTEGRITY' });
  t.true(err!.message.includes(`address 0x${corrupter.flipped!.toString(16)}`), err!.message);
});
