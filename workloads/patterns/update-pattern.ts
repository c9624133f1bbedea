import type { LinkGraph } from '../../graph/link-graph.js';
import { checkCount, pickModule } from './pattern-options.js';
import type { Plan, Step } from './plan.js';

/**
 * update: hot code replacement. One module is JIT-compiled again and again, each version in a
 * new allocation that goes live before the previous one is freed (callers switch over, then
 * the old code goes), so two versions overlap at every step.
 */

export interface UpdateOptions {
  /** How many times the module is replaced after its first load. */
  readonly times: number;
  /** The graph to re-JIT, by name or archive member name; default: the one with the most code. */
  readonly module?: string;
}

export function updatePlan(graphs: readonly LinkGraph[], options: UpdateOptions): Plan {
  const times = checkCount('update times', options.times, 1);
  const graph = pickModule('update', graphs, options.module);
  return {
    pattern: 'update',
    description: `re-JIT ${graph.name} ${times} times`,
    *steps(): Iterable<Step> {
      yield { op: 'allocate', id: 0, graph };
      for (let version = 1; version <= times; version++) {
        yield { op: 'allocate', id: version, graph };
        yield { op: 'free', ids: [version - 1] };
      }
      yield { op: 'free', ids: [times] };
    },
  };
}
