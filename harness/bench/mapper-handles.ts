import { existsSync } from 'node:fs';
import * as native from '../../native/index.js';
import { JitmemError } from '../../core/errors.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { ExecutorSession, DEFAULT_LLVM_EXECUTOR } from '../../session/executor-session.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../../mappers/rpc-copy-mapper.js';
import { DualMappedMemoryMapper } from '../../mappers/dual-mapped-memory-mapper.js';
import type { ExecutorName, MapperName } from '../report/report.js';
import type { CodePatch, MemoryMapper, PatchOptions } from '../../mappers/memory-mapper.js';
import type { Cell, MapperHandle } from './cell-runner.js';
import type { AddressRange } from './integrity.js';
import { sha256 } from './integrity.js';
import { processCostCounters } from '../../core/cost-counters.js';
import { closeOrKill, joinErrors, runAll } from '../../core/cleanup.js';

/**
 * Opens the transport of one cell: a mapper, and for the remote ones the executor process it
 * talks to, pinned where the bench was asked to pin it. Each handle closes what it opened.
 */

export interface HandleOptions {
  /** CPUs to pin the executor to, or null to leave it free. */
  readonly executorCpus: readonly number[] | null;
  readonly llvmExecutor?: string;
  /** The cell the handle is opened for (a substitute transport may depend on its workload). */
  readonly cell?: Cell;
}

/** True when LLVM's executor is installed where the bench looks for it. */
export function llvmExecutorAvailable(path = DEFAULT_LLVM_EXECUTOR): boolean {
  return existsSync(path);
}

/**
 * A mapper whose target memory is in this process (in-process; dual-mapped, whose target pages
 * are its R-X view, as code sees them): the pages are hashed through zero-copy views, so nothing
 * is copied to check them, and there is no executor to count.
 */
function localHandle(mapper: 'inprocess' | 'dualmap'): MapperHandle {
  const memoryMapper = mapper === 'inprocess' ? new InProcessMemoryMapper() : new DualMappedMemoryMapper();
  return {
    mapper,
    executor: 'none',
    memoryMapper,
    digest: async (ranges) => ranges.map((r) => sha256(native.view(r.start, r.length))),
    read: async (r) => native.view(r.start, r.length).slice(),
    counters: () => ({ calls: 0, bytesSent: 0, bytesReceived: 0 }),
    costCounters: async () => ({ controller: processCostCounters(), executor: null }),
    controllerCounters: () => processCostCounters(),
    patch: (patches, options) => memoryMapper.patchCode(patches, options),
    close: () => memoryMapper.close(),
  };
}

async function remoteHandle(
  mapper: 'shared' | 'rpc',
  executor: 'jitmem' | 'llvm',
  options: HandleOptions,
): Promise<MapperHandle> {
  if (executor === 'llvm' && !llvmExecutorAvailable(options.llvmExecutor)) {
    throw new JitmemError(
      'ERR_LLVM_EXECUTOR_MISSING',
      `LLVM's executor is not installed at ${options.llvmExecutor ?? DEFAULT_LLVM_EXECUTOR}; install Debian's llvm-22 package or drop "llvm" from --executor`,
      { path: options.llvmExecutor ?? DEFAULT_LLVM_EXECUTOR },
    );
  }
  const session = await ExecutorSession.spawn({
    kind: executor,
    ...(options.llvmExecutor ? { llvmExecutor: options.llvmExecutor } : {}),
  });
  try {
    if (options.executorCpus && session.pid !== undefined) native.setAffinity(session.pid, options.executorCpus);
    const memoryMapper: MemoryMapper =
      mapper === 'shared' ? new SharedMemoryMapper(session) : new RpcCopyMapper(session);
    const toWire = (ranges: readonly AddressRange[]) =>
      ranges.map((r) => ({ start: r.start, end: r.start + r.length }));
    const digest = session.isJitmem
      ? async (ranges: readonly AddressRange[]) =>
          (await session.checksum(toWire(ranges))).map((d) => Buffer.from(d).toString('hex'))
      : // LLVM's executor has no checksum service: read the bytes back and hash them here.
        async (ranges: readonly AddressRange[]) => (await session.readBuffers(toWire(ranges))).map(sha256);
    return {
      mapper,
      executor,
      memoryMapper,
      digest,
      read: async (r) => (await session.readBuffers(toWire([r])))[0]!,
      counters: () => session.counters(),
      // The executor's first (its call is then counted on both sides, once), then this process's.
      costCounters: async () => {
        const executor = session.hasCostCounters ? await session.executorCostCounters() : null;
        return { controller: session.controllerCostCounters(), executor };
      },
      controllerCounters: () => session.controllerCostCounters(),
      ...(memoryMapper.patchCode
        ? {
            patch: (patches: readonly CodePatch[], options?: PatchOptions) => memoryMapper.patchCode!(patches, options),
          }
        : {}),
      ...(session.pid !== undefined ? { executorPid: session.pid } : {}),
      close: async () => {
        try {
          await memoryMapper.close();
        } finally {
          await session.close();
        }
      },
    };
  } catch (err) {
    throw joinErrors(err, await runAll([() => closeOrKill(session)]));
  }
}

export async function openHandle(
  mapper: MapperName,
  executor: ExecutorName,
  options: HandleOptions,
): Promise<MapperHandle> {
  if (mapper === 'inprocess' || mapper === 'dualmap') return localHandle(mapper);
  if (executor === 'none')
    throw new JitmemError('ERR_INVALID_CELL', `the ${mapper} mapper needs an executor (jitmem or llvm)`, { mapper });
  return remoteHandle(mapper, executor, options);
}
