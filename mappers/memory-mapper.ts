import type { AllocGroup } from '../graph/alloc-group.js';
import type { CodePatch, PatchOptions } from './code-patch.js';
export type { CodePatch, PatchOptions } from './code-patch.js';

/**
 * The transport contract between the memory manager (which decides where things go) and the
 * executor's memory (where they end up), as LLVM ORC's MemoryMapper. Three implementations:
 * in-process, shared memory, RPC copy. docs/design.md §3.
 */

/** An executor address range; `end` is exclusive. */
export interface ExecutorAddrRange {
  readonly start: number;
  readonly end: number;
}

// Alloc actions are a protocol-level notion (they travel inside finalize requests and run in
// the executor); the types live with the code that runs them.
export type { AllocActionCallPair, WrapperCall } from '../protocol/alloc-actions.js';
import type { AllocActionCallPair } from '../protocol/alloc-actions.js';

export interface SegmentInfo {
  /** Offset of the segment from the mapping base; page-aligned. */
  readonly offset: number;
  /** Bytes of content at the start of the segment (already written to working memory). */
  readonly contentSize: number;
  /** Bytes after the content that initialize zeroes. */
  readonly zeroFillSize: number;
  readonly group: AllocGroup;
  /** The working memory prepare() returned for this segment (RPC copy sends its content). */
  readonly workingMemory?: Uint8Array;
}

export interface AllocInfo {
  readonly mappingBase: number;
  readonly segments: readonly SegmentInfo[];
  readonly actions: readonly AllocActionCallPair[];
}

export interface MemoryMapper {
  /** The executor's page size. */
  readonly pageSize: number;
  /** Reserves `bytes` (a multiple of the page size) of executor address space. */
  reserve(bytes: number): Promise<ExecutorAddrRange>;
  /**
   * Optional: reserve(), but inside `window` (code that must lie near some data, or in the low
   * 2 GiB). Resolves with null when this executor cannot place reservations.
   */
  reserveWithin?(bytes: number, window: ExecutorAddrRange): Promise<ExecutorAddrRange | null>;
  /**
   * Working memory for [addr, addr+size) of a reservation: where the linker writes content.
   * It is valid until the range is initialized, deinitialized or released, after which the
   * view is detached (it has length 0 and writes reach nothing).
   */
  prepare(addr: number, size: number): Uint8Array;
  /**
   * Optional: prepare() without the view. The same checks and the same record, and the address
   * in this process where [addr, addr+size)'s working memory lies, for a writer that copies into
   * it natively: one call per write, where a view costs an external ArrayBuffer made and then
   * detached (2.3-2.9 us against 0.2-0.3 us for a 3 KB write here). Undefined, with nothing
   * recorded, when the mapper has no such address: prepare() is the way there. prepare() can
   * still give a view of the range until it is initialized.
   */
  prepareLocal?(addr: number, size: number): number | undefined;
  /**
   * Moves the content into place (if the transport needs to), zeroes the zero-fill tails,
   * applies protections and runs the finalize actions in order. Every segment is checked
   * against its reservation before any byte is written. Returns the key: the lowest segment
   * address.
   */
  initialize(info: AllocInfo): Promise<number>;
  /**
   * Runs the dealloc actions of each key's region in reverse, puts its pages back to RW and
   * forgets it, so that the range can be initialized again. A key that names no initialized
   * region but is the address of working memory handed out by prepare() (an abandoned
   * allocation) just drops that working memory.
   */
  deinitialize(keys: readonly number[]): Promise<void>;
  /** Deinitializes whatever is left in each reservation and gives its address space back. */
  release(bases: readonly number[]): Promise<void>;
  /** Releases every reservation; the mapper cannot be used afterwards. */
  close(): Promise<void>;
  /**
   * Optional: overwrites code of initialized regions in place, with no new allocation (a
   * breakpoint, an inline-cache rewrite), a batch at a time. Every patch of the batch lies
   * inside one initialized segment and is checked before any byte is written. When it resolves
   * the new bytes are what runs: the pages have their protection back and the instruction
   * stream is coherent (see PatchOptions.codeRunning). Each transport pays its fixed cost once
   * per batch, its own way, which the `patch` pattern measures.
   */
  patchCode?(patches: readonly CodePatch[], options?: PatchOptions): Promise<void>;
}

/** What the patch pattern needs of a mapper: in-place code patching. */
export type CodePatcher = Required<Pick<MemoryMapper, 'patchCode'>>;
