import { JitmemError, hex } from '../core/errors.js';
import { SHN_ABS, SHN_UNDEF } from '../objects/elf-constants.js';
import type { InputObject } from './input-object.js';
import { SECTION_DISCARDED } from './input-object.js';
import { isRelaxable, type RelocationList } from './relocation-list.js';
import { SYM_COMMON, SYM_DEFINED, type GlobalSymbol } from './symbol-table.js';
import {
  R_X86_64_16,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_64,
  R_X86_64_8,
  R_X86_64_GOT32,
  R_X86_64_GOT64,
  R_X86_64_GOTOFF64,
  R_X86_64_GOTPC32,
  R_X86_64_GOTPC64,
  R_X86_64_GOTPCREL,
  R_X86_64_GOTPCREL64,
  R_X86_64_GOTPCRELX,
  R_X86_64_GOTPLT64,
  R_X86_64_NONE,
  R_X86_64_PC16,
  R_X86_64_PC32,
  R_X86_64_PC64,
  R_X86_64_PC8,
  R_X86_64_PLT32,
  R_X86_64_PLTOFF64,
  R_X86_64_REX_GOTPCRELX,
  R_X86_64_SIZE32,
  R_X86_64_SIZE64,
  relocationName,
} from './x86-64-relocations.js';

/**
 * Applies relocations into working memory: straight DataView reads of the relocation entries
 * (no objects per entry) and DataView writes of each value, each checked against its field.
 * Everything that can be refused without addresses was refused by the scan pass.
 */

export interface FixupContext {
  /** Every relocation entry, six words each (see RelocationList.first). */
  readonly words: Uint32Array;
  /** One view per segment of working memory. */
  readonly views: readonly DataView[];
  readonly segmentOffsets: readonly number[];
  /** Segment of each graph section, by serial; -1 for empty ones. */
  readonly sectionSegment: Int32Array;
  /** Offset of each graph section from the allocation base. */
  readonly sectionOffset: Float64Array;
  readonly gotAddress: number;
  readonly stubAddress: number;
  readonly base: number;
}

const TWO_32 = 2 ** 32;
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

function write64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value >>> 0, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32) >>> 0, true);
}

function symbolSize(object: InputObject, sym: number, g: GlobalSymbol | undefined): number | undefined {
  if (g === undefined) return object.symbolSize[sym];
  if (g.state === SYM_DEFINED) return g.object!.symbolSize[g.index];
  if (g.state === SYM_COMMON) return g.commonSize;
  return undefined;
}

export function applyRelocations(lists: readonly RelocationList[], ctx: FixupContext): void {
  for (const list of lists) applyList(list, ctx);
}

function applyList(list: RelocationList, ctx: FixupContext): void {
  const object = list.object;
  const words = ctx.words;
  const target = list.target;
  const place = object.placeSection[target]!;
  const si = ctx.sectionSegment[place]!;
  const view = ctx.views[si]!;
  const at0 = ctx.sectionOffset[place]! - ctx.segmentOffsets[si]! + object.placeOffset[target]!;
  const p0 = object.sectionAddress[target]!;
  const addresses = object.symbolAddress;
  const first = object.firstGlobal;
  const globals = object.globals;
  const size = list.targetSize;
  const gotAddress = ctx.gotAddress;
  const inEhFrame = list.inEhFrame;

  for (let i = 0, k = list.first * 6; i < list.count; i++, k += 6) {
    // The scan checked the offset's high word (0) and the symbol index.
    const offset = words[k]!;
    const type = words[k + 2]!;
    const sym = words[k + 3]!;
    const addend = (words[k + 5]! | 0) * TWO_32 + words[k + 4]!;
    const s = addresses[sym]!;
    const p = p0 + offset;
    const loc = at0 + offset;
    let value: number;
    let width: number;
    switch (type) {
      case R_X86_64_PC32:
        value = s + addend - p;
        width = 4;
        if (inEhFrame && s === 0 && discarded(object, sym)) value = 0;
        break;
      case R_X86_64_PLT32: {
        const g = sym >= first ? globals[sym - first] : undefined;
        value = (g !== undefined && g.stub >= 0 ? ctx.stubAddress + g.stub * 8 : s) + addend - p;
        width = 4;
        break;
      }
      case R_X86_64_64:
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        write64(view, loc, inEhFrame && s === 0 && discarded(object, sym) ? 0 : s + addend);
        continue;
      case R_X86_64_REX_GOTPCRELX:
      case R_X86_64_GOTPCRELX: {
        const g = sym >= first ? globals[sym - first] : undefined;
        const inGraph = g !== undefined ? g.inGraph : object.symbolSection[sym] !== SHN_UNDEF && object.symbolSection[sym] !== SHN_ABS && object.definesAt(sym);
        if (inGraph && isRelaxable(object, list, offset, type)) {
          if (view.getUint8(loc - 2) === 0x8b) {
            view.setUint8(loc - 2, 0x8d);
          } else {
            view.setUint8(loc - 2, 0x67);
            view.setUint8(loc - 1, 0xe8);
          }
          value = s + addend - p;
        } else {
          value = gotEntry(object, sym, g, gotAddress) + addend - p;
        }
        width = 4;
        break;
      }
      case R_X86_64_GOTPCREL: {
        const g = sym >= first ? globals[sym - first] : undefined;
        value = gotEntry(object, sym, g, gotAddress) + addend - p;
        width = 4;
        break;
      }
      case R_X86_64_32:
        value = s + addend;
        if (offset + 4 > size) throw outOfSection(list, i, offset, 4);
        if (value < 0 || value >= TWO_32) throw overflow(list, i, type, sym, offset, value, 'an unsigned 32-bit field', ctx.base);
        view.setUint32(loc, value, true);
        continue;
      case R_X86_64_32S:
        value = s + addend;
        width = 4;
        break;
      case R_X86_64_PC64:
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        write64(view, loc, s + addend - p);
        continue;
      case R_X86_64_GOTOFF64:
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        write64(view, loc, s + addend - gotAddress);
        continue;
      case R_X86_64_GOTPC32:
        value = gotAddress + addend - p;
        width = 4;
        break;
      case R_X86_64_GOTPC64:
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        write64(view, loc, gotAddress + addend - p);
        continue;
      case R_X86_64_GOT64:
      case R_X86_64_GOTPLT64: {
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        const g = sym >= first ? globals[sym - first] : undefined;
        write64(view, loc, gotEntry(object, sym, g, gotAddress) - gotAddress + addend);
        continue;
      }
      case R_X86_64_GOT32: {
        const g = sym >= first ? globals[sym - first] : undefined;
        value = gotEntry(object, sym, g, gotAddress) - gotAddress + addend;
        width = 4;
        break;
      }
      case R_X86_64_GOTPCREL64: {
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        const g = sym >= first ? globals[sym - first] : undefined;
        write64(view, loc, gotEntry(object, sym, g, gotAddress) + addend - p);
        continue;
      }
      case R_X86_64_PLTOFF64: {
        if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
        const g = sym >= first ? globals[sym - first] : undefined;
        write64(view, loc, (g !== undefined && g.stub >= 0 ? ctx.stubAddress + g.stub * 8 : s) - gotAddress + addend);
        continue;
      }
      case R_X86_64_SIZE32:
      case R_X86_64_SIZE64: {
        const g = sym >= first ? globals[sym - first] : undefined;
        const z = symbolSize(object, sym, g);
        if (z === undefined) {
          throw new JitmemError('ERR_LINK_UNSUPPORTED_RELOCATION', `${relocationName(type)} at ${object.where(target, offset)} asks for the size of ${JSON.stringify(object.symbolName(sym))}, which lives in the executor and has no known size`, {
            relocation: relocationName(type),
          });
        }
        if (type === R_X86_64_SIZE64) {
          if (offset + 8 > size) throw outOfSection(list, i, offset, 8);
          write64(view, loc, z + addend);
          continue;
        }
        value = z + addend;
        if (offset + 4 > size) throw outOfSection(list, i, offset, 4);
        if (value < 0 || value >= TWO_32) throw overflow(list, i, type, sym, offset, value, 'an unsigned 32-bit field', ctx.base);
        view.setUint32(loc, value, true);
        continue;
      }
      case R_X86_64_16:
        value = s + addend;
        if (offset + 2 > size) throw outOfSection(list, i, offset, 2);
        if (value < -0x8000 || value > 0xffff) throw overflow(list, i, type, sym, offset, value, 'a 16-bit field', ctx.base);
        view.setUint16(loc, value & 0xffff, true);
        continue;
      case R_X86_64_PC16:
        value = s + addend - p;
        width = 2;
        break;
      case R_X86_64_8:
        value = s + addend;
        if (value < -0x80 || value > 0xff) throw overflow(list, i, type, sym, offset, value, 'an 8-bit field', ctx.base);
        view.setUint8(loc, value & 0xff);
        continue;
      case R_X86_64_PC8:
        value = s + addend - p;
        width = 1;
        break;
      case R_X86_64_NONE:
        continue;
      default:
        // The scan pass refused every other type before anything was allocated.
        throw new JitmemError('ERR_LINK_UNSUPPORTED_RELOCATION', `${relocationName(type)} at ${object.where(target, offset)} is not supported`, { relocation: relocationName(type) });
    }
    // The signed fields: 32, 16 or 8 bits.
    if (offset + width > size) throw outOfSection(list, i, offset, width);
    if (width === 4) {
      if (value < I32_MIN || value > I32_MAX) throw overflow(list, i, type, sym, offset, value, 'a signed 32-bit field', ctx.base);
      view.setInt32(loc, value, true);
    } else if (width === 2) {
      if (value < -0x8000 || value > 0x7fff) throw overflow(list, i, type, sym, offset, value, 'a signed 16-bit field', ctx.base);
      view.setInt16(loc, value, true);
    } else {
      if (value < -0x80 || value > 0x7f) throw overflow(list, i, type, sym, offset, value, 'a signed 8-bit field', ctx.base);
      view.setInt8(loc, value);
    }
  }
}

function discarded(object: InputObject, sym: number): boolean {
  const shndx = object.symbolSection[sym]!;
  return shndx < 0xff00 && shndx !== SHN_UNDEF && object.sectionKind[shndx] === SECTION_DISCARDED;
}

function gotEntry(object: InputObject, sym: number, g: GlobalSymbol | undefined, gotAddress: number): number {
  const index = g !== undefined ? g.got : object.localGot?.get(sym);
  if (index === undefined || index < 0) {
    throw new JitmemError('ERR_LINK_INTERNAL', `no GOT entry was made for ${JSON.stringify(object.symbolName(sym))} of ${object.name}`, {});
  }
  return gotAddress + index * 8;
}

function outOfSection(list: RelocationList, i: number, offset: number, width: number): JitmemError {
  return new JitmemError(
    'ERR_ELF_BAD_RELOCATION',
    `${list.object.name}: relocation ${i} of ${list.name} writes ${width} bytes at offset ${offset}, past the end of the section (${list.targetSize} bytes)`,
    { object: list.object.name, section: list.name, offset },
  );
}

function overflow(list: RelocationList, i: number, type: number, sym: number, offset: number, value: number, field: string, base: number): JitmemError {
  const object = list.object;
  const symbol = object.symbolName(sym);
  const absolute = type === R_X86_64_32 || type === R_X86_64_32S;
  const external = sym >= object.firstGlobal && object.globals[sym - object.firstGlobal] !== undefined && !object.globals[sym - object.firstGlobal]!.inGraph;
  const hint = absolute && external
    ? `; the object takes the address of ${JSON.stringify(symbol)}, which lies in the executor above 4 GiB, as an absolute 32-bit value (code built with -fno-pic): rebuild it with -fPIC or -fPIE`
    : absolute
    ? `; the object uses absolute 32-bit addresses (built with -fno-pic or -mcmodel=kernel), which need its code in the low 2 GiB, but the slab lies at ${hex(base)} (this executor cannot place it lower): rebuild it with -fPIC or -fPIE`
    : type === R_X86_64_PC32 && !object.definesAt(sym)
      ? `; ${JSON.stringify(symbol)} is in the executor, out of reach of a 32-bit PC-relative reference (code built as a position-dependent executable expects a copy relocation): rebuild the object with -fPIC`
      : '';
  return new JitmemError(
    'ERR_LINK_RELOCATION_OVERFLOW',
    `${relocationName(type)} at ${object.where(list.target, offset)} against ${JSON.stringify(symbol)}: the value ${value < 0 ? '-' + hex(-value) : hex(value)} does not fit in ${field}${hint}`,
    { relocation: relocationName(type), symbol, object: object.name, section: list.name, offset, value, index: i },
  );
}
