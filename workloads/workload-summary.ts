import { allocGroupName } from '../graph/alloc-group.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { layoutGraph } from '../graph/layout.js';

/**
 * What a workload weighs: its graph count, the bytes of its sections by AllocGroup (content
 * and zero-fill apart, as the ELF files give them), and the pages its allocations take once
 * laid out (docs/design.md §2: one page-aligned segment per AllocGroup).
 */
export interface WorkloadSummary {
  readonly name: string;
  readonly graphs: number;
  /** Content bytes by AllocGroup name ("r-x", "r--", "rw-"); groups with none are left out. */
  readonly content: Readonly<Record<string, number>>;
  /** Zero-fill bytes by AllocGroup name; groups with none are left out. */
  readonly zeroFill: Readonly<Record<string, number>>;
  readonly pages: number;
}

/** The order groups are shown in: code first, as people read a workload. */
const GROUP_ORDER = ['r-x', 'r--', 'rw-'];

function ordered(totals: Map<string, number>): Record<string, number> {
  const rank = (name: string) => (GROUP_ORDER.includes(name) ? GROUP_ORDER.indexOf(name) : GROUP_ORDER.length);
  const names = [...totals.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return Object.fromEntries(names.map((n) => [n, totals.get(n)!]));
}

export function summarizeWorkload(name: string, graphs: readonly LinkGraph[], pageSize: number): WorkloadSummary {
  const content = new Map<string, number>();
  const zeroFill = new Map<string, number>();
  let pages = 0;
  for (const graph of graphs) {
    for (const section of graph.sections) {
      if (section.size === 0) continue;
      const totals = section.content === undefined ? zeroFill : content;
      const group = allocGroupName(section.group);
      totals.set(group, (totals.get(group) ?? 0) + section.size);
    }
    pages += layoutGraph(graph, pageSize).size / pageSize;
  }
  return { name, graphs: graphs.length, content: ordered(content), zeroFill: ordered(zeroFill), pages };
}
