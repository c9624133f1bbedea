import { existsSync } from 'node:fs';
import * as native from '../../native/index.js';
import { JitmemError } from '../../core/errors.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { ExecutorSession, DEFAULT_LLVM_EXECUTOR } from '../../session/executor-session.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../../mappers/rpc-copy-mapper.js';
import { DualMappedMemoryMapper } from '../../mappers/dual-mapped-memory-mapper.js';
import type { ExecutorName, MapperName } from '../report.js';
import type { CodePatch, MemoryMapper, PatchOptions } from '../../mappers/memory-mapper.js';
import type { MapperHandle } from './cell-runner.js';
import type { AddressRange } from './integrity.js';
import { sha256 } from './integrity.js';

/**
 * Opens the transport of one cell: a mapper, and for the remote ones the executor process it
 * talks to, pinned where the bench was asked to pin it. Each handle closes what it opened.
 */

export interface HandleOptions {
  /** CPUs to pin the executor to, or null to leave it free. */
  readonly executorCpus: readonly number[] | null;
  readonly llvmExecutor?: string;
}

/** True when LLVM's executor is installed where the bench looks for it. */
export function llvmExecutorAvailable(path = DEFAULT_LLVM_EXECUTOR): boolean {
  return existsSync(path);
}

function inProcessHandle(): MapperHandle {
  const mapper = new InProcessMemoryMapper();
  return {
    mapper: 'inprocess',
    executor: 'none',
    memoryMapper: mapper,
    // Hash the target pages through zero-copy views: nothing is copied to check them.
    digest: async (ranges) => ranges.map((r) => sha256(native.view(r.start, r.length))),
    read: async (r) => native.view(r.start, r.length).slice(),
    counters: () => ({ calls: 0, bytesSent: 0 }),
    patch: (patches, options) => mapper.patchCode(patches, options),
    close: () => mapper.close(),
  };
}

/** The dual-mapped in-process mapper: target pages seen through its R-X view, as code sees them. */
function dualMappedHandle(): MapperHandle {
  const mapper = new DualMappedMemoryMapper();
  return {
    mapper: 'dualmap',
    executor: 'none',
    memoryMapper: mapper,
    digest: async (ranges) => ranges.map((r) => sha256(native.view(r.start, r.length))),
    read: async (r) => native.view(r.start, r.length).slice(),
    counters: () => ({ calls: 0, bytesSent: 0 }),
    patch: (patches, options) => mapper.patchCode(patches, options),
    close: () => mapper.close(),
  };
}

async function remoteHandle(mapper: 'shared' | 'rpc', executor: 'jitmem' | 'llvm', options: HandleOptions): Promise<MapperHandle> {
  if (executor === 'llvm' && !llvmExecutorAvailable(options.llvmExecutor)) {
    throw new JitmemError(
      'ERR_LLVM_EXECUTOR_MISSING',
      `LLVM's executor is not installed at ${options.llvmExecutor ?? DEFAULT_LLVM_EXECUTOR}; install Debian's llvm-22 package or drop "llvm" from --executor`,
      { path: options.llvmExecutor ?? DEFAULT_LLVM_EXECUTOR },
    );
  }
  const session = await ExecutorSession.spawn({ kind: executor, ...(options.llvmExecutor ? { llvmExecutor: options.llvmExecutor } : {}) });
  try {
    if (options.executorCpus && session.pid !== undefined) native.setAffinity(session.pid, options.executorCpus);
    const memoryMapper: MemoryMapper = mapper === 'shared' ? new SharedMemoryMapper(session) : new RpcCopyMapper(session);
    const toWire = (ranges: readonly AddressRange[]) => ranges.map((r) => ({ start: r.start, end: r.start + r.length }));
    const digest = session.isJitmem
      ? async (ranges: readonly AddressRange[]) => (await session.checksum(toWire(ranges))).map((d) => Buffer.from(d).toString('hex'))
      : // LLVM's executor has no checksum service: read the bytes back and hash them here.
        async (ranges: readonly AddressRange[]) => (await session.readBuffers(toWire(ranges))).map(sha256);
    return {
      mapper,
      executor,
      memoryMapper,
      digest,
      read: async (r) => (await session.readBuffers(toWire([r])))[0]!,
      counters: () => session.counters(),
      ...(memoryMapper.patchCode ? { patch: (patches: readonly CodePatch[], options?: PatchOptions) => memoryMapper.patchCode!(patches, options) } : {}),
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
    await session.close().catch(() => session.kill());
    throw err;
  }
}

export async function openHandle(mapper: MapperName, executor: ExecutorName, options: HandleOptions): Promise<MapperHandle> {
  if (mapper === 'inprocess') return inProcessHandle();
  if (mapper === 'dualmap') return dualMappedHandle();
  if (executor === 'none') throw new JitmemError('ERR_INVALID_CELL', `the ${mapper} mapper needs an executor (jitmem or llvm)`, { mapper });
  return remoteHandle(mapper, executor, options);
}
