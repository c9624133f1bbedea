import { pathToFileURL } from 'node:url';
import { loadRunBundleExports } from '../run-bundle-loader.cjs';
import { inputBytes, withYoungGenerationFor } from '../young-generation.js';
import { linkOnceIn, type LinkerParts, type LinkSample } from './time-one-link.js';

/**
 * A process's first link, as `jitmem run` does it: started by bench-link as a fresh `node`
 * process per sample, it takes the linker from `jitmem run`'s bundle compiled from its code
 * cache when the bundle is fresh (as the CLI does), or imports the modules otherwise, links the
 * FILEs once (timed as bench-link times every link: read, resolve, lay out, relocate; transport
 * excluded) and prints one JSON line: the sample and where the linker's code came from.
 *
 * Usage: node first-link-probe.js [--preload LIB]... FILE...
 */

/** Where a first link's code came from: what its figure includes. */
export type FirstLinkSource =
  'bundle, code cache used' | 'bundle, code cache rejected' | 'bundle, no code cache' | 'modules';

export interface FirstLinkProbeResult {
  readonly source: FirstLinkSource;
  readonly sample: LinkSample;
}

async function linkerParts(): Promise<{ parts: LinkerParts; source: FirstLinkSource }> {
  const bundle = loadRunBundleExports();
  if (bundle && typeof bundle.exports.linkObjects === 'function') {
    const source: FirstLinkSource =
      bundle.codeCache === 'used'
        ? 'bundle, code cache used'
        : bundle.codeCache === 'rejected'
          ? 'bundle, code cache rejected'
          : 'bundle, no code cache';
    return { parts: bundle.exports as unknown as LinkerParts, source };
  }
  const [link, mapped, tls, target, mapper, slab] = await Promise.all([
    import('../../jitlink/link.js'),
    import('../../loader/mapped-inputs.js'),
    import('../../loader/load-tls.js'),
    import('../../loader/program-target.js'),
    import('../../mappers/in-process-memory-mapper.js'),
    import('../../mappers/slab/slab-memory-manager.js'),
  ]);
  return {
    parts: {
      linkObjects: link.linkObjects,
      MappedInputs: mapped.MappedInputs,
      loadTls: tls.loadTls,
      InProcessTarget: target.InProcessTarget,
      InProcessMemoryMapper: mapper.InProcessMemoryMapper,
      SlabMemoryManager: slab.SlabMemoryManager,
    },
    source: 'modules',
  };
}

export async function probeFirstLink(argv: readonly string[]): Promise<FirstLinkProbeResult> {
  const preload: string[] = [];
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--preload' && i + 1 < argv.length) preload.push(argv[++i]!);
    else inputs.push(argv[i]!);
  }
  const { parts, source } = await linkerParts();
  // The young generation as `jitmem run` gives a link of these inputs (run.ts).
  const { sample } = await withYoungGenerationFor(inputBytes(inputs), () => linkOnceIn(parts, inputs, preload));
  return { source, sample };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  probeFirstLink(process.argv.slice(2)).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (err: unknown) => {
      process.stderr.write(`first-link-probe: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}

/** The probe's own file, for bench-link to start. */
export const FIRST_LINK_PROBE = new URL(import.meta.url).pathname;
