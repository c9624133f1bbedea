import { performance } from 'node:perf_hooks';
import type { linkObjects } from '../../jitlink/link.js';
import type { loadTls } from '../../loader/load-tls.js';
import type { MappedInputs } from '../../loader/mapped-inputs.js';
import type { InProcessTarget } from '../../loader/program-target.js';
import type { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import type { SlabMemoryManager } from '../../mappers/slab/slab-memory-manager.js';

/**
 * One timed link, shared by the warm links of bench-link's own process and by the first link of
 * a fresh process (first-link-probe.ts). The linker's parts are passed in rather than imported,
 * so that a fresh process can take them from `jitmem run`'s bundle, compiled from its code
 * cache, as `jitmem run` does, and not from the modules: this module imports types only.
 */

/** The linker and what it links into, from the modules or from the run bundle. */
export interface LinkerParts {
  readonly linkObjects: typeof linkObjects;
  readonly MappedInputs: typeof MappedInputs;
  readonly loadTls: typeof loadTls;
  readonly InProcessTarget: typeof InProcessTarget;
  readonly InProcessMemoryMapper: typeof InProcessMemoryMapper;
  readonly SlabMemoryManager: typeof SlabMemoryManager;
}

export interface LinkSample {
  readObjects: number;
  resolve: number;
  layout: number;
  applyRelocations: number;
  /** The four phases together (wall clock). */
  total: number;
  /** CPU time (user + system) of this process over the four phases. */
  cpu: number;
}

export interface LinkStatsLine {
  objects: number;
  sections: number;
  relocations: number;
  gotEntries: number;
  stubs: number;
  externals: number;
  bytes: number;
}

function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

/**
 * One link of `inputs`, timed: read, resolve, lay out (in linkObjects), then the relocation into
 * a slab allocation, which is given back. The allocation and the content copy are transport and
 * not measured; binding thread-locals through the executor's dynamic linker is part of linking.
 */
export async function timeOneLink(
  parts: LinkerParts,
  inputs: readonly string[],
  target: InProcessTarget,
  memory: SlabMemoryManager,
): Promise<{ sample: LinkSample; linkStats: LinkStatsLine }> {
  const files = new parts.MappedInputs();
  const cpu0 = process.cpuUsage();
  // The inputs mapped as `jitmem run` maps them (loader/run-program.ts).
  const linked = await parts.linkObjects(inputs, {
    pageSize: target.pageSize,
    lookup: (names) => target.lookup(names),
    runtimeSymbols: target.runtimeSymbols(),
    readFile: files.read,
  });
  const linkCpu = cpuMs(cpu0);
  const allocation = await memory.allocate(linked.graph);
  let tls: Awaited<ReturnType<typeof loadTls>> | undefined;
  try {
    allocation.writeContent();
    const cpu1 = process.cpuUsage();
    const t = performance.now();
    if (linked.usesTls) tls = await parts.loadTls(target, linked.tlsImage(allocation.base, allocation.layout));
    linked.relocate(
      allocation.base,
      allocation.segments.map((s) => s.workingMemory),
      allocation.layout,
      tls?.binding,
    );
    const applyRelocations = performance.now() - t;
    const relocateCpu = cpuMs(cpu1);
    files.checkUnchanged();
    const { readObjects, resolve, layout } = linked.times;
    return {
      sample: {
        readObjects,
        resolve,
        layout,
        applyRelocations,
        total: readObjects + resolve + layout + applyRelocations,
        cpu: linkCpu + relocateCpu,
      },
      linkStats: { ...linked.stats, bytes: linked.layout.size },
    };
  } finally {
    await allocation.abandon();
    await tls?.close();
  }
}

/** A target with `preload` opened, a slab memory manager, one timed link, everything closed. */
export async function linkOnceIn(
  parts: LinkerParts,
  inputs: readonly string[],
  preload: readonly string[],
): Promise<{ sample: LinkSample; linkStats: LinkStatsLine }> {
  const target = new parts.InProcessTarget();
  for (const p of preload) await target.preload(p);
  const memory = new parts.SlabMemoryManager(new parts.InProcessMemoryMapper());
  try {
    return await timeOneLink(parts, inputs, target, memory);
  } finally {
    await memory.close();
  }
}
