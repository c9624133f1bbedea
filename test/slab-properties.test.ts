import test from 'ava';
import fc from 'fast-check';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import {
  SlabMemoryManager,
  type FinalizedAllocation,
  type InFlightAllocation,
} from '../mappers/slab/slab-memory-manager.js';
import { FIT_POLICIES, type FitPolicy } from '../mappers/slab/free-range-index.js';
import { layoutGraph } from '../graph/layout.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { RO, RW, RX } from './helpers/graphs.js';

const PAGE = 4096;
const GRANULARITY = 16 * PAGE;

type Op =
  | { kind: 'alloc'; sections: Array<{ group: 0 | 1 | 2; size: number; zeroFill: boolean }> }
  | { kind: 'finalize'; pick: number }
  | { kind: 'free'; pick: number };

const groups = [RO, RW, RX];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('alloc' as const),
      sections: fc.array(
        fc.record({
          group: fc.constantFrom(0 as const, 1 as const, 2 as const),
          size: fc.integer({ min: 1, max: 5 * PAGE }),
          zeroFill: fc.boolean(),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('finalize' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }) },
);

function graphOf(op: Extract<Op, { kind: 'alloc' }>, i: number): LinkGraph {
  return {
    name: `g${i}`,
    sections: op.sections.map((s, j) => ({
      name: `s${j}`,
      group: groups[s.group]!,
      alignment: 16,
      size: s.size,
      ...(s.zeroFill ? {} : { content: new Uint8Array(s.size) }),
    })),
  };
}

/** The address the policy must pick among the free ranges before the allocation, if one fits. */
function expectedPick(
  free: Array<{ start: number; end: number }>,
  size: number,
  policy: FitPolicy,
): number | undefined {
  const fits = free.filter((r) => r.end - r.start >= size);
  if (fits.length === 0) return undefined;
  if (policy === 'first-fit') return Math.min(...fits.map((r) => r.start));
  fits.sort((a, b) => a.end - a.start - (b.end - b.start) || a.start - b.start);
  return fits[0]!.start;
}

function checkInvariants(
  t: { fail(m: string): void },
  manager: SlabMemoryManager,
  live: Array<{ base: number; size: number }>,
): string | undefined {
  const reservations = manager.reservationRanges();
  const free = manager.freeRanges();
  const spans = [
    ...live.map((l) => ({ start: l.base, end: l.base + l.size, kind: 'live' })),
    ...free.map((f) => ({ ...f, kind: 'free' })),
  ].sort((a, b) => a.start - b.start);
  // No overlap between any two spans (live/live, live/free, free/free).
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.start < spans[i - 1]!.end)
      return `overlap: ${JSON.stringify(spans[i - 1])} and ${JSON.stringify(spans[i])}`;
  }
  // Every byte of every reservation is covered exactly once by live or free spans.
  for (const r of reservations) {
    const inside = spans.filter((s) => s.start >= r.start && s.end <= r.end);
    const covered = inside.reduce((a, s) => a + (s.end - s.start), 0);
    if (covered !== r.end - r.start) return `reservation ${r.start} covers ${covered} of ${r.end - r.start} bytes`;
    // Coalescing is complete: inside a reservation no two free ranges touch.
    const fr = inside.filter((s) => s.kind === 'free');
    for (let i = 1; i < fr.length; i++)
      if (fr[i]!.start === fr[i - 1]!.end) return `free ranges touch at ${fr[i]!.start}`;
  }
  for (const s of spans)
    if (!reservations.some((r) => s.start >= r.start && s.end <= r.end))
      return `span outside every reservation: ${JSON.stringify(s)}`;
  void t;
  return undefined;
}

for (const policy of FIT_POLICIES) {
  test(`${policy}: 1,000 random allocate/free sequences keep the heap exact and pick by the policy`, async (t) => {
    const mapper = new InProcessMemoryMapper();
    t.teardown(() => mapper.close());
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }), async (ops) => {
        runs++;
        const manager = new SlabMemoryManager(mapper, { granularity: GRANULARITY, policy });
        const inflight: InFlightAllocation[] = [];
        const finalized: FinalizedAllocation[] = [];
        try {
          for (const [i, op] of ops.entries()) {
            if (op.kind === 'alloc') {
              const graph = graphOf(op, i);
              const size = layoutGraph(graph, PAGE).size;
              const want = expectedPick(manager.freeRanges(), size, policy);
              const before = new Set(manager.reservationRanges().map((r) => r.start));
              const alloc = await manager.allocate(graph);
              if (want !== undefined) {
                if (alloc.base !== want)
                  throw new Error(`${policy} picked ${alloc.base}, expected ${want} for ${size} bytes`);
              } else {
                // Nothing fitted: the allocation must come from a new reservation.
                const fresh = manager.reservationRanges().filter((r) => !before.has(r.start));
                if (fresh.length !== 1 || alloc.base < fresh[0]!.start || alloc.base >= fresh[0]!.end)
                  throw new Error('allocation without a fitting range did not take a new reservation');
              }
              alloc.writeContent();
              inflight.push(alloc);
            } else if (op.kind === 'finalize' && inflight.length > 0) {
              const [a] = inflight.splice(op.pick % inflight.length, 1);
              finalized.push(await a!.finalize());
            } else if (op.kind === 'free') {
              const all = inflight.length + finalized.length;
              if (all === 0) continue;
              const k = op.pick % all;
              if (k < inflight.length) await inflight.splice(k, 1)[0]!.abandon();
              else await manager.deallocate(finalized.splice(k - inflight.length, 1));
            }
            const live = [
              ...inflight.map((a) => ({ base: a.base, size: a.size })),
              ...finalized.map((f) => ({ base: f.base, size: f.size })),
            ];
            const problem = checkInvariants(t, manager, live);
            if (problem) throw new Error(`after op ${i} (${op.kind}): ${problem}`);
            const stats = manager.stats();
            if (stats.liveBytes !== live.reduce((a, l) => a + l.size, 0))
              throw new Error('liveBytes disagrees with the live allocations');
          }
          // Free everything: one free range per reservation.
          for (const a of inflight) await a.abandon();
          if (finalized.length) await manager.deallocate(finalized);
          const free = manager.freeRanges();
          const res = manager.reservationRanges();
          if (free.length !== res.length)
            throw new Error(`${free.length} free ranges for ${res.length} reservations after freeing everything`);
          free.forEach((f, i) => {
            if (f.start !== res[i]!.start || f.end !== res[i]!.end)
              throw new Error('a reservation is not one whole free range');
          });
          const s = manager.stats();
          if (
            s.liveBytes !== 0 ||
            s.freeBytes !== s.reservedBytes ||
            s.fragmentation !== (s.reservations <= 1 ? 0 : 1 - s.largestFreeRange / s.freeBytes)
          )
            throw new Error(`stats after freeing all: ${JSON.stringify(s)}`);
        } finally {
          await manager.close();
        }
      }),
      { numRuns: 1000, seed: policy === 'first-fit' ? 1 : 2, includeErrorInReport: true },
    );
    t.is(runs >= 1000, true);
  });
}
