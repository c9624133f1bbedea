import { ForwardingMapper } from '../../mappers/forwarding-mapper.js';
import type { AllocInfo } from '../../mappers/memory-mapper.js';

/**
 * Flips one byte, the middle one, of the first segment with content of the next allocation
 * initialized, in its working memory after the write and before initialize: the executor then
 * holds a byte that was not written. `flipped` is its target address; clear it to flip again.
 */
export class CorruptingMapper extends ForwardingMapper {
  flipped: number | undefined;

  override initialize(info: AllocInfo) {
    const seg = info.segments.find((s) => s.contentSize > 0);
    if (this.flipped === undefined && seg) {
      // Content written without a view (prepareLocal) has none in the info: a view of it is asked for.
      const memory = seg.workingMemory ?? this.inner.prepare(info.mappingBase + seg.offset, seg.contentSize);
      memory[seg.contentSize >> 1]! ^= 0x40;
      this.flipped = info.mappingBase + seg.offset + (seg.contentSize >> 1);
    }
    return this.inner.initialize(info);
  }
}
