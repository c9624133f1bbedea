import type { LinkGraph } from '../../graph/link-graph.js';
import { checkGraphs } from './pattern-options.js';
import type { Plan, Step } from './plan.js';

/** load: allocate, write and finalize every graph in order, then free them all in one call (a whole program). */
export function loadPlan(graphs: readonly LinkGraph[]): Plan {
  checkGraphs('load', graphs);
  return {
    pattern: 'load',
    description: `load ${graphs.length} graphs, then free them all`,
    *steps(): Iterable<Step> {
      for (const [id, graph] of graphs.entries()) yield { op: 'allocate', id, graph };
      yield { op: 'free', ids: graphs.map((_, id) => id) };
    },
  };
}
