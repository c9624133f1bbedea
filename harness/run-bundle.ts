import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `jitmem run` from one file. Node 20 loads an ES module graph file by file (resolve, read,
 * compile, link each of ~80 modules), which is most of what `jitmem run` adds to Node's own
 * start; one bundled file of the same compiled modules loads in a fraction of that
 * (bench-remote's start-up lines measure it). The bundle is made after tsc by
 * build-run-bundle.ts (npm run build:ts, prepare, prepack) and used only while no module it
 * was made from is newer than it, so a tsc run alone never leaves the CLI on stale code.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
export const RUN_BUNDLE = path.join(here, 'run-bundle.mjs');
/** The compiled modules the bundle holds, relative to this folder: one a line. */
export const RUN_BUNDLE_INPUTS = path.join(here, 'run-bundle.inputs');

/** The bundle's path when it exists and is as new as every module it holds; otherwise undefined. */
export function freshRunBundle(): string | undefined {
  if (process.env.JITMEM_RUN_BUNDLE === '0') return undefined;
  try {
    const made = statSync(RUN_BUNDLE).mtimeMs;
    const inputs = readFileSync(RUN_BUNDLE_INPUTS, 'utf8').split('\n').filter(Boolean);
    for (const input of inputs) if (statSync(path.join(here, input)).mtimeMs > made) return undefined;
    return inputs.length > 0 ? RUN_BUNDLE : undefined;
  } catch {
    // No bundle (esbuild was not installed when it was built), or a module it held is gone.
    return undefined;
  }
}
