import { JitmemError } from '../../core/errors.js';
import { X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';

/** Checks shared by the pattern constructors: every bad option names itself and what was expected. */

export function checkCount(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new JitmemError('ERR_INVALID_PATTERN_OPTION', `${name} must be an integer >= ${min}; got ${String(value)}`, {
      option: name,
      value,
    });
  }
  return value;
}

export function checkGraphs(pattern: string, graphs: readonly LinkGraph[]): readonly LinkGraph[] {
  if (!Array.isArray(graphs) || graphs.length === 0) {
    throw new JitmemError('ERR_INVALID_PATTERN_OPTION', `the ${pattern} pattern needs at least one link graph`, {
      pattern,
    });
  }
  return graphs;
}

/** The graph named `name`, or, without a name, the one with the most executable bytes (the module people re-JIT). */
export function pickModule(pattern: string, graphs: readonly LinkGraph[], name: string | undefined): LinkGraph {
  checkGraphs(pattern, graphs);
  if (name !== undefined) {
    const graph = graphs.find((g) => g.name === name || g.name.endsWith(`(${name})`));
    if (!graph) {
      throw new JitmemError(
        'ERR_UNKNOWN_MODULE',
        `the ${pattern} pattern was asked for module ${JSON.stringify(name)}, which the workload does not have (it has ${graphs.length} graphs, e.g. ${JSON.stringify(graphs[0]!.name)})`,
        {
          module: name,
        },
      );
    }
    return graph;
  }
  const code = (g: LinkGraph) => g.sections.reduce((n, s) => n + (s.group.prot & X ? s.size : 0), 0);
  return graphs.reduce((best, g) => (code(g) > code(best) ? g : best));
}
