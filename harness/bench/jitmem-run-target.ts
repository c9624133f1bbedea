import { performance } from 'node:perf_hooks';
import { JitmemError } from '../../core/errors.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { RpcCopyMapper } from '../../mappers/rpc-copy-mapper.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import type { MemoryMapper } from '../../mappers/memory-mapper.js';
import { SlabKeeper } from '../../mappers/slab/slab-keeper.js';
import { ExecutorSession } from '../../session/executor-session.js';
import { InProcessTarget, SessionTarget, type ProgramTarget } from '../../loader/program-target.js';
import { runProgram } from '../../loader/run-program.js';
import type { MapperName } from '../report/report.js';
import type { RunProgram } from '../../workloads/run-programs.js';
import type { MinorFaults, OpenRunTarget, RunClock, RunTarget } from './run-target.js';
import { closeOrKill, joinErrors, runAll } from '../../core/cleanup.js';

/**
 * The run pattern wired to jitmem's linker: jitlink's runProgram over a slab memory manager on
 * the cell's mapper, its phases mapped onto the pattern's (read: reading the objects; link:
 * preloading libraries, resolving, laying out, applying relocations, exporting the program's
 * symbols; reserve: the slab's allocate; write; initialize; run; deinitialize: deallocation;
 * release: giving the slab back).
 */

/** The slab llvm-jitlink reserves: 1 GiB of address space, so that the program lies in one piece. */
const GRANULARITY = 1024 ** 3;

class LinkerRunTarget implements RunTarget {
  /** The mapper's release calls of the current run, ms: runProgram gives a slab back untimed. */
  private releaseMs = 0;
  private readonly mapper: MemoryMapper;
  /**
   * One slab kept across the programs this controller runs (the warm controller runs one after
   * another), so each lands on pages the executor has already faulted in.
   */
  private readonly keeper: SlabKeeper;

  constructor(
    private readonly target: ProgramTarget,
    private readonly inner: MemoryMapper,
    private readonly session: ExecutorSession | undefined,
  ) {
    const timeRelease = (ms: number): void => void (this.releaseMs += ms);
    this.mapper = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'release') {
          return async (bases: readonly number[]) => {
            const t0 = performance.now();
            try {
              return await target.release(bases);
            } finally {
              timeRelease(performance.now() - t0);
            }
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    this.keeper = new SlabKeeper(this.mapper, { maxIdle: 1 });
  }

  async runToExit(program: RunProgram, clock: RunClock): Promise<number> {
    this.releaseMs = 0;
    const mapper = this.mapper;
    const t0 = performance.now();
    const run = await runProgram({
      inputs: program.files,
      target: this.target,
      mapper,
      keeper: this.keeper,
      slab: { granularity: GRANULARITY, policy: 'first-fit' },
      programName: program.argv[0]!,
      args: program.argv.slice(1),
      preload: program.preload,
    });
    const elapsed = performance.now() - t0;
    const t = run.times;
    const parts = {
      read: t.readObjects,
      link: t.preload + t.resolve + t.layout + t.applyRelocations + t.exportSymbols,
      reserve: t.reserve,
      write: t.write,
      initialize: t.initialize,
      run: t.run,
      deinitialize: t.deallocate,
      release: this.releaseMs,
    } as const;
    let accounted = 0;
    for (const [phase, ms] of Object.entries(parts)) {
      clock.add(phase as keyof typeof parts, ms);
      accounted += ms;
    }
    // What runProgram did between its timed steps (argv, bookkeeping) counts as link.
    clock.add('link', Math.max(0, elapsed - accounted));
    if (run.result.outcome === 'crashed') {
      throw new JitmemError(
        'ERR_PROGRAM_CRASHED',
        `${program.description}: the program crashed (signal ${run.result.signal}${run.result.faultAddress !== undefined ? ` at 0x${run.result.faultAddress.toString(16)}` : ''})`,
        {
          signal: run.result.signal,
        },
      );
    }
    return run.result.status;
  }

  async minorFaults(): Promise<MinorFaults> {
    const controller = process.resourceUsage().minorPageFault;
    if (!this.session?.hasCostCounters) return { controller };
    return { controller, executor: (await this.session.executorCostCounters()).minorFaults };
  }

  get executorPid(): number | undefined {
    return this.session?.pid;
  }

  counters(): { calls: number; bytesSent: number } {
    if (!this.session) return { calls: 0, bytesSent: 0 };
    const c = this.session.counters();
    return { calls: c.calls, bytesSent: c.bytesSent };
  }

  async close(): Promise<void> {
    try {
      await this.keeper.close();
      await this.inner.close();
    } finally {
      await this.session?.close();
    }
  }
}

export const openRunTarget: OpenRunTarget = async (mapper: MapperName, executor: 'jitmem' | 'llvm') => {
  if (mapper === 'inprocess') return new LinkerRunTarget(new InProcessTarget(), new InProcessMemoryMapper(), undefined);
  // The program's output is the executor's: it goes straight to this process's stdout.
  const session = await ExecutorSession.spawn({ kind: executor, stdio: 'inherit' });
  try {
    const memoryMapper: MemoryMapper =
      mapper === 'shared' ? new SharedMemoryMapper(session) : new RpcCopyMapper(session);
    return new LinkerRunTarget(new SessionTarget(session), memoryMapper, session);
  } catch (err) {
    throw joinErrors(err, await runAll([() => closeOrKill(session)]));
  }
};
