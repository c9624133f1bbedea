import { JitmemError } from '../../core/errors.js';
import { X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import { checkCount, pickModule } from './pattern-options.js';
import type { Plan, Step } from './plan.js';
import { SeededRandom } from './seeded-random.js';

/**
 * patch: change code inside an allocation that is already finalized and executable, without a
 * new allocation (a debugger's breakpoint, a JIT's inline-cache or tier-up rewrite). The module
 * is loaded once, patched `times` times, in batches of `batch` patches (what a JIT rewrites at
 * one time: the call sites of a tier-up, a debugger command's breakpoints), and freed. By
 * default each patch writes back `bytes` of the section's own content at a seeded offset, so
 * the code stays what the compiler made and could still run; `patchAt` supplies other patches
 * (new code that must take effect). No code runs while the plan patches (`codeRunning` false),
 * which lets a transport that writes the target's pages directly skip the executor where the
 * architecture allows.
 */

export interface PatchOptions {
  readonly seed: number;
  readonly times: number;
  /** Bytes per patch (default 16: a jump or a call with its setup). */
  readonly bytes?: number;
  /** The graph to patch; default: the one with the most code. */
  readonly module?: string;
  /** The executable section to patch; default: the module's largest. */
  readonly section?: string;
  /** Patches per batch (default 10; the last batch may be smaller). */
  readonly batch?: number;
  /** Whether code may be running while a batch goes in (default false: the plan runs none). */
  readonly codeRunning?: boolean;
  /** The i-th patch (from 0); overrides the seeded write-backs. */
  readonly patchAt?: (i: number) => { readonly offset: number; readonly bytes: Uint8Array };
}

export function patchPlan(graphs: readonly LinkGraph[], options: PatchOptions): Plan {
  const times = checkCount('patch times', options.times, 1);
  const size = checkCount('patch bytes', options.bytes ?? 16, 1);
  const batch = checkCount('patch batch', options.batch ?? 10, 1);
  const codeRunning = options.codeRunning ?? false;
  const graph = pickModule('patch', graphs, options.module);
  const code = graph.sections.filter((s) => s.group.prot & X && s.content !== undefined && s.size > 0);
  const section =
    options.section === undefined
      ? code.reduce<(typeof code)[number] | undefined>((a, s) => (a && a.size >= s.size ? a : s), undefined)
      : code.find((s) => s.name === options.section);
  if (!section) {
    throw new JitmemError(
      'ERR_INVALID_PATTERN_OPTION',
      `the patch pattern needs an executable content section in ${graph.name}${options.section === undefined ? '' : ` named ${JSON.stringify(options.section)}`}; it has ${code.map((s) => s.name).join(', ') || 'none'}`,
      { module: graph.name, section: options.section },
    );
  }
  const length = Math.min(size, section.size);
  const seed = options.seed;
  new SeededRandom(seed);
  return {
    pattern: 'patch',
    description: `load ${graph.name}, patch ${length} bytes of ${section.name} ${times} times in batches of ${batch} (seed ${seed}), free it`,
    *steps(): Iterable<Step> {
      const random = new SeededRandom(seed);
      yield { op: 'allocate', id: 0, graph };
      yield { op: 'phase', name: 'patch' };
      for (let first = 0; first < times; first += batch) {
        const patches: Array<{ section: string; offset: number; bytes: Uint8Array }> = [];
        for (let i = first; i < Math.min(times, first + batch); i++) {
          if (options.patchAt) {
            const patch = options.patchAt(i);
            patches.push({ section: section.name, offset: patch.offset, bytes: patch.bytes });
          } else {
            const offset = random.below(section.size - length + 1);
            patches.push({ section: section.name, offset, bytes: section.content!.subarray(offset, offset + length) });
          }
        }
        yield { op: 'patch', id: 0, patches, codeRunning };
      }
      yield { op: 'free', ids: [0] };
    },
  };
}
