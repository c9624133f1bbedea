import { JitmemError, hex } from '../../core/errors.js';
import { alignUp, checkSize } from '../../core/checks.js';
import { osCounts } from '../../core/cost-counters.js';
import * as native from '../../native/index.js';
import type { AllocGroup } from '../../graph/alloc-group.js';
import type { LinkGraph } from '../../graph/link-graph.js';
import type { AllocActionCallPair, AllocInfo, ExecutorAddrRange, MemoryMapper, SegmentInfo } from '../memory-mapper.js';
import { FreeRangeIndex, checkFitPolicy, type FitPolicy } from './free-range-index.js';
import { layoutGraph, reverseLayout, type GraphLayout } from '../../graph/layout.js';

/**
 * Heap management over any MemoryMapper, as LLVM's MapperJITLinkMemoryManager: address space
 * is reserved in large slabs and allocations are carved from them, so a session's code and
 * data lie close together (the default code model needs it). Freed ranges coalesce with free
 * neighbours; the fit policy picks where an allocation goes. Where LLVM burns an abandoned
 * allocation's range, this one gives it back.
 */

export interface SlabMemoryManagerOptions {
  /** Reservation granularity in bytes (a multiple of the page size). llvm-jitlink uses 1 GiB. */
  readonly granularity?: number;
  readonly policy?: FitPolicy;
  /**
   * Reserve slabs inside this address range when the mapper can place reservations (code that
   * must lie near some data, or in the low 2 GiB); anywhere when it cannot.
   */
  readonly placement?: ExecutorAddrRange;
}

export interface AllocatedSegment {
  readonly group: AllocGroup;
  /** Executor address of the segment (page-aligned). */
  readonly address: number;
  readonly contentSize: number;
  readonly zeroFillSize: number;
  /** Page-rounded size the segment takes. */
  readonly size: number;
  /** Where the content is written before finalize; detached afterwards. */
  readonly workingMemory: Uint8Array;
}

export interface SlabStats {
  readonly policy: FitPolicy;
  readonly granularity: number;
  readonly reservations: number;
  readonly reservedBytes: number;
  readonly peakReservedBytes: number;
  readonly liveAllocations: number;
  readonly liveBytes: number;
  readonly peakLiveBytes: number;
  readonly freeRanges: number;
  readonly freeBytes: number;
  readonly largestFreeRange: number;
  /** 1 - largest free range / total free bytes: 0 when the free space is one range. */
  readonly fragmentation: number;
  readonly merges: number;
  /** Bytes never reused because a mapper failed to initialize or deinitialize them. */
  readonly burnedBytes: number;
}

type State = 'in-flight' | 'finalizing' | 'finalized' | 'deallocating' | 'gone';

/**
 * The state of one allocation, shared by its in-flight and finalized handles. Checks go
 * through it rather than through the base address, so a stale handle can never free a newer
 * allocation that happens to sit at the same address.
 */
export interface AllocationTicket {
  state: State;
  readonly base: number;
  readonly size: number;
  /** Protections of the lowest and the highest segment (how the allocation meets its neighbours). */
  readonly firstProt: number;
  readonly lastProt: number;
}

/**
 * A segment of an allocation in flight. Where the mapper has its working memory in this process
 * (MemoryMapper.prepareLocal: all four of ours), the view is made only when asked for, and
 * writeContent copies the graph's bytes there natively: an allocation written that way makes no
 * view, and its finalize detaches none (cray/churn in process spent 13% of its time making and
 * detaching views). With a mapper that has no such address, the view is made at once by prepare().
 */
class PreparedSegment implements AllocatedSegment {
  private view: Uint8Array | undefined;

  constructor(
    private readonly mapper: MemoryMapper,
    private readonly ticket: AllocationTicket,
    readonly group: AllocGroup,
    readonly address: number,
    readonly contentSize: number,
    readonly zeroFillSize: number,
    readonly size: number,
    /** Where the working memory lies in this process, when the mapper said (then no view yet). */
    readonly local: number | undefined,
  ) {
    if (local === undefined) this.view = mapper.prepare(address, contentSize);
  }

  get workingMemory(): Uint8Array {
    if (this.view) return this.view;
    // Past its write window (finalized or abandoned) a segment's working memory is what a
    // detached view is: empty, and writes reach nothing.
    this.view = this.ticket.state === 'in-flight' ? this.mapper.prepare(this.address, this.contentSize) : new Uint8Array(0);
    return this.view;
  }

  /** The view, if one was made (RPC copy sends the content from it). */
  get madeView(): Uint8Array | undefined {
    return this.view;
  }
}

/** The segment at the lowest address (the layout's list is in AllocGroup order, not address order). */
function lowestSegment(layout: GraphLayout): GraphLayout['segments'][number] {
  return layout.segments.reduce((a, b) => (b.offset < a.offset ? b : a));
}

function highestSegment(layout: GraphLayout): GraphLayout['segments'][number] {
  return layout.segments.reduce((a, b) => (b.offset > a.offset ? b : a));
}

function sectionOffsets(layout: GraphLayout, graphName: string): (name: string) => number {
  return (name: string) => {
    for (const seg of layout.segments) {
      for (const p of seg.sections) if (p.section.name === name) return seg.offset + p.offset;
    }
    throw new JitmemError(
      'ERR_UNKNOWN_SECTION',
      `graph ${JSON.stringify(graphName)} has no allocated section named ${JSON.stringify(name)}`,
      {
        graph: graphName,
        section: name,
      },
    );
  };
}

/** An allocation whose content is being written; finalize() or abandon() ends it. */
export class InFlightAllocation {
  readonly base: number;
  readonly size: number;
  readonly graph: LinkGraph;
  readonly layout: GraphLayout;
  readonly segments: readonly AllocatedSegment[];
  /**
   * Alloc actions finalize will run: the graph's own, plus any added once addresses are known
   * (as LLVM's link passes add them to a graph between allocation and finalization).
   */
  readonly actions: AllocActionCallPair[];
  private readonly offsetOf: (name: string) => number;

  /** @internal Created by SlabMemoryManager.allocate. */
  constructor(
    readonly manager: SlabMemoryManager,
    /** @internal */ readonly ticket: AllocationTicket,
    graph: LinkGraph,
    layout: GraphLayout,
    base: number,
    segments: AllocatedSegment[],
  ) {
    this.graph = graph;
    this.layout = layout;
    this.base = base;
    this.size = layout.size;
    this.segments = segments;
    this.actions = [...(graph.actions ?? [])];
    this.offsetOf = sectionOffsets(layout, graph.name);
  }

  /** Executor address of a section. */
  sectionAddress(name: string): number {
    return this.base + this.offsetOf(name);
  }

  /** The working memory of one content section (a subarray of its segment's). */
  sectionWorkingMemory(name: string): Uint8Array {
    for (const [i, seg] of this.layout.segments.entries()) {
      for (const p of seg.sections) {
        if (p.section.name === name && p.section.content !== undefined) {
          return this.segments[i]!.workingMemory.subarray(p.offset, p.offset + p.section.size);
        }
      }
    }
    throw new JitmemError(
      'ERR_UNKNOWN_SECTION',
      `graph ${JSON.stringify(this.graph.name)} has no content section named ${JSON.stringify(name)}`,
      {
        section: name,
      },
    );
  }

  /**
   * Copies every content section into working memory, and zeroes the alignment gaps between
   * them, so the segment's content is exactly the graph's image even in a reused range.
   */
  writeContent(): void {
    for (const [i, seg] of this.layout.segments.entries()) {
      const prepared = this.segments[i] as PreparedSegment;
      const view = prepared.madeView;
      if (this.ticket.state !== 'in-flight' || (view !== undefined && view.length < seg.contentSize)) {
        throw new JitmemError(
          'ERR_WORKING_MEMORY_DETACHED',
          `working memory of segment ${i} at ${hex(prepared.address)} is no longer writable (finalized or abandoned)`,
          {
            address: prepared.address,
          },
        );
      }
      const local = prepared.local;
      let cursor = 0;
      for (const p of seg.sections) {
        const content = p.section.content;
        if (content === undefined) continue;
        // The layout was made from the graph as it was at allocate: a section given other
        // content since must still fit its place (a native copy has no view to stop it).
        if (!(content instanceof Uint8Array) || p.offset + content.length > seg.contentSize) {
          throw new JitmemError(
            'ERR_CONTENT_SIZE_MISMATCH',
            `section ${JSON.stringify(p.section.name)} of graph ${JSON.stringify(this.graph.name)} has ${content instanceof Uint8Array ? `${content.length} bytes of content` : 'content that is not a Uint8Array'}; from offset ${p.offset} its segment holds ${seg.contentSize - p.offset}`,
            { section: p.section.name, offset: p.offset, contentSize: seg.contentSize },
          );
        }
        if (local !== undefined) {
          if (p.offset > cursor) native.fill(local + cursor, p.offset - cursor, 0);
          native.copyIn(local + p.offset, content);
        } else {
          if (p.offset > cursor) view!.fill(0, cursor, p.offset);
          view!.set(content, p.offset);
          osCounts.bytesCopied += content.length;
        }
        cursor = p.offset + content.length;
      }
    }
  }

  /** Makes the memory live in the executor: protections, zero-fill, finalize actions. */
  finalize(): Promise<FinalizedAllocation> {
    return this.manager.finalizeAllocation(this);
  }

  /** Gives the range back without finalizing it. */
  abandon(): Promise<void> {
    return this.manager.abandonAllocation(this);
  }
}

/** Memory that is live in the executor until deallocated. */
export class FinalizedAllocation {
  /** Made on the first sectionAddress: many allocations are freed without one. */
  private offsetOf: ((name: string) => number) | undefined;

  /** @internal Created by InFlightAllocation.finalize. */
  constructor(
    readonly manager: SlabMemoryManager,
    /** @internal */ readonly ticket: AllocationTicket,
    readonly graphName: string,
    readonly layout: GraphLayout,
    readonly base: number,
    /** The key initialize returned (the lowest segment address). */
    readonly key: number,
  ) {}

  get size(): number {
    return this.layout.size;
  }

  sectionAddress(name: string): number {
    this.offsetOf ??= sectionOffsets(this.layout, this.graphName);
    return this.base + this.offsetOf(name);
  }
}

// The states each operation accepts (expect), made once rather than per call.
const IN_FLIGHT: readonly State[] = ['in-flight'];
const FINALIZED: readonly State[] = ['finalized'];

export class SlabMemoryManager {
  readonly mapper: MemoryMapper;
  readonly granularity: number;
  readonly policy: FitPolicy;
  private readonly index: FreeRangeIndex;
  /** Where this slab reserves, when it was asked to (see SlabMemoryManagerOptions.placement). */
  readonly placement: ExecutorAddrRange | undefined;
  private readonly live = new Map<number, AllocationTicket>();
  /**
   * Layouts by graph. Graphs are immutable once handed to allocate (their types are readonly),
   * so a JIT that re-allocates the same graph, as the update and churn patterns do, lays it
   * out and validates it once.
   */
  private readonly layouts = new WeakMap<LinkGraph, GraphLayout>();
  /** The same layouts with their segments in the opposite order (see orient). */
  private readonly reversed = new WeakMap<GraphLayout, GraphLayout>();
  /** Live allocations by end address, to find the neighbour below a range. */
  private readonly byEnd = new Map<number, AllocationTicket>();
  private readonly reservations = new Map<number, number>(); // start -> size
  private pendingReserve: Promise<void> | undefined;
  private reservedBytes = 0;
  private peakReserved = 0;
  private liveBytes = 0;
  private peakLive = 0;
  private burnedBytes = 0;
  private closed = false;

  constructor(mapper: MemoryMapper, options: SlabMemoryManagerOptions = {}) {
    this.mapper = mapper;
    this.policy = checkFitPolicy(options.policy ?? 'first-fit');
    const granularity = options.granularity ?? 1024 ** 3;
    checkSize('granularity', granularity, 1);
    if (granularity % mapper.pageSize !== 0) {
      throw new JitmemError(
        'ERR_INVALID_GRANULARITY',
        `the reservation granularity ${granularity} is not a multiple of the page size ${mapper.pageSize}`,
        {
          granularity,
        },
      );
    }
    this.granularity = granularity;
    this.index = new FreeRangeIndex(this.policy);
    this.placement = options.placement;
  }

  async allocate(graph: LinkGraph): Promise<InFlightAllocation> {
    this.checkOpen();
    const standard = this.layoutOf(graph);
    let base = this.index.take(standard.size);
    while (base === undefined) {
      // One reservation at a time: concurrent allocations that miss wait for it and retry.
      if (!this.pendingReserve) {
        this.pendingReserve = this.reserveFor(standard.size).finally(() => (this.pendingReserve = undefined));
      }
      await this.pendingReserve;
      base = this.index.take(standard.size);
    }
    const layout = this.orient(standard, base);
    const ticket: AllocationTicket = {
      state: 'in-flight',
      base,
      size: layout.size,
      firstProt: lowestSegment(layout).group.prot,
      lastProt: highestSegment(layout).group.prot,
    };
    const segments: PreparedSegment[] = [];
    try {
      for (const seg of layout.segments) {
        const address = base + seg.offset;
        // Either prepareLocal recorded the range, or the segment's prepare() does (or throws).
        const local = this.mapper.prepareLocal?.(address, seg.contentSize);
        segments.push(
          new PreparedSegment(
            this.mapper,
            ticket,
            seg.group,
            address,
            seg.contentSize,
            seg.zeroFillSize,
            seg.pageRoundedSize,
            local,
          ),
        );
      }
    } catch (err) {
      await this.mapper.deinitialize(segments.map((s) => s.address)).catch(() => undefined);
      this.index.add(base, layout.size);
      throw err;
    }
    this.live.set(base, ticket);
    this.byEnd.set(base + layout.size, ticket);
    this.liveBytes += layout.size;
    this.peakLive = Math.max(this.peakLive, this.liveBytes);
    return new InFlightAllocation(this, ticket, graph, layout, base, segments);
  }

  /**
   * @internal
   * A promise chain rather than an async function: a sequential finalize waits for every step
   * after the executor's answer, and this is one step less than resuming a suspended function.
   */
  finalizeAllocation(alloc: InFlightAllocation): Promise<FinalizedAllocation> {
    let entry: AllocationTicket;
    let info: AllocInfo;
    try {
      this.checkOpen();
      entry = this.expect(alloc, IN_FLIGHT, 'finalize');
      const layoutSegments = alloc.layout.segments;
      const segments: SegmentInfo[] = [];
      for (let i = 0; i < layoutSegments.length; i++) {
        const seg = layoutSegments[i]!;
        segments.push({
          offset: seg.offset,
          contentSize: seg.contentSize,
          zeroFillSize: seg.zeroFillSize,
          group: seg.group,
          workingMemory: (alloc.segments[i] as PreparedSegment).madeView,
        });
      }
      info = { mappingBase: alloc.base, segments, actions: alloc.actions };
    } catch (err) {
      return Promise.reject(err);
    }
    entry.state = 'finalizing';
    // The executor may hold part of the region after a failure: the range is never handed out again.
    const failed = (err: unknown): never => {
      this.burn(alloc.base, entry);
      throw err;
    };
    let pending: Promise<number>;
    try {
      pending = this.mapper.initialize(info);
    } catch (err) {
      return Promise.reject(err).catch(failed);
    }
    return pending.then((key) => {
      entry.state = 'finalized';
      return new FinalizedAllocation(this, entry, alloc.graph.name, alloc.layout, alloc.base, key);
    }, failed);
  }

  /** @internal */
  async abandonAllocation(alloc: InFlightAllocation): Promise<void> {
    this.checkOpen();
    const entry = this.expect(alloc, IN_FLIGHT, 'abandon');
    entry.state = 'deallocating';
    try {
      await this.mapper.deinitialize(alloc.segments.map((s) => s.address));
    } catch (err) {
      this.burn(alloc.base, entry);
      throw err;
    }
    this.free(alloc.base, entry);
  }

  /**
   * Deinitializes the allocations (dealloc actions run, pages go back to RW) and returns their
   * ranges to the free index, where they coalesce with their neighbours.
   */
  async deallocate(allocs: readonly FinalizedAllocation[]): Promise<void> {
    this.checkOpen();
    if (!Array.isArray(allocs)) {
      throw new JitmemError('ERR_INVALID_ARGUMENT', 'deallocate takes an array of finalized allocations', {});
    }
    const seen = new Set<number>();
    const entries = allocs.map((a, i) => {
      if (!(a instanceof FinalizedAllocation)) {
        throw new JitmemError('ERR_NOT_AN_ALLOCATION', `deallocate: element ${i} is not a FinalizedAllocation`, {
          index: i,
        });
      }
      if (seen.has(a.base)) {
        throw new JitmemError('ERR_DOUBLE_FREE', `deallocate: the allocation at ${hex(a.base)} is listed twice`, {
          base: a.base,
        });
      }
      seen.add(a.base);
      return this.expect(a, FINALIZED, 'deallocate');
    });
    for (const e of entries) e.state = 'deallocating';
    try {
      await this.mapper.deinitialize(allocs.map((a) => a.key));
    } catch (err) {
      allocs.forEach((a, i) => this.burn(a.base, entries[i]!));
      throw err;
    }
    allocs.forEach((a, i) => this.free(a.base, entries[i]!));
  }

  stats(): SlabStats {
    const freeBytes = this.index.totalFree;
    const largest = this.index.largest;
    return {
      policy: this.policy,
      granularity: this.granularity,
      reservations: this.reservations.size,
      reservedBytes: this.reservedBytes,
      peakReservedBytes: this.peakReserved,
      liveAllocations: this.live.size,
      liveBytes: this.liveBytes,
      peakLiveBytes: this.peakLive,
      freeRanges: this.index.count,
      freeBytes,
      largestFreeRange: largest,
      fragmentation: freeBytes === 0 ? 0 : 1 - largest / freeBytes,
      merges: this.index.merges,
      burnedBytes: this.burnedBytes,
    };
  }

  /** The free ranges in address order (O(n)). */
  freeRanges(): Array<{ start: number; end: number }> {
    return this.index.ranges();
  }

  /** The reservations taken from the mapper, in address order. */
  reservationRanges(): Array<{ start: number; end: number }> {
    return [...this.reservations].sort(([a], [b]) => a - b).map(([start, size]) => ({ start, end: start + size }));
  }

  /** Gives every reservation back to the mapper; whatever is still live goes with it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const bases = [...this.reservations.keys()];
    this.reservations.clear();
    this.live.clear();
    this.byEnd.clear();
    if (bases.length > 0) await this.mapper.release(bases);
  }

  private layoutOf(graph: LinkGraph): GraphLayout {
    let layout = typeof graph === 'object' && graph !== null ? this.layouts.get(graph) : undefined;
    if (!layout) {
      layout = layoutGraph(graph, this.mapper.pageSize);
      this.layouts.set(graph, layout);
    }
    return layout;
  }

  private async reserveFor(size: number): Promise<void> {
    const bytes = alignUp(size, this.granularity);
    const placed =
      this.placement && this.mapper.reserveWithin ? await this.mapper.reserveWithin(bytes, this.placement) : null;
    const range = placed ?? (await this.mapper.reserve(bytes));
    if (range.end - range.start !== bytes) {
      throw new JitmemError(
        'ERR_MAPPER_CONTRACT',
        `the mapper reserved ${range.end - range.start} bytes when asked for ${bytes}`,
        { bytes },
      );
    }
    this.reservations.set(range.start, bytes);
    this.reservedBytes += bytes;
    this.peakReserved = Math.max(this.peakReserved, this.reservedBytes);
    this.index.addBarrier(range.start);
    this.index.addBarrier(range.end);
    this.index.add(range.start, bytes);
  }

  private expect(
    alloc: InFlightAllocation | FinalizedAllocation,
    states: readonly State[],
    op: string,
  ): AllocationTicket {
    const entry = alloc.ticket;
    if (alloc.manager !== this || this.live.get(entry.base) !== entry) {
      if (alloc.manager === this && entry.state === 'gone') {
        throw new JitmemError('ERR_ALREADY_FREED', `${op}: the allocation at ${hex(entry.base)} was already freed`, {
          base: entry.base,
        });
      }
      throw new JitmemError(
        'ERR_UNKNOWN_ALLOCATION',
        `${op}: ${hex(entry.base)} is not a live allocation of this memory manager`,
        {
          base: entry.base,
        },
      );
    }
    const base = entry.base;
    if (!states.includes(entry.state)) {
      const code =
        entry.state === 'finalized' || entry.state === 'finalizing' ? 'ERR_ALREADY_FINALIZED' : 'ERR_INVALID_STATE';
      throw new JitmemError(
        code,
        `${op}: the allocation at ${hex(base)} is ${entry.state}; ${op} needs it ${states.join(' or ')}`,
        {
          base,
          state: entry.state,
        },
      );
    }
    return entry;
  }

  /**
   * The layout an allocation at `base` gets: the graph's own (BasicLayout, ascending AllocGroup
   * id) or its reverse, whichever meets more of its live neighbours with an equal protection.
   * Allocations packed side by side then alternate (R RW RX | RX RW R | R RW RX ...), so the
   * code of two neighbours, or their read-only data, forms one run of pages: a mapper that
   * protects by run changes both with one call when they are finalized together, and puts
   * them back with one.
   */
  private orient(layout: GraphLayout, base: number): GraphLayout {
    const segs = layout.segments;
    if (segs.length < 2) return layout;
    const below = this.byEnd.get(base);
    const above = this.live.get(base + layout.size);
    // The graph's own layout is in ascending address order.
    const first = segs[0]!.group.prot;
    const last = segs[segs.length - 1]!.group.prot;
    const standard = Number(below?.lastProt === first) + Number(above?.firstProt === last);
    const reverse = Number(below?.lastProt === last) + Number(above?.firstProt === first);
    if (reverse <= standard) return layout;
    let r = this.reversed.get(layout);
    if (!r) this.reversed.set(layout, (r = reverseLayout(layout)));
    return r;
  }

  private free(base: number, entry: AllocationTicket): void {
    entry.state = 'gone';
    this.forgetNeighbour(entry);
    this.live.delete(base);
    this.liveBytes -= entry.size;
    this.index.add(base, entry.size);
  }

  private burn(base: number, entry: AllocationTicket): void {
    entry.state = 'gone';
    this.forgetNeighbour(entry);
    this.live.delete(base);
    this.liveBytes -= entry.size;
    this.burnedBytes += entry.size;
  }

  private forgetNeighbour(entry: AllocationTicket): void {
    if (this.byEnd.get(entry.base + entry.size) === entry) this.byEnd.delete(entry.base + entry.size);
  }

  private checkOpen(): void {
    if (this.closed) throw new JitmemError('ERR_MANAGER_CLOSED', 'this SlabMemoryManager is closed', {});
  }
}
