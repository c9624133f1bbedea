import test from 'ava';
import { createHash } from 'node:crypto';
import { JitmemError } from '../core/errors.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { allocGroup, R, X } from '../graph/alloc-group.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../mappers/slab/slab-memory-manager.js';
import * as native from '../native/index.js';
import {
  churnPlan,
  loadPlan,
  patchPlan,
  returnConstantCode,
  returnConstantGraph,
  runPlan,
  sweepGraphs,
  sweepPlan,
  sweepSizes,
  updatePlan,
  type Plan,
  type Step,
} from '../workloads/patterns/index.js';
import { loadWorkload } from '../workloads/workload-sources.js';

let python: readonly LinkGraph[];
let cray: readonly LinkGraph[];
test.before(() => {
  python = loadWorkload('python').graphs;
  cray = loadWorkload('cray').graphs;
});

function inProcessManager(t: import('ava').ExecutionContext, granularity = 1 << 20): SlabMemoryManager {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close());
  return new SlabMemoryManager(mapper, { granularity });
}

/** The in-process mapper of a manager made by inProcessManager: it patches code in place. */
function patcherOf(manager: SlabMemoryManager): InProcessMemoryMapper {
  return manager.mapper as InProcessMemoryMapper;
}

/** A step as plain data, with content reduced to a hash, so that two plans compare with deepEqual. */
function describeStep(step: Step): unknown {
  switch (step.op) {
    case 'allocate': {
      const hash = createHash('sha256');
      for (const s of step.graph.sections) hash.update(`${s.name}:${s.size}:`).update(s.content ?? new Uint8Array());
      return { op: 'allocate', id: step.id, graph: step.graph.name, content: hash.digest('hex').slice(0, 16) };
    }
    case 'patch':
      return { ...step, patches: step.patches.map((p) => ({ ...p, bytes: Buffer.from(p.bytes).toString('hex') })) };
    default:
      return step;
  }
}

/** Byte equality without ava's deep diff, which is slow on megabytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

const describePlan = (plan: Plan) => [...plan.steps()].map(describeStep);

/** Allocation ids live after each step. */
function liveCounts(plan: Plan): number[] {
  const live = new Set<number>();
  return [...plan.steps()].map((step) => {
    if (step.op === 'allocate') live.add(step.id);
    if (step.op === 'free') for (const id of step.ids) live.delete(id);
    return live.size;
  });
}

test('every pattern gives the same steps for the same seed, every time, and other steps for another seed', (t) => {
  const makers: Array<[string, (seed: number) => Plan, boolean]> = [
    ['load', () => loadPlan(python), false],
    ['churn', (seed) => churnPlan(python, { seed, operations: 2000, liveSet: 40 }), true],
    ['update', () => updatePlan(python, { times: 50 }), false],
    ['patch', (seed) => patchPlan(python, { seed, times: 200 }), true],
    ['sweep', (seed) => sweepPlan({ seed, maxSize: 1 << 20 }), true],
  ];
  for (const [name, make, seeded] of makers) {
    const plan = make(7);
    const steps = describePlan(plan);
    t.true(steps.length > 2, name);
    t.deepEqual(describePlan(plan), steps, `${name}: a plan replays the same steps`);
    t.deepEqual(describePlan(make(7)), steps, `${name}: the same seed makes the same plan`);
    if (seeded) t.notDeepEqual(describePlan(make(8)), steps, `${name}: another seed makes another plan`);
    const counts = liveCounts(plan);
    t.is(counts[counts.length - 1], 0, `${name}: everything is freed by the end`);
  }
});

test('load allocates every graph, with its bytes in place, then frees them all', async (t) => {
  const manager = inProcessManager(t, 16 << 20);
  let checkedSections = 0;
  const result = await runPlan(loadPlan(python), manager, {
    afterStep: (step, _index, live) => {
      if (step.op !== 'allocate') return;
      const alloc = live.get(step.id)!;
      for (const s of step.graph.sections) {
        if (!s.content) continue;
        t.true(sameBytes(native.view(alloc.sectionAddress(s.name), s.size), s.content), `${step.graph.name} ${s.name}`);
        checkedSections++;
      }
    },
  });
  t.like(result, { allocations: python.length, frees: python.length, peakLive: python.length });
  t.true(checkedSections > 1000);
  t.like(manager.stats(), { liveAllocations: 0, liveBytes: 0 });
});

test('churn keeps its live set within the band and reaches a steady state', async (t) => {
  const liveSet = 48;
  const band = 12;
  const operations = 8000;
  const plan = churnPlan(python, { seed: 1, operations, liveSet, band });
  const steps = [...plan.steps()];
  const steadyAt = steps.findIndex((s) => s.op === 'phase' && s.name === 'steady');
  const drainAt = steps.findIndex((s) => s.op === 'phase' && s.name === 'drain');
  t.is(steadyAt, liveSet + 1, 'warm-up allocates exactly the live set');
  const counts = liveCounts(plan).slice(steadyAt, drainAt);
  t.true(
    counts.every((n) => n >= liveSet - band && n <= liveSet + band),
    'live count stays in the band',
  );
  t.true(
    Math.max(...counts) === liveSet + band && Math.min(...counts) === liveSet - band,
    'the walk reaches both edges',
  );

  // On the slab manager the allocator settles, whatever the seed: its free ranges hover at one
  // level, and reservations grow early and then rarely: heavy-tailed sizes (a few CPython
  // objects are hundreds of KiB) can set a new record of live bytes at any time, so "rarely"
  // is a bound, not zero; and what it holds stays within a small multiple of the peak it needed.
  for (const seed of [1, 2, 3, 4]) {
    const manager = inProcessManager(t, 1 << 20);
    const seedPlan = churnPlan(python, { seed, operations, liveSet, band });
    const growth: number[] = [];
    const freeRanges: number[] = [];
    let steady = -1;
    let reserved = 0;
    await runPlan(seedPlan, manager, {
      afterStep: (step) => {
        if (step.op === 'phase') {
          steady = step.name === 'steady' ? 0 : -1;
          return;
        }
        const stats = manager.stats();
        if (steady >= 0) {
          if (stats.reservedBytes > reserved) growth.push(steady);
          freeRanges.push(stats.freeRanges);
          t.true(stats.liveAllocations >= liveSet - band && stats.liveAllocations <= liveSet + band);
          steady++;
        }
        reserved = stats.reservedBytes;
      },
    });
    const stats = manager.stats();
    const late = growth.filter((step) => step >= operations / 2).length;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const [second, fourth] = [1, 3].map((q) =>
      mean(freeRanges.slice((q * operations) / 4, ((q + 1) * operations) / 4)),
    );
    t.true(
      late <= 2 && late < growth.length - late,
      `seed ${seed}: reservations grew at steps ${growth.join(', ')} of ${operations}`,
    );
    t.true(
      Math.abs(second! - fourth!) <= 0.3 * Math.max(second!, fourth!),
      `seed ${seed}: free ranges ${second} then ${fourth}`,
    );
    t.true(
      stats.peakReservedBytes <= 3 * stats.peakLiveBytes,
      `seed ${seed}: reserved ${stats.peakReservedBytes} for a peak of ${stats.peakLiveBytes} live`,
    );
    t.is(stats.liveAllocations, 0);
    t.log(
      `churn seed ${seed}: ${operations} steps around ${liveSet}±${band} python graphs: reservations grew at steps [${growth.join(', ')}]; ` +
        `free ranges ${second!.toFixed(1)} then ${fourth!.toFixed(1)} (2nd, 4th quarter); peak reserved ${stats.peakReservedBytes} for peak live ${stats.peakLiveBytes}`,
    );
  }
});

test('update re-JITs one module through new allocations, old and new overlapping', async (t) => {
  const plan = updatePlan(python, { times: 20 });
  const first = [...plan.steps()][0]!;
  t.is(
    first.op === 'allocate' && first.graph.name,
    python.reduce((a, g) => (codeBytes(g) > codeBytes(a) ? g : a)).name,
    'the module with the most code by default',
  );
  t.true(liveCounts(plan).every((n) => n <= 2));
  t.is(
    updatePlan(python, { times: 3, module: 'ceval.o' }).description,
    `re-JIT ${python.find((g) => g.name.endsWith('(ceval.o)'))!.name} 3 times`,
  );
  t.is((t.throws(() => updatePlan(python, { times: 3, module: 'nope.o' })) as JitmemError).code, 'ERR_UNKNOWN_MODULE');

  const manager = inProcessManager(t);
  const bases: number[] = [];
  const result = await runPlan(plan, manager, {
    afterStep: (step, _i, live) => {
      if (step.op === 'allocate') bases.push((live.get(step.id) as FinalizedAllocation).base);
    },
  });
  t.like(result, { allocations: 21, frees: 21, peakLive: 2 });
  for (let i = 1; i < bases.length; i++)
    t.not(bases[i], bases[i - 1], 'each version is a new allocation beside the live one');
});

function codeBytes(graph: LinkGraph): number {
  return graph.sections.reduce((n, s) => n + (s.group.prot & X ? s.size : 0), 0);
}

test('patch changes the code that runs, in place, under the in-process mapper', async (t) => {
  const manager = inProcessManager(t);
  const graph = returnConstantGraph(1);
  const code = (value: number) => returnConstantCode(value);
  // One patch a batch, so that each new value can be seen running before the next goes in.
  const plan = patchPlan([graph], {
    seed: 1,
    times: 5,
    batch: 1,
    patchAt: (i) => ({ offset: 0, bytes: code(100 + i) }),
  });
  const seen: number[] = [];
  let base: number | undefined;
  const result = await runPlan(plan, manager, {
    patcher: patcherOf(manager),
    afterStep: (step, _i, live) => {
      const alloc = live.get(0) as FinalizedAllocation | undefined;
      if (!alloc) return;
      base ??= alloc.base;
      t.is(alloc.base, base, 'no new allocation');
      if (step.op === 'allocate' || step.op === 'patch') seen.push(native.callInt32(alloc.sectionAddress('.text')));
    },
  });
  t.deepEqual(seen, [1, 100, 101, 102, 103, 104]);
  t.like(result, { allocations: 1, patches: 5 });
});

test("patch by default writes a module's own code back at seeded offsets, and needs a patcher", async (t) => {
  const plan = patchPlan(cray, { seed: 3, times: 50, bytes: 32 });
  const batches = [...plan.steps()].filter((s) => s.op === 'patch');
  t.deepEqual(
    batches.map((b) => [b.patches.length, b.codeRunning]),
    new Array(5).fill([10, false]),
  );
  const patches = batches.flatMap((b) => b.patches);
  t.is(patches.length, 50);
  const text = cray[0]!.sections.find((s) => s.name === '.text')!;
  for (const p of patches) {
    t.is(p.section, '.text');
    t.is(p.bytes.length, 32);
    t.true(sameBytes(p.bytes, text.content!.subarray(p.offset, p.offset + 32)));
  }
  const manager = inProcessManager(t);
  await runPlan(plan, manager, {
    patcher: patcherOf(manager),
    afterStep: (step, _i, live) => {
      if (step.op === 'patch')
        t.true(sameBytes(native.view(live.get(0)!.sectionAddress('.text'), text.size), text.content!));
    },
  });
  const err = await t.throwsAsync(runPlan(plan, manager));
  t.is((err as JitmemError).code, 'ERR_INVALID_PLAN');
  t.like(manager.stats(), { liveAllocations: 0 }, 'a failed run frees what it allocated');
});

test('the in-process mapper patches code with a write window and gives the pages their protection back', async (t) => {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close());
  const page = mapper.pageSize;
  const { start } = await mapper.reserve(2 * page);
  mapper.prepare(start, 16).set(returnConstantCode(7));
  await mapper.initialize({
    mappingBase: start,
    segments: [{ offset: 0, contentSize: 16, zeroFillSize: 0, group: allocGroup(R | X) }],
    actions: [],
  });
  t.is(native.callInt32(start), 7);
  await mapper.patchCode([{ address: start, bytes: returnConstantCode(8) }]);
  t.is(native.callInt32(start), 8);
  // Still R-X, not writable: a write now would fault, so probe the protection by patching
  // outside the segment instead, which the mapper refuses without touching anything.
  await t.throwsAsync(mapper.patchCode([{ address: start + page - 2, bytes: returnConstantCode(9) }]), {
    code: 'ERR_PATCH_OUT_OF_SEGMENT',
  });
  await t.throwsAsync(mapper.patchCode([{ address: start + page * 4, bytes: returnConstantCode(9) }]), {
    code: 'ERR_OUT_OF_RESERVATION',
  });
  // A batch is refused whole when one of its patches is: the first patch did not go in either.
  await t.throwsAsync(
    mapper.patchCode([
      { address: start, bytes: returnConstantCode(10) },
      { address: start + page * 4, bytes: returnConstantCode(9) },
    ]),
    { code: 'ERR_OUT_OF_RESERVATION' },
  );
  t.is(native.callInt32(start), 8);
});

test('sweep covers 4 KiB to 64 MiB with graphs of exactly those sizes and seeded content', async (t) => {
  const sizes = sweepSizes();
  t.is(sizes[0], 4096);
  t.is(sizes[sizes.length - 1], 64 * 1024 * 1024);
  t.is(sizes.length, 15);
  const graphs = sweepGraphs({ seed: 5, maxSize: 1 << 20 });
  t.deepEqual(
    graphs.map((g) => g.sections.reduce((n, s) => n + s.size, 0)),
    sweepSizes(4096, 1 << 20),
  );
  t.true(
    sameBytes(sweepGraphs({ seed: 5, maxSize: 1 << 20 })[8]!.sections[0]!.content!, graphs[8]!.sections[0]!.content!),
  );
  t.false(
    sameBytes(sweepGraphs({ seed: 6, maxSize: 1 << 20 })[0]!.sections[0]!.content!, graphs[0]!.sections[0]!.content!),
  );

  const manager = inProcessManager(t, 4 << 20);
  const sizesRun: number[] = [];
  await runPlan(sweepPlan({ seed: 5, maxSize: 4 << 20, repeat: 2 }), manager, {
    afterStep: (step, _i, live) => {
      if (step.op !== 'allocate') return;
      const s = step.graph.sections[0]!;
      sizesRun.push(s.size);
      t.true(sameBytes(native.view(live.get(step.id)!.sectionAddress('.text'), s.size), s.content!));
    },
  });
  t.deepEqual(
    sizesRun,
    sweepSizes(4096, 4 << 20).flatMap((s) => [s, s]),
  );
});
