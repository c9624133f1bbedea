import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../../mappers/rpc-copy-mapper.js';
import { SlabMemoryManager, type FinalizedAllocation } from '../../mappers/slab/slab-memory-manager.js';
import { allocGroup, R, W, X } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { MemoryMapper } from '../../mappers/memory-mapper.js';
import { seededRandom as rng } from '../statistics.js';

/**
 * What the executor boundary costs: (1) the round trip of a call that does nothing, with the
 * controller and the executor on the same CPU and on different CPUs; (2) moving a synthetic
 * set shaped like the CPython 3.11 link (177 graphs, 6.66 MB of content, 0.28 MB zero-fill)
 * with each mapper, as extra time over in-process, beside the budgets. Run it on a quiet
 * machine: `jitmem bench-remote [--iterations N] [--calls N] [--json]`.
 */

export interface RemoteBenchOptions {
  readonly iterations?: number;
  readonly latencyCalls?: number;
  readonly write?: (line: string) => void;
}

export const BUDGET_MS = { shared: 8, rpc: 15 } as const;

export interface RemoteBenchResult {
  readonly latencyUs: Record<'same-cpu' | 'other-cpu', { median: number; p99: number } | null>;
  /** Pipelined loads (finalize calls in flight together): the figures the budgets apply to. */
  readonly loadMs: Record<'in-process' | 'shared' | 'rpc-copy', number>;
  readonly loadMsSequential: Record<'in-process' | 'shared' | 'rpc-copy', number>;
  readonly extraMs: { shared: number; rpc: number };
}

/** Splits `total` into `n` positive parts with a long tail, as object sizes in a real link have. */
function split(total: number, n: number, random: () => number): number[] {
  const weights = Array.from({ length: n }, () => Math.exp(3 * random()));
  const sum = weights.reduce((a, b) => a + b, 0);
  const parts = weights.map((w) => Math.max(1, Math.floor((w / sum) * total)));
  parts[0]! += total - parts.reduce((a, b) => a + b, 0);
  return parts;
}

/** 177 graphs, 6.66 MB of content and 0.28 MB of zero-fill, split over .text/.rodata/.data/.bss. */
export function cpythonShapedGraphs(): LinkGraph[] {
  const random = rng(3_11);
  const content = split(6_660_000, 177, random);
  const zeroFill = split(280_000, 177, random);
  const RX = allocGroup(R | X);
  const RO = allocGroup(R);
  const RW = allocGroup(R | W);
  return content.map((bytes, i) => {
    const text = Math.max(16, Math.floor(bytes * 0.6));
    const rodata = Math.max(8, Math.floor(bytes * 0.25));
    const data = Math.max(8, bytes - text - rodata);
    const fill = (n: number, seed: number): Uint8Array => {
      const b = new Uint8Array(n);
      for (let j = 0; j < n; j += 61) b[j] = (j + seed) & 0xff;
      return b;
    };
    return {
      name: `obj${i}.o`,
      sections: [
        { name: '.text', group: RX, alignment: 16, size: text, content: fill(text, i) },
        { name: '.rodata', group: RO, alignment: 8, size: rodata, content: fill(rodata, i + 1) },
        { name: '.data', group: RW, alignment: 8, size: data, content: fill(data, i + 2) },
        { name: '.bss', group: RW, alignment: 8, size: zeroFill[i]! },
      ],
    };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * One load: allocate, write and finalize every graph, as a JIT linking the whole program.
 * `pipelined` finalizes as the graphs become ready without waiting for each answer, as a
 * concurrent JIT (ORC with a thread pool) does; otherwise each finalize waits for the last.
 */
async function timeLoad(
  manager: SlabMemoryManager,
  graphs: readonly LinkGraph[],
  pipelined: boolean,
): Promise<{ ms: number; finalized: FinalizedAllocation[] }> {
  const t0 = performance.now();
  let finalized: FinalizedAllocation[] = [];
  if (pipelined) {
    const pending: Array<Promise<FinalizedAllocation>> = [];
    for (const g of graphs) {
      const alloc = await manager.allocate(g);
      alloc.writeContent();
      pending.push(alloc.finalize());
    }
    finalized = await Promise.all(pending);
  } else {
    for (const g of graphs) {
      const alloc = await manager.allocate(g);
      alloc.writeContent();
      finalized.push(await alloc.finalize());
    }
  }
  return { ms: performance.now() - t0, finalized };
}

async function loadMedian(
  mapper: MemoryMapper,
  graphs: readonly LinkGraph[],
  iterations: number,
  pipelined: boolean,
): Promise<number> {
  const manager = new SlabMemoryManager(mapper, { granularity: 1024 ** 3 });
  const samples: number[] = [];
  // Warm-up loads: the slab is reserved, its pages touched and both processes' JITs warm, as in
  // a long-running JIT; what is left is the steady cost of moving the set.
  const warmups = 8;
  for (let i = 0; i < iterations + warmups; i++) {
    const { ms, finalized } = await timeLoad(manager, graphs, pipelined);
    if (i >= warmups) samples.push(ms);
    await manager.deallocate(finalized);
  }
  return median(samples);
}

async function latency(session: ExecutorSession, calls: number): Promise<{ median: number; p99: number }> {
  for (let i = 0; i < 200; i++) await session.noop();
  const us: number[] = new Array(calls);
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await session.noop();
    us[i] = (performance.now() - t0) * 1000;
  }
  us.sort((a, b) => a - b);
  return { median: median(us), p99: us[Math.floor(calls * 0.99)]! };
}

export async function runRemoteBench(options: RemoteBenchOptions = {}): Promise<RemoteBenchResult> {
  const iterations = options.iterations ?? 9;
  const calls = options.latencyCalls ?? 5000;
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const cpus = native.getAffinity(0);
  const latencyUs: RemoteBenchResult['latencyUs'] = { 'same-cpu': null, 'other-cpu': null };

  write(`no-op call round trip (${calls} calls, jitmem executor over a socket pair):`);
  const session = await ExecutorSession.spawn();
  try {
    const pin = (controllerCpu: number, executorCpu: number): void => {
      native.setAffinity(0, [controllerCpu]);
      native.setAffinity(session.pid!, [executorCpu]);
    };
    for (const [label, other] of [
      ['same-cpu', false],
      ['other-cpu', true],
    ] as const) {
      if (other && cpus.length < 2) {
        write(`  ${label.padEnd(10)} skipped: this process may only run on CPU ${cpus[0]}`);
        continue;
      }
      pin(cpus[0]!, other ? cpus[1]! : cpus[0]!);
      const r = await latency(session, calls);
      latencyUs[label] = r;
      write(`  ${label.padEnd(10)} median ${r.median.toFixed(1)} us   p99 ${r.p99.toFixed(1)} us`);
    }
  } finally {
    native.setAffinity(0, cpus);
    await session.close();
  }

  const graphs = cpythonShapedGraphs();
  const contentBytes = graphs.reduce((a, g) => a + g.sections.reduce((b, s) => b + (s.content?.length ?? 0), 0), 0);
  const zeroBytes = graphs.reduce((a, g) => a + g.sections.reduce((b, s) => b + (s.content ? 0 : s.size), 0), 0);
  write('');
  write(
    `CPython-shaped load: ${graphs.length} graphs, ${(contentBytes / 1e6).toFixed(2)} MB content, ${(zeroBytes / 1e6).toFixed(2)} MB zero-fill; median of ${iterations} loads`,
  );
  const loads: Record<'sequential' | 'pipelined', Record<'in-process' | 'shared' | 'rpc-copy', number>> = {
    sequential: { 'in-process': 0, shared: 0, 'rpc-copy': 0 },
    pipelined: { 'in-process': 0, shared: 0, 'rpc-copy': 0 },
  };
  for (const mode of ['sequential', 'pipelined'] as const) {
    const pipelined = mode === 'pipelined';
    const inProcess = new InProcessMemoryMapper();
    loads[mode]['in-process'] = await loadMedian(inProcess, graphs, iterations, pipelined).finally(() =>
      inProcess.close(),
    );
    const remote = async (make: (s: ExecutorSession) => MemoryMapper): Promise<number> => {
      const s = await ExecutorSession.spawn();
      const mapper = make(s);
      try {
        return await loadMedian(mapper, graphs, iterations, pipelined);
      } finally {
        await mapper.close();
        await s.close();
      }
    };
    loads[mode].shared = await remote((s) => new SharedMemoryMapper(s));
    loads[mode]['rpc-copy'] = await remote((s) => new RpcCopyMapper(s));
  }
  const verdict = (ms: number, budget: number): string => (ms <= budget ? 'within budget' : 'OVER BUDGET');
  for (const mode of ['sequential', 'pipelined'] as const) {
    const l = loads[mode];
    write(
      `  ${mode === 'pipelined' ? 'pipelined (finalize calls in flight together)' : 'sequential (each finalize waits for its answer)'}:`,
    );
    write(`    in-process   ${l['in-process'].toFixed(2).padStart(8)} ms`);
    for (const [name, budget] of [
      ['shared', BUDGET_MS.shared],
      ['rpc-copy', BUDGET_MS.rpc],
    ] as const) {
      const extra = l[name] - l['in-process'];
      write(
        `    ${name.padEnd(12)} ${l[name].toFixed(2).padStart(8)} ms   extra ${extra.toFixed(2).padStart(7)} ms   budget <= ${budget} ms   ${verdict(extra, budget)}`,
      );
    }
  }
  // This set is synthetic and moved by jitmem's mappers only; a figure for LLVM would have to be
  // measured on the same work, which `jitmem bench --pattern run` does with llvm-jitlink.
  write(
    "  LLVM: not measured here (a synthetic set moved by jitmem's mappers has no llvm-jitlink equivalent); `jitmem bench --pattern run` measures llvm-jitlink on the CPython link in the same run",
  );
  const p = loads.pipelined;
  return {
    latencyUs,
    loadMs: p,
    loadMsSequential: loads.sequential,
    extraMs: { shared: p.shared - p['in-process'], rpc: p['rpc-copy'] - p['in-process'] },
  };
}
