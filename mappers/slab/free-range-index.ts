import { JitmemError, hex } from '../../core/errors.js';

/**
 * The free ranges of the slab allocator, kept coalesced, with both fit policies in O(log n).
 *
 * Each free range is one node that sits in two treaps at once:
 * - the address treap, ordered by start, finds a freed range's neighbours for coalescing; in a
 *   first-fit index it is also augmented with the largest length in each subtree, which
 *   answers first-fit (the lowest address whose range is long enough);
 * - the size treap, ordered by (length, start), answers best-fit (the shortest range that is
 *   long enough, lowest address on ties). A first-fit index does not keep it: it would never
 *   be read, and keeping it is half the work of every allocate and free.
 * LLVM's MapperJITLinkMemoryManager scans its free list linearly; this index does not.
 *
 * Nodes live in typed arrays (struct of arrays) so that the hot path allocates nothing and
 * the garbage collector never sees individual ranges.
 */

export type FitPolicy = 'first-fit' | 'best-fit';
export const FIT_POLICIES: readonly FitPolicy[] = ['first-fit', 'best-fit'];

export interface FreeRange {
  readonly start: number;
  readonly end: number;
}

const NIL = 0;
const ADDRESS = 0;
const SIZE = 1;

export function checkFitPolicy(policy: unknown): FitPolicy {
  if (policy !== 'first-fit' && policy !== 'best-fit') {
    throw new JitmemError(
      'ERR_INVALID_POLICY',
      `the fit policy must be "first-fit" or "best-fit"; got ${JSON.stringify(policy)}`,
      { policy },
    );
  }
  return policy;
}

export class FreeRangeIndex {
  readonly policy: FitPolicy;
  /** Whether the size treap is kept (best-fit only). */
  private readonly bySize: boolean;
  /** Whether subtree maxima are kept in the address treap (first-fit only). */
  private readonly byMax: boolean;
  // Node fields. Index 0 is the NIL sentinel (length 0, so it never fits anything).
  private start = new Float64Array(64);
  private len = new Float64Array(64);
  private maxLen = new Float64Array(64); // address treap augmentation
  private prio = new Uint32Array(64);
  // Children: node*4 + tree*2 + side (side 0 left, 1 right).
  private kids = new Int32Array(64 * 4);
  private roots = [NIL, NIL];
  private freeNodes: number[] = [];
  private nextNode = 1;
  private seed = 0x9e3779b9;
  private readonly barriers = new Set<number>();
  /**
   * The nodes the last descent passed through, root first. A range whose length changed in
   * place has its subtree maxima refreshed along this path, bottom up, instead of by another
   * descent from the root.
   */
  private path = new Int32Array(64);
  private pathLength = 0;

  private rangeCount = 0;
  private freeBytes = 0;
  private mergeCount = 0;

  constructor(policy: FitPolicy = 'first-fit') {
    this.policy = checkFitPolicy(policy);
    this.bySize = this.policy === 'best-fit';
    this.byMax = !this.bySize;
  }

  /** Number of free ranges. */
  get count(): number {
    return this.rangeCount;
  }

  /** Sum of the lengths of all free ranges. */
  get totalFree(): number {
    return this.freeBytes;
  }

  /** Length of the longest free range (0 when there is none). */
  get largest(): number {
    if (this.byMax) return this.maxLen[this.roots[ADDRESS]!]!;
    // The last node of the size treap, O(log n): statistics ask for it, the hot path does not.
    let x = this.roots[SIZE]!;
    while (this.kids[x * 4 + 3] !== NIL) x = this.kids[x * 4 + 3]!;
    return this.len[x]!;
  }

  /** How many times a freed range merged with a neighbour. */
  get merges(): number {
    return this.mergeCount;
  }

  /**
   * Declares an address that ranges never coalesce across: the start of a reservation. Two
   * reservations that happen to be adjacent stay apart, so that an allocation never spans two
   * of them (their working-memory mappings need not be adjacent) and each can be released.
   */
  addBarrier(address: number): void {
    this.barriers.add(address);
  }

  /**
   * Returns [start, start+length) to the index, merging it with free neighbours on both sides.
   * A range that overlaps one already free is refused (a double free or a bookkeeping bug).
   */
  add(start: number, length: number): void {
    if (!(length > 0)) return;
    const end = start + length;
    // One descent finds both neighbours: the last range starting below `start` and the first
    // starting at or above it.
    let pred = NIL;
    let succ = NIL;
    let predDepth = -1;
    let succDepth = -1;
    let x = this.roots[ADDRESS]!;
    const kids = this.kids;
    this.pathLength = 0;
    while (x !== NIL) {
      const depth = this.pushPath(x);
      if (this.start[x]! < start) {
        pred = x;
        predDepth = depth;
        x = kids[x * 4 + 1]!;
      } else {
        succ = x;
        succDepth = depth;
        x = kids[x * 4]!;
      }
    }
    if ((pred !== NIL && this.start[pred]! + this.len[pred]! > start) || (succ !== NIL && this.start[succ]! < end)) {
      const other = pred !== NIL && this.start[pred]! + this.len[pred]! > start ? pred : succ;
      throw new JitmemError(
        'ERR_DOUBLE_FREE',
        `range [${hex(start)}, ${hex(end)}) overlaps the free range [${hex(this.start[other]!)}, ${hex(this.start[other]! + this.len[other]!)}); it was freed twice or never allocated`,
        { start, end },
      );
    }
    const mergeLeft = pred !== NIL && this.start[pred]! + this.len[pred]! === start && !this.barriers.has(start);
    const mergeRight = succ !== NIL && this.start[succ]! === end && !this.barriers.has(end);
    this.freeBytes += length;
    if (mergeLeft && mergeRight) {
      this.mergeCount += 2;
      this.detachSize(pred);
      this.detachSize(succ);
      this.roots[ADDRESS] = this.removeNode(ADDRESS, this.roots[ADDRESS]!, succ);
      this.len[pred] = this.len[pred]! + length + this.len[succ]!;
      this.releaseNode(succ);
      this.rangeCount--;
      this.refreshPath(pred);
      this.attachSize(pred);
    } else if (mergeLeft) {
      this.mergeCount++;
      this.detachSize(pred);
      this.len[pred] = this.len[pred]! + length;
      this.pullPath(predDepth);
      this.attachSize(pred);
    } else if (mergeRight) {
      this.mergeCount++;
      this.detachSize(succ);
      // Moving succ's start down to `start` keeps its place in address order: pred ends at or
      // before `start`.
      this.start[succ] = start;
      this.len[succ] = this.len[succ]! + length;
      this.pullPath(succDepth);
      this.attachSize(succ);
    } else {
      const n = this.newNode(start, length);
      this.roots[ADDRESS] = this.insertNode(ADDRESS, this.roots[ADDRESS]!, n);
      this.attachSize(n);
      this.rangeCount++;
    }
  }

  /**
   * Takes `length` bytes from the free range that the policy picks, from its low end, and
   * returns their start; undefined when no range is long enough.
   */
  take(length: number): number | undefined {
    if (!(length > 0)) return undefined;
    const x = this.bySize ? this.findBestFit(length) : this.findFirstFit(length);
    if (x === NIL) return undefined;
    const start = this.start[x]!;
    this.freeBytes -= length;
    this.detachSize(x);
    if (this.len[x] === length) {
      this.roots[ADDRESS] = this.removeNode(ADDRESS, this.roots[ADDRESS]!, x);
      this.releaseNode(x);
      this.rangeCount--;
    } else {
      // The remainder keeps the node's place in address order (its start only moves up).
      this.start[x] = start + length;
      this.len[x] = this.len[x]! - length;
      // First-fit's descent ended at x: the recorded path leads to it. (Best-fit keeps no
      // maxima, so there is nothing to refresh.)
      this.pullPath(this.pathLength - 1);
      this.attachSize(x);
    }
    return start;
  }

  /** All free ranges in address order. O(n): for tests, statistics and reports. */
  ranges(): FreeRange[] {
    const out: FreeRange[] = [];
    const stack: number[] = [];
    let x = this.roots[ADDRESS]!;
    while (x !== NIL || stack.length > 0) {
      while (x !== NIL) {
        stack.push(x);
        x = this.kids[x * 4]!;
      }
      x = stack.pop()!;
      out.push({ start: this.start[x]!, end: this.start[x]! + this.len[x]! });
      x = this.kids[x * 4 + 1]!;
    }
    return out;
  }

  // ---- searches -------------------------------------------------------------------------

  /** Lowest-addressed range with len >= length, guided by the subtree maxima. */
  private findFirstFit(length: number): number {
    let x = this.roots[ADDRESS]!;
    this.pathLength = 0;
    if (this.maxLen[x]! < length) return NIL;
    const kids = this.kids;
    for (;;) {
      this.pushPath(x);
      const l = kids[x * 4]!;
      if (this.maxLen[l]! >= length) x = l;
      else if (this.len[x]! >= length) return x;
      else x = kids[x * 4 + 1]!;
    }
  }

  /** Smallest (len, start) with len >= length. */
  private findBestFit(length: number): number {
    let best = NIL;
    let x = this.roots[SIZE]!;
    const kids = this.kids;
    while (x !== NIL) {
      if (this.len[x]! >= length) {
        best = x;
        x = kids[x * 4 + 2]!;
      } else {
        x = kids[x * 4 + 3]!;
      }
    }
    return best;
  }

  // ---- treap mechanics, shared by both trees ----------------------------------------------

  private less(tree: number, a: number, b: number): boolean {
    if (tree === SIZE && this.len[a] !== this.len[b]) return this.len[a]! < this.len[b]!;
    return this.start[a]! < this.start[b]!;
  }

  private pull(tree: number, x: number): void {
    if (tree !== ADDRESS || !this.byMax) return;
    const base = x * 4;
    const l = this.maxLen[this.kids[base]!]!;
    const r = this.maxLen[this.kids[base + 1]!]!;
    const own = this.len[x]!;
    this.maxLen[x] = own > l ? (own > r ? own : r) : l > r ? l : r;
  }

  private insertNode(tree: number, root: number, n: number): number {
    if (root === NIL) return n;
    const kids = this.kids;
    const side = this.less(tree, n, root) ? 0 : 1;
    const slot = root * 4 + tree * 2 + side;
    const child = this.insertNode(tree, kids[slot]!, n);
    kids[slot] = child;
    if (this.prio[child]! > this.prio[root]!) {
      // Rotate the child above root.
      const inner = child * 4 + tree * 2 + (1 - side);
      kids[slot] = kids[inner]!;
      kids[inner] = root;
      this.pull(tree, root);
      this.pull(tree, child);
      return child;
    }
    this.pull(tree, root);
    return root;
  }

  private removeNode(tree: number, root: number, n: number): number {
    if (root === NIL) throw new Error('FreeRangeIndex: node to remove is not in the tree (index corrupted)');
    const kids = this.kids;
    if (root === n) {
      return this.mergeTrees(tree, kids[n * 4 + tree * 2]!, kids[n * 4 + tree * 2 + 1]!);
    }
    const slot = root * 4 + tree * 2 + (this.less(tree, n, root) ? 0 : 1);
    kids[slot] = this.removeNode(tree, kids[slot]!, n);
    this.pull(tree, root);
    return root;
  }

  /** Joins two treaps where every key of `a` is below every key of `b`. */
  private mergeTrees(tree: number, a: number, b: number): number {
    if (a === NIL) return b;
    if (b === NIL) return a;
    const kids = this.kids;
    if (this.prio[a]! > this.prio[b]!) {
      const slot = a * 4 + tree * 2 + 1;
      kids[slot] = this.mergeTrees(tree, kids[slot]!, b);
      this.pull(tree, a);
      return a;
    }
    const slot = b * 4 + tree * 2;
    kids[slot] = this.mergeTrees(tree, a, kids[slot]!);
    this.pull(tree, b);
    return b;
  }

  /** Appends a node to the recorded path and returns its depth. */
  private pushPath(x: number): number {
    if (this.pathLength === this.path.length) {
      const longer = new Int32Array(this.path.length * 2);
      longer.set(this.path);
      this.path = longer;
    }
    this.path[this.pathLength] = x;
    return this.pathLength++;
  }

  /** Recomputes subtree maxima of the recorded path from `depth` up to the root. */
  private pullPath(depth: number): void {
    if (!this.byMax) return;
    for (let i = depth; i >= 0; i--) this.pull(ADDRESS, this.path[i]!);
  }

  /** Recomputes subtree maxima from the root down to x after x's length changed in place. */
  private refreshPath(x: number): void {
    if (this.byMax) this.refreshFrom(this.roots[ADDRESS]!, x);
  }

  private refreshFrom(root: number, x: number): void {
    if (root !== x) this.refreshFrom(this.kids[root * 4 + (this.start[x]! < this.start[root]! ? 0 : 1)]!, x);
    this.pull(ADDRESS, root);
  }

  private detachSize(x: number): void {
    if (!this.bySize) return;
    this.roots[SIZE] = this.removeNode(SIZE, this.roots[SIZE]!, x);
    const k = x * 4 + 2;
    this.kids[k] = NIL;
    this.kids[k + 1] = NIL;
  }

  private attachSize(x: number): void {
    if (!this.bySize) return;
    this.roots[SIZE] = this.insertNode(SIZE, this.roots[SIZE]!, x);
  }

  private newNode(start: number, length: number): number {
    let n = this.freeNodes.pop();
    if (n === undefined) {
      n = this.nextNode++;
      if (n >= this.start.length) this.grow();
    }
    this.start[n] = start;
    this.len[n] = length;
    this.maxLen[n] = length;
    // xorshift32: deterministic priorities make runs (and benchmarks) repeatable.
    let s = this.seed;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.seed = s >>> 0;
    this.prio[n] = this.seed;
    this.kids.fill(NIL, n * 4, n * 4 + 4);
    return n;
  }

  private releaseNode(n: number): void {
    this.len[n] = 0;
    this.maxLen[n] = 0;
    this.kids.fill(NIL, n * 4, n * 4 + 4);
    this.freeNodes.push(n);
  }

  private grow(): void {
    const cap = this.start.length * 2;
    const growF = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    this.start = growF(this.start);
    this.len = growF(this.len);
    this.maxLen = growF(this.maxLen);
    const p = new Uint32Array(cap);
    p.set(this.prio);
    this.prio = p;
    const k = new Int32Array(cap * 4);
    k.set(this.kids);
    this.kids = k;
  }
}
