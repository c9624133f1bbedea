import test from 'ava';
import { createHash } from 'node:crypto';
import * as native from '../native/index.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import type { AllocInfo, ExecutorAddrRange, MemoryMapper } from '../mappers/memory-mapper.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../mappers/slab/slab-memory-manager.js';
import { churnPlan } from '../workloads/patterns/churn-pattern.js';
import { updatePlan } from '../workloads/patterns/update-pattern.js';
import { returnConstantGraph } from '../workloads/patterns/return-constant.js';
import { runPlan } from '../workloads/patterns/run-plan.js';
import type { Plan, Step } from '../workloads/patterns/plan.js';
import { PhaseClock } from '../harness/bench/phase-clock.js';
import { openTarget } from './helpers/mapper-targets.js';

/**
 * Plans with several finalizes and frees in flight (runPlan's inFlight): operations overlap, a
 * free waits for the finalize of what it frees, a freed range is handed out again only once its
 * deinitialize has returned, and the memory ends up as a sequential run leaves it.
 */

/**
 * The in-process mapper with initialize and deinitialize answered a turn of the event loop late,
 * as a remote executor answers, recording what is in flight.
 */
class SlowAnswers implements MemoryMapper {
  readonly inner = new InProcessMemoryMapper();
  readonly pageSize = this.inner.pageSize;
  inFlight = 0;
  maxInFlight = 0;
  /** Ranges whose deinitialize has been asked for but has not returned. */
  readonly freeing = new Set<number>();
  readonly events: string[] = [];
  reusedTooEarly = 0;

  reserve(bytes: number): Promise<ExecutorAddrRange> {
    return this.inner.reserve(bytes);
  }

  prepare(addr: number, size: number): Uint8Array {
    if (this.freeing.has(addr)) this.reusedTooEarly++;
    return this.inner.prepare(addr, size);
  }

  async initialize(info: AllocInfo): Promise<number> {
    return this.late(`initialize ${info.mappingBase}`, () => this.inner.initialize(info));
  }

  async deinitialize(keys: readonly number[]): Promise<void> {
    for (const k of keys) this.freeing.add(k);
    try {
      await this.late(`deinitialize ${keys.join(',')}`, () => this.inner.deinitialize(keys));
    } finally {
      for (const k of keys) this.freeing.delete(k);
    }
  }

  release(bases: readonly number[]): Promise<void> {
    return this.inner.release(bases);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async late<T>(what: string, run: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.events.push(`${what} sent`);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      return await run();
    } finally {
      this.inFlight--;
      this.events.push(`${what} answered`);
    }
  }
}

test('update with 8 in flight: operations overlap, each free follows its finalize, no range is reused before its deinitialize returned', async (t) => {
  const mapper = new SlowAnswers();
  t.teardown(() => mapper.close());
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  const graph = returnConstantGraph(42);
  const finalizedAt = new Map<FinalizedAllocation, number>();
  const result = await runPlan(updatePlan([graph], { times: 30 }), manager, {
    inFlight: 8,
    freeAtEnd: true,
    hooks: {
      finalized: (_step, fin) => {
        finalizedAt.set(fin, mapper.events.length);
        t.is(native.callInt32(fin.sectionAddress('.text')), 42);
      },
      beforeFree: async (allocs) => {
        // What is freed was finalized and answered before its deinitialize goes out.
        for (const a of allocs) t.true(finalizedAt.has(a));
      },
    },
  });
  t.like(result, { allocations: 31, frees: 31 });
  t.true(mapper.maxInFlight > 1, `at most ${mapper.maxInFlight} in flight`);
  t.true(mapper.maxInFlight <= 8);
  t.is(mapper.reusedTooEarly, 0);
  t.like(manager.stats(), { liveAllocations: 0, liveBytes: 0 });
});

test('churn with 16 in flight leaves the same allocator state and the same bytes as a sequential run', async (t) => {
  const graphs = [1, 2, 3, 4, 5].map((v) => returnConstantGraph(v));
  const plan = churnPlan(graphs, { seed: 7, operations: 400, liveSet: 12 });
  const runs = [];
  for (const inFlight of [1, 16]) {
    const mapper = new SlowAnswers();
    t.teardown(() => mapper.close());
    const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
    let wrong = 0;
    const result = await runPlan(plan, manager, {
      inFlight,
      hooks: {
        finalized: (step, fin) => {
          const expected = graphs.indexOf(step.graph) + 1;
          if (native.callInt32(fin.sectionAddress('.text')) !== expected) wrong++;
        },
      },
      freeAtEnd: true,
    });
    t.is(wrong, 0);
    t.is(mapper.reusedTooEarly, 0);
    runs.push({ result, maxInFlight: mapper.maxInFlight, stats: manager.stats() });
  }
  t.is(runs[0]!.maxInFlight, 1);
  t.true(runs[1]!.maxInFlight > 1);
  // peakLive counts finalized allocations, which differ in number at any one moment.
  const { peakLive: _a, ...pipelined } = runs[1]!.result;
  const { peakLive: _b, ...sequential } = runs[0]!.result;
  t.deepEqual(pipelined, sequential);
  t.like(runs[1]!.stats, { liveAllocations: 0, liveBytes: 0 });
});

test('a failing finalize in flight fails the run and leaves nothing allocated', async (t) => {
  const mapper = new SlowAnswers();
  t.teardown(() => mapper.close());
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  const good = returnConstantGraph(1);
  let n = 0;
  const original = mapper.initialize.bind(mapper);
  mapper.initialize = async (info) => {
    if (++n === 5) throw Object.assign(new Error('refused'), { code: 'ERR_TEST_REFUSED' });
    return original(info);
  };
  await t.throwsAsync(runPlan(updatePlan([good], { times: 10 }), manager, { inFlight: 8, freeAtEnd: true }), {
    code: 'ERR_TEST_REFUSED',
  });
  t.is(manager.stats().liveAllocations, 0);
});

test('shared memory over a real executor: an update with 16 in flight, the bytes of every version right in the executor when it is freed', async (t) => {
  const target = await openTarget('shared');
  t.teardown(() => target.close());
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
  const graph = returnConstantGraph(9);
  const text = graph.sections[0]!.content!;
  const expected = createHash('sha256').update(text).digest('hex');
  let checked = 0;
  const callsBefore = target.session!.counters().calls;
  const result = await runPlan(updatePlan([graph], { times: 20 }), manager, {
    inFlight: 16,
    freeAtEnd: true,
    hooks: {
      beforeFree: async (allocs, { drain }) => {
        await drain();
        const digests = await target.digest(
          allocs.map((a) => ({ start: a.sectionAddress('.text'), length: text.length })),
        );
        for (const d of digests) t.is(d, expected);
        checked += allocs.length;
      },
    },
  });
  t.like(result, { allocations: 21, frees: 21 });
  t.is(checked, 21);
  // One reserve, one initialize and one deinitialize per version, the checks besides.
  t.is(target.session!.counters().calls - callsBefore, 1 + 42 + 21);
  t.like(manager.stats(), { liveAllocations: 0 });
});

test('the phase clock counts overlapping operations once and time with none under way not at all', async (t) => {
  const clock = new PhaseClock();
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const t0 = performance.now();
  await Promise.all([clock.timeAsync('initialize', () => wait(40)), clock.timeAsync('deinitialize', () => wait(40))]);
  const wall = performance.now() - t0;
  await wait(40); // nothing timed under way
  // Each phase's total is its share of the time: an instant with both under way counts half to
  // each. These bounds hold at any machine speed, since a timer does not fire early (5 ms allowed
  // for the clocks' rounding): each wait lasts 40 ms or more, so each phase gets at least half of
  // that, and the two together at least one wait and at most the wall time of the Promise.all
  // (the last wait, with nothing under way, is not counted).
  const { initialize, deinitialize } = clock.totals;
  const ms = (x: number) => x.toFixed(1);
  t.true(initialize >= 17 && deinitialize >= 17, `initialize ${ms(initialize)}, deinitialize ${ms(deinitialize)}`);
  t.true(Math.abs(clock.total() - (initialize + deinitialize)) < 1e-6, 'the shares sum to the total');
  t.true(clock.total() >= 35, `total ${ms(clock.total())}`);
  t.true(clock.total() <= wall + 1, `total ${ms(clock.total())} over wall ${ms(wall)}`);
});

test('beforeFree: `last` marks the free that ends the plan (its last operation, phase markers after it or not) and freeAtEnd\'s, no other', async (t) => {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close());
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20 });
  const g = returnConstantGraph(3);
  const runWith = async (steps: Step[], freeAtEnd: boolean) => {
    const seen: Array<{ ids: number; last: boolean }> = [];
    const plan: Plan = { pattern: 'churn', description: 'test', steps: () => steps };
    await runPlan(plan, manager, {
      inFlight: 4,
      freeAtEnd,
      hooks: {
        beforeFree: async (allocs, { last, drain }) => {
          await drain();
          seen.push({ ids: allocs.length, last });
        },
      },
    });
    return seen;
  };
  const alloc = (id: number): Step => ({ op: 'allocate', id, graph: g });
  const phase = (name: string): Step => ({ op: 'phase', name });
  // A churn's end: a phase marker, then the drain.
  t.deepEqual(await runWith([alloc(0), alloc(1), { op: 'free', ids: [0] }, phase('drain'), { op: 'free', ids: [1] }], false), [
    { ids: 1, last: false },
    { ids: 1, last: true },
  ]);
  // Phase markers after the last free do not make it any less the last.
  t.deepEqual(await runWith([alloc(0), { op: 'free', ids: [0] }, phase('a'), phase('b')], false), [{ ids: 1, last: true }]);
  // An allocation after a free: the free was not the last; freeAtEnd's is.
  t.deepEqual(await runWith([alloc(0), { op: 'free', ids: [0] }, alloc(1), phase('end')], true), [
    { ids: 1, last: false },
    { ids: 1, last: true },
  ]);
  // The bench's own plan: every free but the drain is in the middle.
  const churn = churnPlan([g], { seed: 2, operations: 30, liveSet: 3 });
  const flags = await runWith([...churn.steps()], true);
  t.true(flags.length > 2);
  t.deepEqual(
    flags.map((f) => f.last),
    flags.map((_, i) => i === flags.length - 1),
  );
  t.is(manager.stats().liveAllocations, 0);
});
