import { JitmemError, hex } from './errors.js';

/**
 * Argument checks shared by every layer. Each throws a JitmemError whose message names the
 * parameter, the value received and what was expected.
 */

function describe(value: unknown): string {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? `${value} (${hex(value)})` : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  return typeof value;
}

/** A size in bytes: a non-negative safe integer (zero allowed unless `min` says otherwise). */
export function checkSize(name: string, value: unknown, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new JitmemError(
      'ERR_INVALID_SIZE',
      `${name} must be an integer ${min > 0 ? `>= ${min}` : '>= 0'} no larger than Number.MAX_SAFE_INTEGER; got ${describe(value)}`,
      { name, value },
    );
  }
  return value;
}

/** An executor address: a non-negative safe integer (user-space addresses are below 2^48). */
export function checkAddress(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new JitmemError(
      'ERR_INVALID_ADDRESS',
      `${name} must be a non-negative safe integer address; got ${describe(value)}`,
      { name, value },
    );
  }
  return value;
}

/** A power-of-two alignment. */
export function checkAlignment(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || (value & (value - 1)) !== 0 || value > 2 ** 30) {
    throw new JitmemError('ERR_INVALID_ALIGNMENT', `${name} must be a power of two between 1 and 2^30; got ${describe(value)}`, {
      name,
      value,
    });
  }
  return value;
}

/** A protection mask: R=1, W=2, X=4. */
export function checkProtection(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 7) {
    throw new JitmemError('ERR_INVALID_PROTECTION', `${name} must be a mask of R=1, W=2, X=4 (0..7); got ${describe(value)}`, {
      name,
      value,
    });
  }
  return value;
}

/** Rounds `value` up to a multiple of the power of two `alignment`, staying exact past 2^32. */
export function alignUp(value: number, alignment: number): number {
  const rem = value % alignment;
  return rem === 0 ? value : value + (alignment - rem);
}

/** Rounds `value` down to a multiple of `alignment`. */
export function alignDown(value: number, alignment: number): number {
  return value - (value % alignment);
}
