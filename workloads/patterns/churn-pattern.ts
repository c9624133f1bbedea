import type { LinkGraph } from '../../graph/link-graph.js';
import { checkCount, checkGraphs } from './pattern-options.js';
import type { Plan, Step } from './plan.js';
import { SeededRandom } from './seeded-random.js';

/**
 * churn: a REPL or a long-running JIT. A warm-up allocates `liveSet` graphs; then each of
 * `operations` steps allocates a randomly chosen graph or frees a randomly chosen live one,
 * a coin toss while the live count is within `band` of `liveSet` and the move back towards it
 * at the edges. The live count therefore stays in [liveSet - band, liveSet + band], sizes keep
 * the workload's mix, and the allocator settles into a steady state: its reservations stop
 * growing and its free ranges stop multiplying. Everything left is freed at the end.
 */

export interface ChurnOptions {
  readonly seed: number;
  /** Allocate and free steps after the warm-up. */
  readonly operations: number;
  /** The live allocations the churn moves around; default: the graph count, at most 64. */
  readonly liveSet?: number;
  /** How far the live count may stray from `liveSet`; default: a quarter of it (at least 1). */
  readonly band?: number;
}

export function churnPlan(graphs: readonly LinkGraph[], options: ChurnOptions): Plan {
  checkGraphs('churn', graphs);
  const seed = options.seed;
  new SeededRandom(seed); // checks the seed now rather than at the first step
  const operations = checkCount('churn operations', options.operations, 0);
  const liveSet = checkCount('churn liveSet', options.liveSet ?? Math.min(graphs.length, 64), 1);
  const band = checkCount('churn band', options.band ?? Math.max(1, Math.floor(liveSet / 4)), 0);
  const low = Math.max(1, liveSet - band);
  const high = liveSet + band;
  return {
    pattern: 'churn',
    description: `churn ${operations} steps around ${liveSet} live allocations (±${band}), seed ${seed}`,
    *steps(): Iterable<Step> {
      const random = new SeededRandom(seed);
      // Live ids in an array, so that a random one can be taken out in O(1) (swap with the last).
      const live: number[] = [];
      let nextId = 0;
      const allocate = (): Step => {
        live.push(nextId);
        return { op: 'allocate', id: nextId++, graph: graphs[random.below(graphs.length)]! };
      };
      const free = (): Step => {
        const at = random.below(live.length);
        const id = live[at]!;
        live[at] = live[live.length - 1]!;
        live.pop();
        return { op: 'free', ids: [id] };
      };
      yield { op: 'phase', name: 'warm-up' };
      while (live.length < liveSet) yield allocate();
      yield { op: 'phase', name: 'steady' };
      for (let i = 0; i < operations; i++) {
        const grow = live.length <= low ? true : live.length >= high ? false : random.coin();
        yield grow ? allocate() : free();
      }
      yield { op: 'phase', name: 'drain' };
      if (live.length > 0) yield { op: 'free', ids: live.splice(0).sort((a, b) => a - b) };
    },
  };
}
