import { JitmemError } from '../../core/errors.js';
import { layoutGraph } from '../../graph/layout.js';
import type { LinkPlan } from '../link-plan.js';
import type { NearReferences } from './placement.js';
import { placementFor } from './placement.js';

/** Code reaching its own data PC-relative must span less than 2 GiB anyway; past 4 GiB a size is damage. */
const MAX_PROGRAM_BYTES = 4 * 1024 ** 3;

/** Pass 6, lay out: the graph of every planned section, BasicLayout, and where it must lie. */
export function layOut(plan: LinkPlan, name: string, pageSize: number, near: NearReferences): void {
  plan.graph = { name, sections: plan.sections };
  const layout = layoutGraph(plan.graph, pageSize);
  if (layout.size > MAX_PROGRAM_BYTES) {
    throw new JitmemError(
      'ERR_LINK_TOO_LARGE',
      `the program would take ${layout.size} bytes laid out; jitmem links programs of up to ${MAX_PROGRAM_BYTES} bytes (4 GiB): a section or COMMON symbol is probably damaged`,
      { size: layout.size, limit: MAX_PROGRAM_BYTES },
    );
  }
  plan.layout = layout;
  plan.placement = placementFor(near, layout.size);
}
