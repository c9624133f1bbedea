import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CellRunner, type Cell } from '../harness/bench/cell-runner.js';
import { openHandle } from '../harness/bench/mapper-handles.js';
import { presetSelection } from '../harness/bench/matrix.js';
import { runBench } from '../harness/bench/run-bench.js';
import { formatReportJson, type ProcessCounters } from '../harness/report/report.js';
import type { compareReports } from '../harness/compare/judge.js';
import type { AllocInfo, MemoryMapper } from '../mappers/memory-mapper.js';
import { loadPlan } from '../workloads/patterns/load-pattern.js';
import { incGraph } from './helpers/graphs.js';
import { ExecutorSession } from '../session/executor-session.js';
import { PROCESS_COST_COUNTER_NAMES } from '../core/cost-counters.js';
import { runCli } from './helpers/run-cli.js';

const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Counters against values worked out by hand, for one iteration of the load pattern over
 * incGraph: three segments, each its own page, in BasicLayout order: R (.rodata, 8 bytes),
 * RW (.data, 24 bytes, and 200 bytes of .bss), R-X (.text, 4 bytes); no alloc actions. The
 * slab is warm (its reservation was made in the warm-up), so an iteration is one initialize
 * and one deinitialize.
 *
 * Wire (SPS, little-endian u64 counts and addresses, 32-byte frame headers):
 * - RPC copy, initialize: instance 8 + segment count 8 + 3 x (group 1 + addr 8 + size 8 +
 *   content count 8) + content 8+24+4 + action count 8 = 135, a 167-byte frame; the answer is
 *   SPSExpected<ExecutorAddr>: 1 + 8 = 9, a 41-byte frame.
 * - shared memory, initialize: instance 8 + reservation 8 + segment count 8 + 3 x (1 + 8 + 8)
 *   + action count 8 = 83, a 115-byte frame; the answer 41 bytes as above.
 * - deinitialize (both): instance 8 + key count 8 + one key 8 = 24, a 56-byte frame; the answer
 *   is SPSError success, 1 byte, a 33-byte frame.
 * mprotect:
 * - in-process: pages start RW, so only R and R-X change (2, the RW run already has its
 *   protection), then one call gives the three contiguous pages back RW: 3; one I-cache flush
 *   for the R-X run.
 * - executor, RPC copy: its pages start RW, so only R and R-X change (2), and change back in
 *   one call over the region's three pages (1): 3.
 * - executor, shared memory: its pages start with no access: all three change (3) and go back in
 *   one call (1): 4.
 * No mmap, munmap or shm object in a warm iteration.
 */
interface Expected {
  readonly controller: Partial<ProcessCounters>;
  readonly executor: Partial<ProcessCounters> | null;
}
const quiet = { mmap: 0, munmap: 0, shmCreated: 0 };
const EXPECTED: Record<'inprocess' | 'shared' | 'rpc', Expected> = {
  inprocess: {
    controller: { roundTrips: 0, wireBytesOut: 0, wireBytesIn: 0, mprotect: 3, icacheFlushes: 1, ...quiet },
    executor: null,
  },
  rpc: {
    controller: {
      roundTrips: 2,
      wireBytesOut: 167 + 56,
      wireBytesIn: 41 + 33,
      mprotect: 0,
      icacheFlushes: 0,
      ...quiet,
    },
    executor: { roundTrips: 2, wireBytesIn: 167 + 56, wireBytesOut: 41 + 33, mprotect: 3, icacheFlushes: 1, ...quiet },
  },
  shared: {
    controller: {
      roundTrips: 2,
      wireBytesOut: 115 + 56,
      wireBytesIn: 41 + 33,
      mprotect: 0,
      icacheFlushes: 0,
      ...quiet,
    },
    executor: { roundTrips: 2, wireBytesIn: 115 + 56, wireBytesOut: 41 + 33, mprotect: 4, icacheFlushes: 1, ...quiet },
  },
};

for (const mapper of ['inprocess', 'rpc', 'shared'] as const) {
  // Serial: the counters are per process, and a test running beside this one would add its own.
  test.serial(
    `counters of one load of a known graph match the hand-computed values on both sides (${mapper})`,
    async (t) => {
      const executor = mapper === 'inprocess' ? 'none' : 'jitmem';
      const handle = await openHandle(mapper, executor, { executorCpus: null });
      t.teardown(() => handle.close());
      const cell: Cell = { workload: 'inc', pattern: 'load', mapper, executor, policy: 'first-fit' };
      const runner = new CellRunner(cell, handle, loadPlan([incGraph()]), {
        time: 50,
        iterations: 30,
        warmupIterations: 2,
        cold: false,
        granularity: 1 << 20,
      });
      const row = await runner.run();
      t.truthy(row.counters);
      const expected = EXPECTED[mapper];
      t.deepEqual(pick(row.counters!.controller, expected.controller), expected.controller);
      if (expected.executor === null) t.is(row.counters!.executor, null);
      else t.deepEqual(pick(row.counters!.executor!, expected.executor), expected.executor);
      // The content went into target memory once at least (the write), whatever the transport.
      t.true(row.counters!.controller.bytesCopied >= 8 + 24 + 4);
      t.log(JSON.stringify(row.counters));
    },
  );
}

function pick(c: ProcessCounters, like: Partial<ProcessCounters>): Partial<ProcessCounters> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, c[k as keyof ProcessCounters]]));
}

/** A shared-memory mapper that makes one extra round trip per finalize (an empty checksum call). */
class ExtraRoundTripMapper implements MemoryMapper {
  constructor(
    private readonly inner: MemoryMapper,
    private readonly extra: () => Promise<unknown>,
  ) {}
  get pageSize(): number {
    return this.inner.pageSize;
  }
  reserve(bytes: number) {
    return this.inner.reserve(bytes);
  }
  prepare(addr: number, size: number) {
    return this.inner.prepare(addr, size);
  }
  async initialize(info: AllocInfo) {
    await this.extra();
    return this.inner.initialize(info);
  }
  deinitialize(keys: readonly number[]) {
    return this.inner.deinitialize(keys);
  }
  release(bases: readonly number[]) {
    return this.inner.release(bases);
  }
  close() {
    return this.inner.close();
  }
}

test('one extra round trip per finalize is flagged by the counters of a single run, exactly, with exit 1', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-counters-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = async (extra: boolean) => {
    const { report } = await runBench({
      selection: {
        ...presetSelection('quick'),
        workloads: ['cray'],
        mappers: ['shared', 'rpc'],
        time: 100,
        iterations: 10,
      },
      preset: 'custom',
      seed: 1,
      cold: false,
      pin: 'none',
      granularity: 1 << 26,
      workloadOptions: {},
      repoDir,
      openHandle: async (m, e, o) => {
        const h = await openHandle(m, e, o);
        return extra && m === 'shared'
          ? { ...h, memoryMapper: new ExtraRoundTripMapper(h.memoryMapper, () => h.digest([])) }
          : h;
      },
    });
    const file = path.join(dir, `${extra ? 'extra' : 'plain'}.json`);
    writeFileSync(file, formatReportJson(report));
    return file;
  };
  const base = await run(false);
  const head = await run(true);
  const r = runCli(['compare', base, head, '--ratios-only', '--format', 'json'], {
    ...process.env,
    GITHUB_STEP_SUMMARY: '',
  });
  t.is(r.status, 1, r.stdout);
  const json = JSON.parse(r.stdout) as ReturnType<typeof compareReports>;
  const flagged = json.counters
    .filter((c) => c.verdict === 'regression')
    .map((c) => `${c.label} ${c.base} -> ${c.head}`);
  t.log(flagged.join('\n'));
  // cray is one graph: one finalize per iteration, so one more call each way, on both sides.
  for (const side of ['controller', 'executor'] as const) {
    const trips = json.counters.find((c) => c.label === `cray/load/shared/jitmem/first-fit/${side}.roundTrips`)!;
    t.is(trips.verdict, 'regression');
    t.is(trips.head - trips.base, 1);
  }
  // RPC copy did not change: none of its gated counters moved.
  t.true(
    json.counters.filter((c) => c.key.mapper === 'rpc' && c.gated).every((c) => c.base === c.head),
    JSON.stringify(json.counters.filter((c) => c.key.mapper === 'rpc' && c.base !== c.head)),
  );
  // The text output lists the changed counters.
  // Wide enough that no column (base, head) is left out of the table the assertion reads.
  const wide = { ...process.env, GITHUB_STEP_SUMMARY: '', COLUMNS: '300' };
  const text = runCli(['compare', base, head, '--ratios-only'], wide).stdout;
  t.regex(text, /^cray\/load\/shared\/jitmem\/first-fit\/controller\.roundTrips +2 +3 +\+50\.0% +REGRESSION$/m);
});

test("the executor's twelfth counter, nanoseconds in handlers, is read by name; the controller has none", async (t) => {
  t.is(PROCESS_COST_COUNTER_NAMES.at(-1), 'handlerNs');
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const before = await session.executorCostCounters();
  for (let i = 0; i < 50; i++) await session.noop();
  const after = await session.executorCostCounters();
  // 50 no-ops and one counter call were handled since; each handler takes at least a nanosecond.
  t.is(after.roundTrips - before.roundTrips, 51);
  t.true(after.handlerNs - before.handlerNs >= 51, `${before.handlerNs} -> ${after.handlerNs}`);
  t.is(session.controllerCostCounters().handlerNs, 0);
});
