/**
 * jitmem's public API: `import { ... } from 'jitmem'`. Everything a user of the library needs
 * comes from here; the deep paths under dist/ are not a contract. Loading this module loads
 * the allocator, the mappers, the session, the object reader and the linker, and nothing of the harness
 * (the report types below are types only), so none of the CLI's optional packages (clinic,
 * vega, resvg) is needed.
 */

// Errors: every failure a user can cause, with a stable `code`.
export { JitmemError } from './core/errors.js';

// The link-graph model and its layout (LLVM's BasicLayout).
export { allocGroup, allocGroupId, allocGroupFromId, allocGroupName, R, W, X, type AllocGroup, type Lifetime } from './graph/alloc-group.js';
export type { LinkGraph, Section } from './graph/link-graph.js';
export { layoutGraph, type GraphLayout, type SegmentLayout, type PlacedSection } from './graph/layout.js';

// ELF64 relocatable objects and ar archives, read as views of the file.
export { readObjectFile, readObjects } from './objects/read-objects.js';
export { ElfObject, type ElfSection, type ElfSymbol, type ElfRelocation } from './objects/elf-object.js';
export type { ArArchive, ArMember, ArSymbol } from './objects/ar-archive.js';
export type { ByteOrigin } from './objects/format-error.js';

// The controller's end of an executor process.
export { ExecutorSession, type SpawnOptions, type ConnectOptions } from './session/executor-session.js';

// The MemoryMapper contract and its transports: three, and the in-process one dual-mapped.
export type { MemoryMapper, ExecutorAddrRange, AllocInfo, SegmentInfo, AllocActionCallPair, WrapperCall, CodePatcher, CodePatch, PatchOptions } from './mappers/memory-mapper.js';
export { InProcessMemoryMapper } from './mappers/in-process-memory-mapper.js';
export { DualMappedMemoryMapper } from './mappers/dual-mapped-memory-mapper.js';
export { SharedMemoryMapper } from './mappers/shared-memory-mapper.js';
export { RpcCopyMapper } from './mappers/rpc-copy-mapper.js';

// The slab memory manager (LLVM's MapperJITLinkMemoryManager) and its free-range index.
export {
  SlabMemoryManager,
  InFlightAllocation,
  FinalizedAllocation,
  type SlabMemoryManagerOptions,
  type SlabStats,
  type AllocatedSegment,
} from './mappers/slab/slab-memory-manager.js';
export { FreeRangeIndex, FIT_POLICIES, type FitPolicy, type FreeRange } from './mappers/slab/free-range-index.js';
export { SlabKeeper, type SlabKeeperOptions } from './mappers/slab/slab-keeper.js';

// The JIT linker: x86-64 ELF objects and archives linked into a program, moved through any
// mapper and run in the executor (what `jitmem run` does).
export { linkObjects, LinkedProgram, type LinkOptions, type LinkInput, type LinkStats, type LinkTimes, type RelocatedProgram } from './jitlink/link.js';
export {
  runProgram,
  linkIntoExecutor,
  PHASE_NAMES,
  type RunProgramOptions,
  type ProgramRun,
  type PhaseTimes,
  type LinkedAllocation,
} from './loader/run-program.js';
export { InProcessTarget, SessionTarget, type ProgramTarget, type ProgramRunResult } from './loader/program-target.js';

// The shapes of the JSON reports `jitmem bench` writes (schema version 1; reports/README.md).
export type {
  Report,
  ReportEnv,
  ResultRow,
  RatioRow,
  BudgetRow,
  Stats,
  SlabSummary,
  SlabPoint,
  Placement,
  PhaseName,
  MapperName,
  ExecutorName,
  PatternName,
} from './harness/report/report.js';
