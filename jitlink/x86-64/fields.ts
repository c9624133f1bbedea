import { JitmemError, hex } from '../../core/errors.js';

/**
 * The fields a relocation writes, each with its range check in one place: the value must fit
 * the field's width and signedness, and the field must lie inside the section it patches.
 * The callers name the relocation for messages through a FieldSite.
 */

/** Signed 8/16/32 bits; 8-and-16-bit absolute fields take either signedness, as GNU ld does. */
export const FIELD_S32 = 1;
export const FIELD_U32 = 2;
export const FIELD_64 = 3;
export const FIELD_16 = 4;
export const FIELD_S16 = 5;
export const FIELD_8 = 6;
export const FIELD_S8 = 7;

const WIDTH = [0, 4, 4, 8, 2, 2, 1, 1];
const TWO_32 = 2 ** 32;
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** Where a field is, for messages when it does not fit. */
export interface FieldSite {
  /** Bytes of the section the field lies in. */
  readonly sectionSize: number;
  /** Offset of the field in its section. */
  readonly offset: number;
  /** "does not fit" error for `value` in a field described as `what`. */
  overflow(value: number, what: string): JitmemError;
  /** "past the end of the section" error for a field of `width` bytes. */
  outside(width: number): JitmemError;
}

export function fieldWidth(field: number): number {
  return WIDTH[field]!;
}

/** Writes a 64-bit little-endian value (a JS number: any safe integer, negative ones as two's complement). */
export function write64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32) >>> 0, true);
}

/** Checks `value` against `field` and writes it at `at` of `view`, or throws the site's error. */
export function writeField(view: DataView, at: number, field: number, value: number, site: FieldSite): void {
  if (site.offset + WIDTH[field]! > site.sectionSize) throw site.outside(WIDTH[field]!);
  switch (field) {
    case FIELD_S32:
      if (value < I32_MIN || value > I32_MAX) throw site.overflow(value, 'a signed 32-bit field');
      view.setInt32(at, value, true);
      return;
    case FIELD_U32:
      if (value < 0 || value >= TWO_32) throw site.overflow(value, 'an unsigned 32-bit field');
      view.setUint32(at, value, true);
      return;
    case FIELD_64:
      write64(view, at, value);
      return;
    case FIELD_16:
      if (value < -0x8000 || value > 0xffff) throw site.overflow(value, 'a 16-bit field');
      view.setUint16(at, value & 0xffff, true);
      return;
    case FIELD_S16:
      if (value < -0x8000 || value > 0x7fff) throw site.overflow(value, 'a signed 16-bit field');
      view.setInt16(at, value, true);
      return;
    case FIELD_8:
      if (value < -0x80 || value > 0xff) throw site.overflow(value, 'an 8-bit field');
      view.setUint8(at, value & 0xff);
      return;
    default:
      if (value < -0x80 || value > 0x7f) throw site.overflow(value, 'a signed 8-bit field');
      view.setInt8(at, value);
  }
}

/** Hex of a possibly negative value, for messages. */
export function signedHex(value: number): string {
  return value < 0 ? '-' + hex(-value) : hex(value);
}
