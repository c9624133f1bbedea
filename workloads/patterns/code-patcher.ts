import { alignDown, alignUp, checkAddress } from '../../core/checks.js';
import { JitmemError, hex } from '../../core/errors.js';
import * as native from '../../native/index.js';

/**
 * Changing code that is already finalized and executable, in place: no new allocation, the
 * same addresses. Each transport does it its own way, which is what the `patch` pattern
 * measures:
 * - in-process: make the pages writable, write, make them executable again, flush the
 *   instruction cache (below);
 * - RPC copy: send the bytes; the executor flips the protections, writes and flushes;
 * - shared memory: write through the controller's own (always writable) view of the pages and
 *   only ask the executor to flush its instruction cache.
 *
 * The interface sits here for now; it belongs beside MemoryMapper (mappers/memory-mapper.ts),
 * as a capability each mapper implements, since workloads/ may not be imported by mappers/.
 * Structural typing lets a mapper implement it today without importing this file.
 */
export interface CodePatcher {
  /**
   * Overwrites [address, address + bytes.length) of finalized executable memory in the
   * executor with `bytes`. When it resolves, the new instructions are what runs there: the
   * pages have their protection back and the instruction cache is coherent.
   */
  patchCode(address: number, bytes: Uint8Array): Promise<void>;
}

/**
 * The in-process way: W^X flips around a memcpy, for code in this process's memory (the
 * in-process mapper's). The pages are assumed to be R-X, as every finalized code segment is.
 */
export class InProcessCodePatcher implements CodePatcher {
  private readonly pageSize = native.pageSize();

  async patchCode(address: number, bytes: Uint8Array): Promise<void> {
    checkAddress('address', address);
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
      throw new JitmemError('ERR_INVALID_PATCH', `patchCode at ${hex(address)} needs at least one byte to write`, { address });
    }
    const start = alignDown(address, this.pageSize);
    const length = alignUp(address + bytes.length, this.pageSize) - start;
    native.protect(start, length, native.PROT_RW);
    try {
      native.copyIn(address, bytes);
    } finally {
      native.protect(start, length, native.PROT_RX);
    }
    native.flushICache(address, bytes.length);
  }
}
