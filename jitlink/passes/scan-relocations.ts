import { JitmemError } from '../../core/errors.js';
import { SHN_ABS, SHN_COMMON, SHN_LORESERVE, SHN_UNDEF } from '../../objects/elf-constants.js';
import { formatError } from '../../objects/format-error.js';
import { SECTION_ALLOC, SECTION_DISCARDED, SECTION_TLS, type InputObject } from '../input-object.js';
import type { GotTarget, LinkPlan } from '../link-plan.js';
import type { RelocationList } from '../relocation-list.js';
import { isRelaxableGotLoad } from '../x86-64/relaxation.js';
import { SYM_DEFINED, SYM_EXTERNAL, type GlobalSymbol } from '../symbol-table.js';
import {
  KIND_BRANCH,
  KIND_DYNAMIC,
  KIND_GOT,
  KIND_GOT_BASE,
  KIND_RELAXABLE,
  KIND_SUPPORTED,
  KIND_TLS,
  KIND_TLS_ACCESS,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_64,
  R_X86_64_NONE,
  R_X86_64_DTPOFF32,
  R_X86_64_DTPOFF64,
  R_X86_64_PC32,
  R_X86_64_PLT32,
  R_X86_64_TLSGD,
  R_X86_64_TLSLD,
  R_X86_64_GOTTPOFF,
  relocationKinds,
  relocationName,
} from '../x86-64/relocation-types.js';
import { ownTls, type TlsPlan } from './plan-tls.js';
import {
  isRelaxableGd,
  isRelaxableIe,
  isRelaxableLd,
  RELAX_CALL_GONE,
  RELAX_DTPOFF_TO_TPOFF,
  RELAX_GD_TO_LE,
  RELAX_IE_TO_LE,
  RELAX_LD_TO_LE,
} from '../x86-64/tls-relaxation.js';
import type { NearReferences } from './placement.js';
import { ScratchArray } from '../scratch-array.js';

const TWO_32 = 2 ** 32;

/**
 * Pass 4, scan relocations: every relocation is checked before anything is allocated, and the
 * scanner notes which targets need a GOT entry or a PLT stub, which GOT loads are relaxed, and
 * what constrains the graph's placement.
 */
export function scanRelocations(plan: LinkPlan, needGot: boolean): RelocationScanner {
  const scanner = new RelocationScanner(needGot, plan.gotTargets, plan.stubTargets, plan.tls, plan.relocationCount);
  relaxLocalDynamic(plan);
  // (index loops: in a process's first link, V8's interpreter, a for-of step allocates)
  const lists = plan.relocationLists;
  for (let i = 0; i < lists.length; i++) scanner.scan(lists[i]!, plan.relocationWords);
  for (const list of plan.tls.templateLists) scanner.scanTemplate(list, plan.relocationWords);
  plan.relaxable = scanner.relaxable;
  plan.relaxedGotLoads = scanner.relaxedGotLoads;
  return scanner;
}

/**
 * LD -> LE, per object, before the scan: an object whose thread-local sections hold what its
 * TLSLD sequences reach has them all relaxed, with its DTPOFFs, when every one of them has
 * the standard form (see x86-64/tls-relaxation.ts); otherwise none is.
 */
function relaxLocalDynamic(plan: LinkPlan): void {
  const words = plan.relocationWords;
  let lists: RelocationList[] = [];
  const flush = () => {
    if (lists.length > 0) relaxObjectLocalDynamic(plan, lists, words);
    lists = [];
  };
  for (let i = 0; i < plan.relocationLists.length; i++) {
    const list = plan.relocationLists[i]!;
    if (lists.length > 0 && lists[0]!.object !== list.object) flush();
    if (list.object.hasTls) lists.push(list);
  }
  flush();
}

function relaxObjectLocalDynamic(plan: LinkPlan, lists: readonly RelocationList[], words: Uint32Array): void {
  const object = lists[0]!.object;
  const sites: number[] = [];
  for (const list of lists) {
    for (let i = 0, k = list.first * 6; i < list.count; i++, k += 6) {
      const type = words[k + 2];
      if (type === R_X86_64_DTPOFF32 || type === R_X86_64_DTPOFF64) {
        sites.push(k / 6);
      } else if (type === R_X86_64_TLSLD) {
        const offset = words[k]!;
        const next = i + 1 < list.count ? k + 6 : -1;
        const field = object.elf.sectionOffset(list.target) + offset;
        if (
          next < 0 ||
          !callsTlsGetAddr(object, words, next) ||
          !isRelaxableLd(object.bytes, field, offset, list.targetSize, words[next])
        )
          return;
        sites.push(k / 6, -(k / 6 + 1) - 1);
      }
    }
  }
  if (!sites.some((s) => s >= 0 && words[s * 6 + 2] === R_X86_64_TLSLD)) return;
  const relax = (plan.tls.relax ??= new Uint8Array(words.length / 6));
  for (const s of sites) {
    if (s < 0) relax[-s - 1] = RELAX_CALL_GONE;
    else relax[s] = words[s * 6 + 2] === R_X86_64_TLSLD ? RELAX_LD_TO_LE : RELAX_DTPOFF_TO_TPOFF;
  }
}

/** Whether the relocation at word `k` is a call (PLT32 or PC32) of __tls_get_addr. */
function callsTlsGetAddr(object: InputObject, words: Uint32Array, k: number): boolean {
  const type = words[k + 2];
  const sym = words[k + 3]!;
  return (
    (type === R_X86_64_PLT32 || type === R_X86_64_PC32) &&
    sym >= object.firstGlobal &&
    sym < object.symbolCount &&
    object.symbolName(sym) === '__tls_get_addr'
  );
}

/** Per-symbol facts the scan needs, as bits. */
const TARGET_IN_GRAPH = 1;
const TARGET_DISCARDED = 2;
const TARGET_TLS = 4;
const TARGET_LOCAL_COMMON = 8;

/** Scratch for localTargetFlags: the scan needs one object's flags at a time. */
const targetFlags = new ScratchArray((n) => new Uint8Array(n), 1 << 20);

/** The facts about each local symbol of an object (and the globals it holds, by their table entry). */
function localTargetFlags(object: InputObject): Uint8Array {
  const flags = targetFlags.take(object.symbolCount).fill(0, 0, object.symbolCount);
  const sections = object.symbolSection;
  const kinds = object.sectionKind;
  for (let i = 0; i < object.symbolCount; i++) {
    const shndx = sections[i]!;
    if (shndx === SHN_UNDEF || shndx === SHN_ABS) continue;
    if (shndx === SHN_COMMON) {
      flags[i] = TARGET_LOCAL_COMMON;
      continue;
    }
    if (shndx >= SHN_LORESERVE) continue;
    const k = kinds[shndx];
    flags[i] =
      k === SECTION_ALLOC
        ? TARGET_IN_GRAPH
        : k === SECTION_DISCARDED
          ? TARGET_DISCARDED
          : k === SECTION_TLS
            ? TARGET_TLS
            : 0;
  }
  return flags;
}

/**
 * Walks relocations before anything is allocated: refuses unsupported and thread-local ones
 * and references into discarded groups, checks indices and offsets, and decides which targets
 * need a GOT entry or a PLT stub (external ones) and which GOT loads become direct.
 */
export class RelocationScanner implements NearReferences {
  relaxable = 0;
  /** See LinkPlan.relaxedGotLoads. */
  relaxedGotLoads: Uint8Array | undefined;
  /** Lowest and highest executor address reached by a 32-bit PC-relative reference from the graph. */
  nearLowest = Number.POSITIVE_INFINITY;
  nearHighest = Number.NEGATIVE_INFINITY;
  /** One of them, for messages. */
  nearSymbols: string[] = [];
  /** A 32-bit absolute reference to the graph itself (-fno-pic code): it must lie in the low 2 GiB. */
  absolute32: string | undefined;
  private flagsObject: InputObject | undefined;
  private flags: Uint8Array = new Uint8Array(0);

  constructor(
    public needGot: boolean,
    readonly gotTargets: GotTarget[],
    readonly stubTargets: GlobalSymbol[],
    private readonly tls: TlsPlan,
    /** Relocations in the link: the size of relaxedGotLoads. */
    private readonly relocationCount: number,
  ) {}

  scan(list: RelocationList, words: Uint32Array): void {
    const object = list.object;
    const first = object.firstGlobal;
    const symbolCount = object.symbolCount;
    const globals = object.globals;
    if (this.flagsObject !== object) {
      // An object's relocation sections come one after another.
      this.flags = localTargetFlags(object);
      this.flagsObject = object;
    }
    const flags = this.flags;
    const targetSize = list.targetSize;
    // Where the target section's bytes start in the object, for the GOT loads' instructions.
    const targetAt = object.elf.sectionOffset(list.target);
    if (object.isNoBits(list.target)) {
      if (list.count > 0) this.refuse(list, list.offset, 0);
    }
    for (let i = 0, at = list.offset, k = list.first * 6; i < list.count; i++, at += 24, k += 6) {
      const offset = words[k]!;
      const type = words[k + 2]!;
      const sym = words[k + 3]!;
      const kind = type < 64 ? relocationKinds[type]! : 0;
      if (!(kind & KIND_SUPPORTED) || sym >= symbolCount || words[k + 1] !== 0 || offset >= targetSize)
        this.refuse(list, at, i);
      if (type === 0) continue;
      if (kind & KIND_TLS_ACCESS) {
        this.scanTls(list, at, i, type, sym, words, k);
        continue;
      }
      if (this.tls.relax !== undefined && this.tls.relax[k / 6] === RELAX_CALL_GONE) continue;
      let g: GlobalSymbol | undefined;
      let target: number;
      if (sym >= first && (g = globals[sym - first]) !== undefined) {
        target = g.inGraph ? TARGET_IN_GRAPH : 0;
        // (an object without thread-local sections defines no thread-local: the usual case, one load)
        if (g.state === SYM_DEFINED && g.object!.hasTls && flagsOfDefinition(g) & TARGET_TLS) this.refuse(list, at, i);
      } else {
        target = flags[sym]!;
        if (target & (TARGET_TLS | TARGET_LOCAL_COMMON) || (target & TARGET_DISCARDED && !list.inEhFrame))
          this.refuse(list, at, i);
      }
      const inGraph = (target & TARGET_IN_GRAPH) !== 0;
      if (type === R_X86_64_PC32 && !inGraph && g !== undefined && g.address !== 0) this.near(g);
      else if ((type === R_X86_64_32 || type === R_X86_64_32S) && inGraph && this.absolute32 === undefined)
        this.absolute32 = `${relocationName(type)} at ${object.where(list.target, offset)}`;
      if ((kind & (KIND_GOT | KIND_BRANCH | KIND_GOT_BASE)) === 0) continue;
      if (kind & KIND_GOT_BASE) this.needGot = true;
      if (kind & KIND_GOT) {
        if (kind & KIND_RELAXABLE && inGraph && isRelaxableGotLoad(object.bytes, targetAt + offset, offset, type)) {
          this.relaxable++;
          (this.relaxedGotLoads ??= new Uint8Array(this.relocationCount))[list.first + i] = 1;
          continue;
        }
        this.addGot(object, sym, g);
      } else if (kind & KIND_BRANCH && g !== undefined && !inGraph && g.stub < 0) {
        this.addGot(object, sym, g);
        g.stub = this.stubTargets.length;
        this.stubTargets.push(g);
      }
    }
  }

  /**
   * A thread-local access: its target must be thread-local, the program's own or the
   * executor's; the local-dynamic and local-exec models reach the program's own only. Makes the
   * TLS GOT entry the model needs.
   */
  private scanTls(
    list: RelocationList,
    at: number,
    i: number,
    type: number,
    sym: number,
    words: Uint32Array,
    k: number,
  ): void {
    const object = list.object;
    const g = sym >= object.firstGlobal ? object.globals[sym - object.firstGlobal] : undefined;
    const own = ownTls(object, sym, g);
    const external = g !== undefined && g.state === SYM_EXTERNAL;
    if (!own && !external) this.refuseTls(list, at, i, 'names a symbol that is not thread-local');
    const decided = this.tls.relax?.[k / 6];
    if (decided === RELAX_LD_TO_LE || decided === RELAX_DTPOFF_TO_TPOFF) {
      if (!own)
        this.refuseTls(
          list,
          at,
          i,
          'reaches a thread-local of the executor with a model only a thread-local of the program itself may use (local dynamic or local exec)',
        );
      return;
    }
    const offset = words[k]!;
    const field = object.elf.sectionOffset(list.target) + offset;
    if (own && type === R_X86_64_TLSGD && i + 1 < list.count && callsTlsGetAddr(object, words, k + 6)) {
      if (isRelaxableGd(object.bytes, field, offset, list.targetSize, words[k + 6])) {
        const relax = (this.tls.relax ??= new Uint8Array(words.length / 6));
        relax[k / 6] = RELAX_GD_TO_LE;
        relax[k / 6 + 1] = RELAX_CALL_GONE;
        return;
      }
    }
    if (own && type === R_X86_64_GOTTPOFF && isRelaxableIe(object.bytes, field, offset)) {
      (this.tls.relax ??= new Uint8Array(words.length / 6))[k / 6] = RELAX_IE_TO_LE;
      return;
    }
    if (type === R_X86_64_TLSGD) this.tls.entry('gd', object, sym, g);
    else if (type === R_X86_64_GOTTPOFF) this.tls.entry('ie', object, sym, g);
    else if (!own)
      this.refuseTls(
        list,
        at,
        i,
        'reaches a thread-local of the executor with a model only a thread-local of the program itself may use (local dynamic or local exec)',
      );
    else if (type === R_X86_64_TLSLD) this.tls.entry('ld', object, sym, g);
  }

  /** The TLS image's own relocations: absolute addresses of what is not thread-local (a pointer's initial value). */
  scanTemplate(list: RelocationList, words: Uint32Array): void {
    const object = list.object;
    for (let i = 0, at = list.offset, k = list.first * 6; i < list.count; i++, at += 24, k += 6) {
      const type = words[k + 2]!;
      const sym = words[k + 3]!;
      if (type === R_X86_64_NONE) continue;
      if (
        sym >= object.symbolCount ||
        words[k + 1] !== 0 ||
        words[k]! >= list.targetSize ||
        object.isNoBits(list.target)
      )
        this.refuse(list, at, i);
      const g = sym >= object.firstGlobal ? object.globals[sym - object.firstGlobal] : undefined;
      if (type !== R_X86_64_64 || ownTls(object, sym, g))
        this.refuseTls(
          list,
          at,
          i,
          'patches the initial value of a thread-local with something other than the 64-bit address of a symbol that is not thread-local',
        );
      if (g === undefined && object.isCommon(sym)) this.refuse(list, at, i);
    }
  }

  private refuseTls(list: RelocationList, at: number, i: number, why: string): never {
    const object = list.object;
    const type = object.view.getUint32(at + 8, true);
    const sym = object.view.getUint32(at + 12, true);
    const offset = object.view.getUint32(at, true);
    throw new JitmemError(
      'ERR_LINK_TLS_MODEL',
      `${relocationName(type)} at ${object.where(list.target, offset)} against ${JSON.stringify(object.symbolName(sym))} ${why}`,
      {
        relocation: relocationName(type),
        symbol: object.symbolName(sym),
        object: object.name,
        index: i,
      },
    );
  }

  private near(g: GlobalSymbol): void {
    if (g.address < this.nearLowest) {
      this.nearLowest = g.address;
      this.nearSymbols[0] = g.name;
    }
    if (g.address > this.nearHighest) {
      this.nearHighest = g.address;
      this.nearSymbols[1] = g.name;
    }
  }

  private addGot(object: InputObject, sym: number, g: GlobalSymbol | undefined): void {
    if (g !== undefined) {
      if (g.got < 0) {
        g.got = this.gotTargets.length;
        this.gotTargets.push({ object, index: sym });
      }
      return;
    }
    object.localGot ??= new Map();
    if (!object.localGot.has(sym)) {
      object.localGot.set(sym, this.gotTargets.length);
      this.gotTargets.push({ object, index: sym });
    }
  }

  /** Throws the error that relocation `i` (its entry at `at`) deserves. */
  private refuse(list: RelocationList, at: number, i: number): never {
    const object = list.object;
    const view = object.view;
    const type = view.getUint32(at + 8, true);
    const sym = view.getUint32(at + 12, true);
    const kind = type < 64 ? relocationKinds[type]! : 0;
    const offset = view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_32;
    const name = relocationName(type);
    const where = `at ${object.where(list.target, offset)}`;
    const symbolName = () => JSON.stringify(object.symbolName(sym));
    if (!(kind & KIND_SUPPORTED)) {
      if (kind & KIND_TLS) {
        throw new JitmemError(
          'ERR_LINK_TLS_UNSUPPORTED',
          `${name} ${where} against ${sym < object.symbolCount ? symbolName() : `symbol ${sym}`}: jitmem's linker implements the four TLS models of the traditional dialect (general and local dynamic, initial and local exec), not TLS descriptors (-mtls-dialect=gnu2): rebuild with -mtls-dialect=gnu`,
          {
            relocation: name,
            object: object.name,
            section: list.name,
            offset,
          },
        );
      }
      throw new JitmemError(
        'ERR_LINK_UNSUPPORTED_RELOCATION',
        `${name} ${where}: ${kind & KIND_DYNAMIC ? 'a dynamic relocation has no place in a relocatable object' : "jitmem's linker does not support this relocation type"}`,
        { relocation: name, type, object: object.name, section: list.name, offset },
      );
    }
    if (sym >= object.symbolCount) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at + 12,
        `relocation ${i} of ${list.name} names symbol ${sym}; the symbol table has ${object.symbolCount}`,
      );
    }
    if (object.isNoBits(list.target) || offset >= list.targetSize) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at,
        `relocation ${i} patches offset ${offset} of ${list.name}, which has ${object.isNoBits(list.target) ? 'no content' : `${list.targetSize} bytes`}`,
      );
    }
    const flags = localTargetFlags(object)[sym]!;
    const g = sym >= object.firstGlobal ? object.globals[sym - object.firstGlobal] : undefined;
    if (g !== undefined || flags & TARGET_TLS) {
      throw new JitmemError(
        'ERR_LINK_TLS_MODEL',
        `${name} ${where} refers to thread-local ${symbolName()}, but it is not a thread-local access (TLSGD, TLSLD, DTPOFF, GOTTPOFF or TPOFF): a thread-local has no single address`,
        { relocation: name, symbol: object.symbolName(sym) },
      );
    }
    if (flags & TARGET_LOCAL_COMMON) {
      throw formatError(
        'ERR_ELF_BAD_RELOCATION',
        object.elf.origin,
        at + 12,
        `relocation ${i} refers to local COMMON symbol ${sym}`,
      );
    }
    throw new JitmemError(
      'ERR_LINK_DISCARDED_SECTION',
      `${name} ${where} refers to ${symbolName()} in a COMDAT group whose copy from another object was kept`,
      {
        relocation: name,
        object: object.name,
      },
    );
  }
}

function flagsOfDefinition(g: GlobalSymbol): number {
  const o = g.object!;
  const shndx = o.symbolSection[g.index]!;
  return shndx < SHN_LORESERVE && shndx !== SHN_UNDEF && o.sectionKind[shndx] === SECTION_TLS ? TARGET_TLS : 0;
}
