import { JitmemError } from '../../core/errors.js';

/**
 * A small seeded pseudo-random generator (SplitMix32: a 32-bit Weyl sequence through a
 * mixing function). Patterns use it instead of Math.random so that a seed names one exact
 * sequence of steps, on every machine and every run.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new JitmemError('ERR_INVALID_SEED', `a seed must be a safe integer; got ${String(seed)}`, { seed });
    }
    // Fold the high bits in so that seeds differing only above bit 31 differ here too.
    this.state = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
  }

  /** The next 32-bit unsigned value. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A uniform integer in [0, bound) for 1 <= bound <= 2^32. */
  below(bound: number): number {
    // Multiply-shift instead of modulo: no bias worth measuring at these bounds, and no division.
    return Math.floor((this.nextUint32() / 2 ** 32) * bound);
  }

  /** True with probability 1/2. */
  coin(): boolean {
    return (this.nextUint32() & 1) === 1;
  }

  /** Fills `bytes` with pseudo-random data, four bytes per step. */
  fill(bytes: Uint8Array): void {
    const whole = bytes.length >>> 2;
    const words = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    for (let i = 0; i < whole; i++) words.setUint32(i * 4, this.nextUint32(), true);
    for (let i = whole * 4; i < bytes.length; i++) bytes[i] = this.nextUint32() & 0xff;
  }
}
