import { JitmemError } from '../core/errors.js';
import { SpsReader, SpsWriter } from './sps.js';

/**
 * The Setup message (docs/wire-protocol.md §4) and the bootstrap symbol names LLVM 22 uses for its
 * services.
 */

export const Sym = {
  dispatchCtx: '__llvm_orc_SimpleRemoteEPC_dispatch_ctx',
  dispatchFn: '__llvm_orc_SimpleRemoteEPC_dispatch_fn',
  memMgrInstance: '__llvm_orc_SimpleExecutorMemoryManager_Instance',
  memMgrReserve: '__llvm_orc_SimpleExecutorMemoryManager_reserve_wrapper',
  memMgrInitialize: '__llvm_orc_SimpleExecutorMemoryManager_initialize_wrapper',
  memMgrDeinitialize: '__llvm_orc_SimpleExecutorMemoryManager_deinitialize_wrapper',
  memMgrRelease: '__llvm_orc_SimpleExecutorMemoryManager_release_wrapper',
  shmInstance: '__llvm_orc_ExecutorSharedMemoryMapperService_Instance',
  shmReserve: '__llvm_orc_ExecutorSharedMemoryMapperService_Reserve',
  shmInitialize: '__llvm_orc_ExecutorSharedMemoryMapperService_Initialize',
  shmDeinitialize: '__llvm_orc_ExecutorSharedMemoryMapperService_Deinitialize',
  shmRelease: '__llvm_orc_ExecutorSharedMemoryMapperService_Release',
  dylibInstance: '__llvm_orc_SimpleExecutorDylibManager_Instance',
  dylibOpen: '__llvm_orc_SimpleExecutorDylibManager_open_wrapper',
  dylibResolve: '__llvm_orc_SimpleExecutorDylibManager_resolve_wrapper',
  writeUInt8s: '__llvm_orc_bootstrap_mem_write_uint8s_wrapper',
  writeUInt16s: '__llvm_orc_bootstrap_mem_write_uint16s_wrapper',
  writeUInt32s: '__llvm_orc_bootstrap_mem_write_uint32s_wrapper',
  writeUInt64s: '__llvm_orc_bootstrap_mem_write_uint64s_wrapper',
  writePointers: '__llvm_orc_bootstrap_mem_write_pointers_wrapper',
  writeBuffers: '__llvm_orc_bootstrap_mem_write_buffers_wrapper',
  readUInt8s: '__llvm_orc_bootstrap_mem_read_uint8s_wrapper',
  readUInt16s: '__llvm_orc_bootstrap_mem_read_uint16s_wrapper',
  readUInt32s: '__llvm_orc_bootstrap_mem_read_uint32s_wrapper',
  readUInt64s: '__llvm_orc_bootstrap_mem_read_uint64s_wrapper',
  readPointers: '__llvm_orc_bootstrap_mem_read_pointers_wrapper',
  readBuffers: '__llvm_orc_bootstrap_mem_read_buffers_wrapper',
  readStrings: '__llvm_orc_bootstrap_mem_read_strings_wrapper',
  runAsMain: '__llvm_orc_bootstrap_run_as_main_wrapper',
  runAsVoid: '__llvm_orc_bootstrap_run_as_void_function_wrapper',
  runAsInt: '__llvm_orc_bootstrap_run_as_int_function_wrapper',
  registerEHFrame: 'llvm_orc_registerEHFrameAllocAction',
  deregisterEHFrame: 'llvm_orc_deregisterEHFrameAllocAction',
  registerJITLoaderGDB: 'llvm_orc_registerJITLoaderGDBAllocAction',
} as const;

/** The 34 names llvm-jitlink-executor 22.1.8 advertises (docs/wire-protocol.md §4). */
export const LLVM22_BOOTSTRAP_SYMBOLS: readonly string[] = Object.freeze(Object.values(Sym));

/** jitmem's own services, advertised beside LLVM's. */
export const JitmemSym = {
  /** (SPSSequence<SPSExecutorAddrRange>) -> SPSExpected<SPSSequence<SPSSequence<char>>>: sha256 per range. */
  checksum: 'jitmem_checksum_wrapper',
  /**
   * (SPSSequence<SPSTuple<SPSExecutorAddr, SPSSequence<char>>>) -> SPSError: overwrite code of
   * initialized segments in place, a batch of patches in one call, all checked before any is written.
   */
  patchCode: 'jitmem_patch_code_wrapper',
  /**
   * (SPSSequence<SPSExecutorAddrRange>) -> SPSError: make bytes written into executable segments
   * from outside (through shared memory) what every thread fetches next: flush each range's
   * I-cache lines, then serialize every thread's instruction stream.
   */
  codeBarrier: 'jitmem_code_barrier_wrapper',
  /** () -> SPSEmpty: a call that does nothing, for round-trip latency. */
  noop: 'jitmem_noop_wrapper',
  /**
   * () -> SPSSequence<uint64_t>: the executor's cost counters (core/cost-counters.ts
   * PROCESS_COST_COUNTER_NAMES order).
   */
  costCounters: 'jitmem_cost_counters_wrapper',
  /**
   * () -> SPSError: walks the executor's stack through its unwinder, which reads every registered EH
   * frame (a diagnostic).
   */
  unwindProbe: 'jitmem_unwind_probe_wrapper',
  /** Alloc action (addr log, u64 capacity, u64 value): appends value to a log in target memory. */
  traceAction: 'jitmem_trace_action',
  /** Alloc action that always fails. */
  failAction: 'jitmem_fail_action',
} as const;

export interface SetupInfo {
  readonly targetTriple: string;
  readonly pageSize: number;
  readonly bootstrapMap: ReadonlyMap<string, Uint8Array>;
  readonly symbols: ReadonlyMap<string, number>;
}

export function encodeSetup(info: SetupInfo): SpsWriter {
  const w = new SpsWriter(4096, 32);
  w.string(info.targetTriple).u64(info.pageSize);
  w.map(
    info.bootstrapMap,
    (w, k) => w.string(k),
    (w, v) => w.bytes(v),
  );
  w.map(
    info.symbols,
    (w, k) => w.string(k),
    (w, v) => w.addr(v),
  );
  return w;
}

export function decodeSetup(payload: Uint8Array): SetupInfo {
  const r = new SpsReader(payload, 'Setup message');
  const targetTriple = r.string();
  const pageSize = r.u64('the page size');
  const bootstrapMap = r.map(
    16,
    (r) => r.string(),
    (r) => r.bytesView().slice(),
  );
  const symbols = r.map(
    16,
    (r) => r.string(),
    (r) => r.addr('a bootstrap symbol address'),
  );
  r.end();
  if (pageSize === 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw new JitmemError(
      'ERR_SPS_MALFORMED',
      `the Setup message gives page size ${pageSize}; expected a power of two`,
      { pageSize },
    );
  }
  return { targetTriple, pageSize, bootstrapMap, symbols };
}

/** The LLVM-style triple of this process (what the executor reports). */
export function processTriple(): string {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
  const os = process.platform === 'linux' ? 'linux-gnu' : process.platform;
  return `${arch}-pc-${os}`;
}
