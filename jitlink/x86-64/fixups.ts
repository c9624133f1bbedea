import { JitmemError, hex } from '../../core/errors.js';
import { SHN_LORESERVE, SHN_UNDEF } from '../../objects/elf-constants.js';
import { SECTION_DISCARDED, type InputObject } from '../input-object.js';
import type { TlsBinding } from '../link-plan.js';
import type { ProgramAddresses } from '../passes/assign-addresses.js';
import { imageOffset, type TlsPlan } from '../passes/plan-tls.js';
import { RELOCATION_WORDS, type RelocationList } from '../relocation-list.js';
import { SYM_COMMON, SYM_DEFINED, type GlobalSymbol } from '../symbol-table.js';
import {
  FIELD_16,
  FIELD_64,
  FIELD_8,
  FIELD_S16,
  FIELD_S32,
  FIELD_S8,
  FIELD_U32,
  signedHex,
  writeField,
  type FieldSite,
} from './fields.js';
import { relaxGotLoad } from './relaxation.js';
import {
  RELAX_CALL_GONE,
  RELAX_DTPOFF_TO_TPOFF,
  RELAX_GD_TO_LE,
  RELAX_IE_TO_LE,
  RELAX_LD_TO_LE,
  relaxGdToLe,
  relaxIeToLe,
  relaxLdToLe,
} from './tls-relaxation.js';
import * as T from './relocation-types.js';
import { STUB_SIZE } from './stubs.js';

/**
 * Applies relocations into working memory: straight reads of the relocation words (no objects
 * per entry), a value per type (psABI table 4.9: S symbol, A addend, P place, G GOT entry,
 * GOT the table, L the PLT stub, Z the size), and one checked write per field kind
 * (fields.ts). Everything that can be refused without addresses was refused by the scan.
 */

export interface FixupContext {
  readonly words: Uint32Array;
  /** One view per segment of working memory. */
  readonly views: readonly DataView[];
  readonly addresses: ProgramAddresses;
  /** The GOT loads the scan relaxed (LinkPlan.relaxedGotLoads). */
  readonly relaxedGotLoads: Uint8Array | undefined;
  /** The program's TLS plan, where its module lies, and the TLS GOT's address. */
  readonly tls: { readonly plan: TlsPlan; readonly binding: TlsBinding | undefined; readonly gotAddress: number };
}

const TWO_32 = 2 ** 32;
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** The field each supported type writes. */
const FIELD_OF = new Uint8Array(64);
for (const t of [
  T.R_X86_64_PC32,
  T.R_X86_64_PLT32,
  T.R_X86_64_GOTPCREL,
  T.R_X86_64_GOTPCRELX,
  T.R_X86_64_REX_GOTPCRELX,
  T.R_X86_64_32S,
  T.R_X86_64_GOTPC32,
  T.R_X86_64_GOT32,
])
  FIELD_OF[t] = FIELD_S32;
for (const t of [T.R_X86_64_32, T.R_X86_64_SIZE32]) FIELD_OF[t] = FIELD_U32;
for (const t of [
  T.R_X86_64_64,
  T.R_X86_64_PC64,
  T.R_X86_64_GOTOFF64,
  T.R_X86_64_GOTPC64,
  T.R_X86_64_GOT64,
  T.R_X86_64_GOTPLT64,
  T.R_X86_64_GOTPCREL64,
  T.R_X86_64_PLTOFF64,
  T.R_X86_64_SIZE64,
])
  FIELD_OF[t] = FIELD_64;
for (const t of [T.R_X86_64_TLSGD, T.R_X86_64_TLSLD, T.R_X86_64_GOTTPOFF, T.R_X86_64_DTPOFF32, T.R_X86_64_TPOFF32])
  FIELD_OF[t] = FIELD_S32;
for (const t of [T.R_X86_64_DTPOFF64, T.R_X86_64_TPOFF64]) FIELD_OF[t] = FIELD_64;
FIELD_OF[T.R_X86_64_16] = FIELD_16;
FIELD_OF[T.R_X86_64_PC16] = FIELD_S16;
FIELD_OF[T.R_X86_64_8] = FIELD_8;
FIELD_OF[T.R_X86_64_PC8] = FIELD_S8;

export function applyRelocations(lists: readonly RelocationList[], ctx: FixupContext): void {
  // The same words read as signed: an addend's high word is then 0 or -1 (a small integer), not
  // 0xffffffff, which V8's interpreter (a process's first link) boxes as a heap number.
  const signed = new Int32Array(ctx.words.buffer, ctx.words.byteOffset, ctx.words.length);
  for (let i = 0; i < lists.length; i++) applyList(lists[i]!, ctx, signed);
}

/** One relocation being applied: its place, and the site its errors name. */
class Fixup implements FieldSite {
  offset = 0;
  type = 0;
  sym = 0;
  index = 0;
  constructor(
    readonly list: RelocationList,
    readonly base: number,
  ) {}
  get sectionSize(): number {
    return this.list.targetSize;
  }
  overflow(value: number, what: string): JitmemError {
    return overflow(this, value, what);
  }
  outside(width: number): JitmemError {
    const list = this.list;
    return new JitmemError(
      'ERR_ELF_BAD_RELOCATION',
      `${list.object.name}: relocation ${this.index} of ${list.name} writes ${width} bytes at offset ${this.offset}, past the end of the section (${list.targetSize} bytes)`,
      { object: list.object.name, section: list.name, offset: this.offset },
    );
  }
}

function applyList(list: RelocationList, ctx: FixupContext, signed: Int32Array): void {
  const object = list.object;
  const words = ctx.words;
  const a = ctx.addresses;
  const place = object.placeSection[list.target]!;
  const si = a.sectionSegment[place]!;
  const view = ctx.views[si]!;
  const at0 = a.sectionOffset[place]! - a.segmentOffsets[si]! + object.placeOffset[list.target]!;
  const p0 = a.objectSections[object.slot]![list.target]!;
  const addresses = a.objectSymbols[object.slot]!;
  const site = new Fixup(list, a.base);
  const relax = ctx.tls.plan.relax;
  const first = object.firstGlobal;
  const globals = object.globals;
  const stubAddress = a.stubAddress;
  const size = list.targetSize;
  const inEhFrame = list.inEhFrame;
  const relaxed = ctx.relaxedGotLoads;
  for (let i = 0, k = list.first * RELOCATION_WORDS; i < list.count; i++, k += RELOCATION_WORDS) {
    if (relax !== undefined && relax[list.first + i] !== 0) {
      relaxTls(site, ctx, view, at0, relax[list.first + i]!, i, k);
      continue;
    }
    // The scan checked the offset's high word (0) and the symbol index.
    const offset = words[k]!;
    const type = words[k + 2]!;
    if (type === T.R_X86_64_NONE) continue;
    const sym = words[k + 3]!;
    const addendLow = signed[k + 4]!;
    const addendHigh = signed[k + 5]!;
    // An addend that is its low word sign-extended (nearly all) is that word: no arithmetic on
    // numbers that are not small integers.
    const addend = addendHigh === addendLow >> 31 ? addendLow : addendHigh * TWO_32 + (addendLow >>> 0);
    // The common cases first, written directly; anything out of range falls through to the
    // checked path below, which says why.
    if (type === T.R_X86_64_PC32 || type === T.R_X86_64_PLT32) {
      const g = type === T.R_X86_64_PLT32 && sym >= first ? globals[sym - first] : undefined;
      const s = g !== undefined && g.stub >= 0 ? stubAddress + g.stub * STUB_SIZE : addresses[sym]!;
      const value = s + addend - (p0 + offset);
      if (offset + 4 <= size && value >= I32_MIN && value <= I32_MAX && !(inEhFrame && s === 0)) {
        view.setInt32(at0 + offset, value, true);
        continue;
      }
    } else if (type === T.R_X86_64_64 && offset + 8 <= size && !(inEhFrame && addresses[sym] === 0)) {
      // write64, inline: a call per entry costs a first link's interpreter (38,000 of these in CPython)
      const value = addresses[sym]! + addend;
      view.setUint32(at0 + offset, value >>> 0, true);
      view.setUint32(at0 + offset + 4, Math.floor(value / TWO_32) >>> 0, true);
      continue;
    }
    site.offset = offset;
    site.type = type;
    site.sym = sym;
    site.index = i;
    const field = FIELD_OF[type]!;
    if (field === 0) {
      // The scan pass refused every other type before anything was allocated.
      throw new JitmemError(
        'ERR_LINK_UNSUPPORTED_RELOCATION',
        `${T.relocationName(type)} at ${object.where(list.target, offset)} is not supported`,
        { relocation: T.relocationName(type) },
      );
    }
    const loc = at0 + offset;
    if (relaxed !== undefined && relaxed[list.first + i] === 1) {
      if (offset + 4 > list.targetSize) throw site.outside(4);
      relaxGotLoad(view, loc);
      writeField(view, loc, field, addresses[sym]! + addend - (p0 + offset), site);
      continue;
    }
    writeField(view, loc, field, valueOf(site, ctx, addresses[sym]!, addend, p0 + offset), site);
  }
}

/** The value relocation `type` writes: S + A, S + A - P, and the GOT, PLT and size forms. */
function valueOf(site: Fixup, ctx: FixupContext, s: number, addend: number, p: number): number {
  const { list, type, sym } = site;
  const object = list.object;
  const got = ctx.addresses.gotAddress;
  switch (type) {
    case T.R_X86_64_PC32:
    case T.R_X86_64_PC16:
    case T.R_X86_64_PC8:
    case T.R_X86_64_PC64:
      // An FDE of a discarded COMDAT function becomes inert (its PC begins at 0).
      return list.inEhFrame && s === 0 && discarded(object, sym) && type === T.R_X86_64_PC32 ? 0 : s + addend - p;
    case T.R_X86_64_64:
      return list.inEhFrame && s === 0 && discarded(object, sym) ? 0 : s + addend;
    case T.R_X86_64_32:
    case T.R_X86_64_32S:
    case T.R_X86_64_16:
    case T.R_X86_64_8:
      return s + addend;
    case T.R_X86_64_PLT32:
      return plt(object, ctx, sym, s) + addend - p;
    case T.R_X86_64_PLTOFF64:
      return plt(object, ctx, sym, s) - got + addend;
    case T.R_X86_64_GOTPCREL:
    case T.R_X86_64_GOTPCRELX:
    case T.R_X86_64_REX_GOTPCRELX:
    case T.R_X86_64_GOTPCREL64:
      return gotEntry(object, sym, got) + addend - p;
    case T.R_X86_64_GOT32:
    case T.R_X86_64_GOT64:
    case T.R_X86_64_GOTPLT64:
      return gotEntry(object, sym, got) - got + addend;
    case T.R_X86_64_GOTOFF64:
      return s + addend - got;
    case T.R_X86_64_GOTPC32:
    case T.R_X86_64_GOTPC64:
      return got + addend - p;
    case T.R_X86_64_SIZE32:
    case T.R_X86_64_SIZE64:
      return symbolSize(site) + addend;
    default:
      return tlsValue(site, ctx, addend, p);
  }
}

/** A thread-local access the scan relaxed to local exec: rewrite the instructions, write the offset. */
function relaxTls(
  site: Fixup,
  ctx: FixupContext,
  view: DataView,
  at0: number,
  how: number,
  i: number,
  k: number,
): void {
  if (how === RELAX_CALL_GONE) return;
  const words = ctx.words;
  const object = site.list.object;
  const sym = words[k + 3]!;
  site.offset = words[k]!;
  site.type = words[k + 2]!;
  site.sym = sym;
  site.index = i;
  const binding = ctx.tls.binding;
  if (binding === undefined)
    throw new JitmemError(
      'ERR_LINK_TLS_UNBOUND',
      `${T.relocationName(site.type)} at ${object.where(site.list.target, site.offset)}: the program uses thread-local storage, and relocate() was given no TLS binding`,
      {},
    );
  const tpOffset = binding.tpOffset + imageOffset(object, sym, globalOf(object, sym));
  if (how !== RELAX_DTPOFF_TO_TPOFF && (tpOffset < I32_MIN || tpOffset > I32_MAX))
    throw site.overflow(tpOffset, 'a signed 32-bit field');
  if (how === RELAX_GD_TO_LE) relaxGdToLe(view, at0 + site.offset, tpOffset);
  else if (how === RELAX_IE_TO_LE) relaxIeToLe(view, at0 + site.offset, tpOffset);
  else if (how === RELAX_LD_TO_LE) relaxLdToLe(view, at0 + site.offset);
  else {
    // A DTPOFF after a relaxed LD sequence: %rax holds the thread pointer, not the module's block.
    const addend = (words[k + 5]! | 0) * TWO_32 + words[k + 4]!;
    writeField(view, at0 + site.offset, FIELD_OF[site.type]!, tpOffset + addend, site);
  }
}

/** The thread-local models' values (see passes/plan-tls.ts). */
function tlsValue(site: Fixup, ctx: FixupContext, addend: number, p: number): number {
  const { list, type, sym } = site;
  const object = list.object;
  const g = globalOf(object, sym);
  const { plan, binding, gotAddress } = ctx.tls;
  if (binding === undefined)
    throw new JitmemError(
      'ERR_LINK_TLS_UNBOUND',
      `${T.relocationName(type)} at ${object.where(list.target, site.offset)}: the program uses thread-local storage, and relocate() was given no TLS binding`,
      {},
    );
  const model =
    type === T.R_X86_64_TLSGD
      ? 'gd'
      : type === T.R_X86_64_TLSLD
        ? 'ld'
        : type === T.R_X86_64_GOTTPOFF
          ? 'ie'
          : undefined;
  if (model !== undefined) {
    const entry = plan.find(model, object, sym, g);
    if (entry === undefined)
      throw new JitmemError(
        'ERR_LINK_INTERNAL',
        `no TLS GOT entry was made for ${JSON.stringify(object.symbolName(sym))} of ${object.name}`,
        {},
      );
    return gotAddress + entry.word * 8 + addend - p;
  }
  // DTPOFF and TPOFF: the scan let only the program's own thread-locals through.
  const offset = imageOffset(object, sym, g) + addend;
  return type === T.R_X86_64_DTPOFF32 || type === T.R_X86_64_DTPOFF64 ? offset : binding.tpOffset + offset;
}

function globalOf(object: InputObject, sym: number): GlobalSymbol | undefined {
  return sym >= object.firstGlobal ? object.globals[sym - object.firstGlobal] : undefined;
}

/** L: the stub of a function outside the graph, or the function itself. */
function plt(object: InputObject, ctx: FixupContext, sym: number, s: number): number {
  const g = globalOf(object, sym);
  return g !== undefined && g.stub >= 0 ? ctx.addresses.stubAddress + g.stub * STUB_SIZE : s;
}

function symbolSize(site: Fixup): number {
  const { list, type, sym, offset } = site;
  const object = list.object;
  const g = globalOf(object, sym);
  const z =
    g === undefined
      ? object.symbolSize[sym]
      : g.state === SYM_DEFINED
        ? g.object!.symbolSize[g.index]
        : g.state === SYM_COMMON
          ? g.commonSize
          : undefined;
  if (z === undefined) {
    throw new JitmemError(
      'ERR_LINK_UNSUPPORTED_RELOCATION',
      `${T.relocationName(type)} at ${object.where(list.target, offset)} asks for the size of ${JSON.stringify(object.symbolName(sym))}, which lives in the executor and has no known size`,
      {
        relocation: T.relocationName(type),
      },
    );
  }
  return z;
}

function discarded(object: InputObject, sym: number): boolean {
  const shndx = object.symbolSection[sym]!;
  return shndx < SHN_LORESERVE && shndx !== SHN_UNDEF && object.sectionKind[shndx] === SECTION_DISCARDED;
}

/** G + GOT: the address of the symbol's GOT entry. */
function gotEntry(object: InputObject, sym: number, gotAddress: number): number {
  const g = globalOf(object, sym);
  const index = g !== undefined ? g.got : object.localGot?.get(sym);
  if (index === undefined || index < 0) {
    throw new JitmemError(
      'ERR_LINK_INTERNAL',
      `no GOT entry was made for ${JSON.stringify(object.symbolName(sym))} of ${object.name}`,
      {},
    );
  }
  return gotAddress + index * 8;
}

function overflow(site: Fixup, value: number, field: string): JitmemError {
  const { list, type, sym, offset } = site;
  const object = list.object;
  const symbol = object.symbolName(sym);
  const absolute = type === T.R_X86_64_32 || type === T.R_X86_64_32S;
  const g = globalOf(object, sym);
  const external = g !== undefined && !g.inGraph;
  const hint =
    absolute && external
      ? `; the object takes the address of ${JSON.stringify(symbol)}, which lies in the executor above 4 GiB, as an absolute 32-bit value (code built with -fno-pic): rebuild it with -fPIC or -fPIE`
      : absolute
        ? `; the object uses absolute 32-bit addresses (built with -fno-pic or -mcmodel=kernel), which need its code in the low 2 GiB, but the slab lies at ${hex(site.base)} (this executor cannot place it lower): rebuild it with -fPIC or -fPIE`
        : type === T.R_X86_64_PC32 && !object.definesAt(sym)
          ? `; ${JSON.stringify(symbol)} is in the executor, out of reach of a 32-bit PC-relative reference (code built as a position-dependent executable expects a copy relocation): rebuild the object with -fPIC`
          : '';
  return new JitmemError(
    'ERR_LINK_RELOCATION_OVERFLOW',
    `${T.relocationName(type)} at ${object.where(list.target, offset)} against ${JSON.stringify(symbol)}: the value ${signedHex(value)} does not fit in ${field}${hint}`,
    {
      relocation: T.relocationName(type),
      symbol,
      object: object.name,
      section: list.name,
      offset,
      value,
      index: site.index,
    },
  );
}
