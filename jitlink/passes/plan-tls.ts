import { alignUp } from '../../core/checks.js';
import { SHN_LORESERVE, SHN_UNDEF, SHT_NOBITS } from '../../objects/elf-constants.js';
import { SECTION_TLS, type InputObject } from '../input-object.js';
import type { LinkPlan, PlannedSection } from '../link-plan.js';
import type { RelocationList } from '../relocation-list.js';
import { SYM_DEFINED, type GlobalSymbol } from '../symbol-table.js';

/**
 * The program's thread-local storage: its TLS image (every .tdata section, then every .tbss,
 * each at its alignment, as one module would have them) and the TLS GOT entries its code
 * reaches it and the executor's thread-locals through.
 *
 * The linker does not decide where a thread's copy lives: the loader gives the image to the
 * executor's own dynamic linker as a generated library (loader/tls-library.ts), which gives it
 * a module id and a static TLS offset, copies it into every thread that exists and every
 * thread created later, and frees it when the library is closed. relocate() is then given that
 * binding (TlsBinding) and writes the models' values from it:
 *   general dynamic  TLSGD     GOT pair (module, offset), __tls_get_addr
 *   local dynamic    TLSLD     GOT pair (module, 0), then DTPOFF32/64: the offset
 *   initial exec     GOTTPOFF  GOT entry: the offset from the thread pointer
 *   local exec       TPOFF32/64: the offset from the thread pointer, in the code
 * The executor's thread-locals (errno's neighbours in libc, libstdc++'s __once_callable) get
 * the same through the generated library's dynamic relocations against them.
 */

/** A TLS GOT entry: which model, and for which symbol (undefined for the LD pair). */
export interface TlsEntry {
  readonly model: 'gd' | 'ld' | 'ie';
  /** First word in the TLS GOT. */
  readonly word: number;
  /** The program's own thread-local (its image offset), or an executor's one (by name). */
  readonly own: boolean;
  readonly imageOffset: number;
  readonly name: string;
}

/** What the loader must ask the executor about one of its thread-locals. */
export interface ExternalTls {
  readonly name: string;
  /** Module and offset, for general dynamic accesses. */
  dynamic: boolean;
  /** Offset from the thread pointer, for initial exec accesses. */
  initialExec: boolean;
}

export class TlsPlan {
  /** Bytes with content (.tdata), then the image's whole size with the zeroed part (.tbss). */
  templateSize = 0;
  size = 0;
  alignment = 1;
  /** Relocations that patch the image itself (a thread-local pointer's initial value). */
  readonly templateLists: RelocationList[] = [];
  readonly pieces: Array<{ object: InputObject; section: number }> = [];
  readonly entries: TlsEntry[] = [];
  private readonly byKey = new Map<string, TlsEntry>();
  readonly externals = new Map<string, ExternalTls>();
  words = 0;
  gotSection: PlannedSection | undefined;
  /**
   * By relocation index (RelocationList.first + i): the relaxation the scan chose
   * (x86-64/tls-relaxation.ts), 0 for none.
   */
  relax: Uint8Array | undefined;

  get empty(): boolean {
    return this.size === 0 && this.entries.length === 0;
  }

  /** The TLS GOT entry of `model` for symbol `sym` of `object`, made on first use. */
  entry(model: TlsEntry['model'], object: InputObject, sym: number, g: GlobalSymbol | undefined): TlsEntry {
    const key = model === 'ld' ? 'ld' : `${model}:${g !== undefined ? `g${g.serial}` : `${object.slot}:${sym}`}`;
    let e = this.byKey.get(key);
    if (e === undefined) {
      const own = model === 'ld' || ownTls(object, sym, g);
      const name = g !== undefined ? g.name : object.symbolName(sym);
      e = { model, word: this.words, own, imageOffset: own && model !== 'ld' ? imageOffset(object, sym, g) : 0, name };
      this.words += model === 'ie' ? 1 : 2;
      this.entries.push(e);
      this.byKey.set(key, e);
      if (!own) {
        let x = this.externals.get(name);
        if (!x) this.externals.set(name, (x = { name, dynamic: false, initialExec: false }));
        if (model === 'gd') x.dynamic = true;
        else x.initialExec = true;
      }
    }
    return e;
  }

  /** The entry made for `model` and the symbol (relocate's look-up). */
  find(model: TlsEntry['model'], object: InputObject, sym: number, g: GlobalSymbol | undefined): TlsEntry | undefined {
    return this.byKey.get(
      model === 'ld' ? 'ld' : `${model}:${g !== undefined ? `g${g.serial}` : `${object.slot}:${sym}`}`,
    );
  }
}

/** True when symbol `sym` of `object` (or the global it resolved to) is defined in a TLS section of the program. */
export function ownTls(object: InputObject, sym: number, g: GlobalSymbol | undefined): boolean {
  if (g !== undefined) {
    if (g.state !== SYM_DEFINED) return false;
    object = g.object!;
    sym = g.index;
  }
  const shndx = object.symbolSection[sym]!;
  return shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && object.sectionKind[shndx] === SECTION_TLS;
}

/** The offset of a thread-local of the program in its TLS image. */
export function imageOffset(object: InputObject, sym: number, g: GlobalSymbol | undefined): number {
  if (g !== undefined) {
    object = g.object!;
    sym = g.index;
  }
  return object.placeOffset[object.symbolSection[sym]!]! + object.symbolValue[sym]!;
}

/** Lays out the TLS image: every .tdata section in object order, then every .tbss. */
export function planTlsImage(plan: LinkPlan): void {
  const tls = plan.tls;
  const nobits: Array<{ object: InputObject; section: number }> = [];
  const place = (object: InputObject, index: number): void => {
    const alignment = Math.max(1, object.elf.sectionAlignment(index));
    tls.size = alignUp(tls.size, alignment);
    object.placeOffset[index] = tls.size;
    tls.size += object.elf.sectionSize(index);
    tls.alignment = Math.max(tls.alignment, alignment);
    tls.pieces.push({ object, section: index });
  };
  for (const object of plan.table.objects) {
    if (!object.hasTls) continue;
    for (let index = 0; index < object.elf.sectionCount; index++) {
      if (object.sectionKind[index] !== SECTION_TLS) continue;
      if (object.elf.sectionType(index) === SHT_NOBITS) nobits.push({ object, section: index });
      else place(object, index);
    }
  }
  tls.templateSize = tls.size;
  for (const n of nobits) place(n.object, n.section);
}
