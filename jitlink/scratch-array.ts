/**
 * A typed array that the passes reuse for one object's temporary at a time (a symbol table's word
 * copy, the scan's per-symbol flags), shared by every object of every link: an array of its own
 * per object would be an allocation, a page-faulted block and an entry for V8's array-buffer
 * sweeping each (354 for CPython), in a process's first link. A request above the cap gets an
 * array of its own, so that no link keeps a huge one alive.
 */
export class ScratchArray<A extends Uint8Array | Uint32Array> {
  private array: A;

  constructor(
    private readonly make: (length: number) => A,
    private readonly cap: number,
  ) {
    this.array = make(0);
  }

  /**
   * An array of at least `length` elements, valid until the next call: the shared one (what an
   * earlier user left in it) within the cap, a fresh zeroed one above it.
   */
  take(length: number): A {
    if (length <= this.array.length) return this.array;
    if (length > this.cap) return this.make(length);
    this.array = this.make(Math.min(this.cap, Math.max(length, 2 * this.array.length, 4096)));
    return this.array;
  }
}
