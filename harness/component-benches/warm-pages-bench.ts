import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';

/**
 * Warm pages for shared memory (issue 23): what a slab's pages cost the next program that writes
 * them, by what was done with them when the last one freed them. Each iteration writes every page
 * of an 8 MiB slab (about python/load's 6.66 MB of content and its zero-fill) through a real
 * mapping, then gives the pages back one way:
 * - keep: nothing (SlabKeeper's choice: the mapping and its pages stay);
 * - MADV_DONTNEED: the mapping drops them; a shared object keeps them, so they come back with a
 *   minor fault each;
 * - MADV_REMOVE: the shared object frees them; they come back zeroed, a fault and a clear each;
 * - a fresh object: shm_open, mmap, write, munmap each time (a slab per program, as before the
 *   keeper);
 * - MADV_FREE: private anonymous memory only (the kernel refuses it on a shared mapping, EINVAL);
 *   measured on private memory beside keep and MADV_DONTNEED there, the in-process and RPC-copy
 *   executors' kind of memory.
 * Minor faults are this process's own (getrusage), per iteration.
 */

export const WARM_PAGES_SLAB_BYTES = 8 << 20;

export interface WarmPagesRow {
  readonly memory: 'shared' | 'private';
  readonly strategy: string;
  /** Median ms per iteration (write every page, then give them back), or undefined when refused. */
  readonly ms?: number;
  readonly minorFaults?: number;
  /** Why it could not run (the kernel's error code). */
  readonly refused?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function measure(iterations: number, iterate: (i: number) => void): { ms: number; minorFaults: number } {
  for (let i = 0; i < 3; i++) iterate(i);
  const times: number[] = [];
  const before = process.resourceUsage().minorPageFault;
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    iterate(i);
    times.push(performance.now() - t0);
  }
  return { ms: median(times), minorFaults: (process.resourceUsage().minorPageFault - before) / iterations };
}

function sharedSlab(size: number): { address: number; close(): void } {
  const name = `/jitmem_warm_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const fd = native.shmCreate(name, size);
  native.shmUnlink(name);
  try {
    const address = native.mapShared(fd, size);
    return { address, close: () => native.unmap(address, size) };
  } finally {
    native.closeFd(fd);
  }
}

function adviceRow(
  memory: WarmPagesRow['memory'],
  strategy: string,
  iterations: number,
  address: number,
  advice: native.Advice | undefined,
): WarmPagesRow {
  const size = WARM_PAGES_SLAB_BYTES;
  try {
    return {
      memory,
      strategy,
      ...measure(iterations, (i) => {
        native.fill(address, size, i & 0xff);
        if (advice !== undefined) native.advise(address, size, advice);
      }),
    };
  } catch (err) {
    return { memory, strategy, refused: String((err as { code?: string }).code ?? (err as Error).message) };
  }
}

export function runWarmPagesBench(options: { iterations?: number; write: (line: string) => void }): WarmPagesRow[] {
  const iterations = options.iterations ?? 20;
  const size = WARM_PAGES_SLAB_BYTES;
  const rows: WarmPagesRow[] = [];
  const shared = sharedSlab(size);
  try {
    rows.push(adviceRow('shared', 'keep the mapping', iterations, shared.address, undefined));
    rows.push(adviceRow('shared', 'MADV_FREE', iterations, shared.address, native.MADV.FREE));
    rows.push(adviceRow('shared', 'MADV_DONTNEED', iterations, shared.address, native.MADV.DONTNEED));
    rows.push(adviceRow('shared', 'MADV_REMOVE', iterations, shared.address, native.MADV.REMOVE));
  } finally {
    shared.close();
  }
  rows.push({
    memory: 'shared',
    strategy: 'a fresh object each time',
    ...measure(iterations, (i) => {
      const slab = sharedSlab(size);
      try {
        native.fill(slab.address, size, i & 0xff);
      } finally {
        slab.close();
      }
    }),
  });
  const address = native.reserve(size, native.PROT_RW);
  try {
    rows.push(adviceRow('private', 'keep', iterations, address, undefined));
    rows.push(adviceRow('private', 'MADV_FREE', iterations, address, native.MADV.FREE));
    rows.push(adviceRow('private', 'MADV_DONTNEED', iterations, address, native.MADV.DONTNEED));
  } finally {
    native.unmap(address, size);
  }
  options.write(
    `warm pages: an ${size >> 20} MiB slab written page by page, then its pages given back (median of ${iterations} iterations after 3):`,
  );
  for (const r of rows) {
    const label = `  ${r.memory.padEnd(7)} ${r.strategy.padEnd(26)}`;
    options.write(
      r.refused
        ? `${label} refused by the kernel (${r.refused})`
        : `${label} ${r.ms!.toFixed(2).padStart(7)} ms   ${r.minorFaults!.toFixed(0).padStart(6)} minor faults per iteration`,
    );
  }
  return rows;
}
