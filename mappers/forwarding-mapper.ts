import type { AllocInfo, CodePatch, ExecutorAddrRange, MemoryMapper, PatchOptions } from './memory-mapper.js';

/**
 * A MemoryMapper that hands every call to an inner mapper unchanged: the base of wrappers that
 * add something around one or two calls (timing, extra work, counting) and must pass the rest
 * through. The optional calls (reserveWithin, prepareLocal, patchCode) exist on the wrapper only when the
 * inner mapper has them, so a caller that tests for them sees what the inner mapper can do; a
 * wrapper replaces one by assigning it in its constructor.
 */
export class ForwardingMapper implements MemoryMapper {
  reserveWithin?: (bytes: number, window: ExecutorAddrRange) => Promise<ExecutorAddrRange | null>;
  prepareLocal?: (addr: number, size: number) => number | undefined;
  patchCode?: (patches: readonly CodePatch[], options?: PatchOptions) => Promise<void>;

  constructor(readonly inner: MemoryMapper) {
    if (inner.reserveWithin) this.reserveWithin = (bytes, window) => inner.reserveWithin!(bytes, window);
    if (inner.prepareLocal) this.prepareLocal = (addr, size) => inner.prepareLocal!(addr, size);
    if (inner.patchCode) this.patchCode = (patches, options) => inner.patchCode!(patches, options);
  }

  get pageSize(): number {
    return this.inner.pageSize;
  }

  reserve(bytes: number): Promise<ExecutorAddrRange> {
    return this.inner.reserve(bytes);
  }

  prepare(addr: number, size: number): Uint8Array {
    return this.inner.prepare(addr, size);
  }

  initialize(info: AllocInfo): Promise<number> {
    return this.inner.initialize(info);
  }

  deinitialize(keys: readonly number[]): Promise<void> {
    return this.inner.deinitialize(keys);
  }

  release(bases: readonly number[]): Promise<void> {
    return this.inner.release(bases);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
