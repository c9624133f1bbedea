import { createHash } from 'node:crypto';
import * as native from '../../native/index.js';
import { InProcessMemoryMapper } from '../../mappers/in-process-memory-mapper.js';
import { ExecutorSession, type SpawnOptions } from '../../session/executor-session.js';
import { SharedMemoryMapper } from '../../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../../mappers/rpc-copy-mapper.js';
import { DualMappedMemoryMapper } from '../../mappers/dual-mapped-memory-mapper.js';
import type { AllocActionCallPair, MemoryMapper } from '../../mappers/memory-mapper.js';
import { traceArgs } from './graphs.js';

/**
 * One mapper and the means to look at its target memory from the test: run code there, hash
 * ranges there, read bytes back. The contract suite runs the same assertions over every kind.
 */
export interface MapperTarget {
  readonly mapper: MemoryMapper;
  readonly session: ExecutorSession | null;
  runInt(fn: number, arg: number): Promise<number>;
  /** sha256 hex of each [start, start+length) in target memory. */
  digest(ranges: ReadonlyArray<{ start: number; length: number }>): Promise<string[]>;
  read(start: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export type MapperKind = 'in-process' | 'shared' | 'rpc-copy' | 'dualmap';
export const MAPPER_KINDS: readonly MapperKind[] = ['in-process', 'shared', 'rpc-copy'];

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function openTarget(kind: MapperKind, spawnOptions: SpawnOptions = {}): Promise<MapperTarget> {
  if (kind === 'in-process' || kind === 'dualmap') {
    const mapper: MemoryMapper = kind === 'dualmap' ? new DualMappedMemoryMapper() : new InProcessMemoryMapper();
    return {
      mapper,
      session: null,
      runInt: async (fn, arg) => native.callInt32(fn, arg),
      digest: async (ranges) => ranges.map((r) => sha256Hex(native.view(r.start, r.length))),
      read: async (start, length) => native.view(start, length).slice(),
      close: () => mapper.close(),
    };
  }
  const session = await ExecutorSession.spawn(spawnOptions);
  const mapper = kind === 'shared' ? new SharedMemoryMapper(session) : new RpcCopyMapper(session);
  const wire = (ranges: ReadonlyArray<{ start: number; length: number }>) =>
    ranges.map((r) => ({ start: r.start, end: r.start + r.length }));
  return {
    mapper,
    session,
    runInt: (fn, arg) => session.runAsInt(fn, arg),
    digest: async (ranges) =>
      session.isJitmem
        ? (await session.checksum(wire(ranges))).map((d) => Buffer.from(d).toString('hex'))
        : (await session.readBuffers(wire(ranges))).map(sha256Hex),
    read: async (start, length) => (await session.readBuffers([{ start, end: start + length }]))[0]!,
    close: async () => {
      try {
        await mapper.close();
      } finally {
        await session.close();
      }
    },
  };
}

/** Where the addon's trace and fail actions are in the target's process. */
export function targetActions(target: MapperTarget): { trace: number; fail: number } {
  if (!target.session) return native.actionAddresses();
  return { trace: target.session.symbol('jitmem_trace_action'), fail: target.session.symbol('jitmem_fail_action') };
}

/** Action pairs that log f[i] at finalize and d[i] at dealloc, with the target's trace action. */
export function targetTracePairs(
  target: MapperTarget,
  log: number,
  capacity: number,
  pairs: Array<[number, number]>,
): AllocActionCallPair[] {
  const trace = targetActions(target).trace;
  return pairs.map(([f, d]) => ({
    finalize: { fn: trace, args: traceArgs(log, capacity, f) },
    dealloc: { fn: trace, args: traceArgs(log, capacity, d) },
  }));
}

/** Reads a trace log (u64 count, then that many u64 entries) from target memory. */
export async function readTraceLogFrom(target: MapperTarget, log: number, capacity: number): Promise<number[]> {
  const bytes = await target.read(log, 8 + 8 * capacity);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  return Array.from({ length: n }, (_, i) => Number(dv.getBigUint64(8 + 8 * i, true)));
}
