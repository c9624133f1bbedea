import { JitmemError } from '../core/errors.js';
import type { GraphLayout } from '../graph/layout.js';
import type { LinkGraph } from '../graph/link-graph.js';
import type { ArraySection, LinkPlan, LinkStats, LinkTimes, Placement, TlsBinding, TlsImage } from './link-plan.js';
import { RELOCATION_WORDS } from './relocation-list.js';
import { assignAddresses, type ProgramAddresses } from './passes/assign-addresses.js';
import { GOT_ENTRY_SIZE } from './passes/build-entries.js';
import { SYM_COMMON, SYM_DEFINED, SYM_UNDEFINED } from './symbol-table.js';
import { FIELD_64, write64, writeField } from './x86-64/fields.js';
import { applyRelocations } from './x86-64/fixups.js';
import { writeStub } from './x86-64/stubs.js';
import { RELAX_GD_TO_LE, RELAX_IE_TO_LE, RELAX_LD_TO_LE } from './x86-64/tls-relaxation.js';

/** A global symbol of the linked program as a natively linked program would export it. */
export interface ExportedSymbol {
  readonly name: string;
  readonly address: number;
  readonly size: number;
  /** STT_FUNC (2) or STT_OBJECT (1). */
  readonly type: number;
}

/** What one relocate() made: addresses fixed at that call, unchanged by any later one. */
export interface RelocatedProgram {
  readonly base: number;
  /** Address of the entry symbol. */
  readonly entry: number;
  /** .preinit_array, then .init_array and .ctors, in the order they run. */
  readonly init: readonly number[];
  /** .fini_array and .dtors, in the order they run. */
  readonly fini: readonly number[];
  /** The merged .eh_frame (terminated), to register with the unwinder. */
  readonly ehFrame?: { readonly start: number; readonly end: number };
  /** Address of a global symbol of the linked program. */
  symbol(name: string): number | undefined;
  /** The global symbols a native link would export (for the export library). */
  exports(): ExportedSymbol[];
}

const TWO_32 = 2 ** 32;
const STV_INTERNAL = 1;
const STV_HIDDEN = 2;
/** STT_NOTYPE, STT_OBJECT, STT_FUNC: the types an export library carries (not section, file, TLS, ifunc). */
const LAST_EXPORTED_TYPE = 2;

/** A linked program: its graph and layout, ready to be relocated into an allocation. */
export class LinkedProgram {
  /** @internal */
  constructor(private readonly plan: LinkPlan) {}

  get graph(): LinkGraph {
    return this.plan.graph;
  }
  get layout(): GraphLayout {
    return this.plan.layout!;
  }
  get times(): LinkTimes {
    return this.plan.times;
  }
  get stats(): LinkStats {
    const plan = this.plan;
    return {
      objects: plan.table.objects.length,
      sections: plan.sections.length,
      relocations: plan.relocationCount,
      gotEntries: plan.gotTargets.length,
      stubs: plan.stubTargets.length,
      externals: plan.externals.size,
      relaxable: plan.relaxable,
      tlsRelaxed:
        plan.tls.relax === undefined
          ? 0
          : plan.tls.relax.reduce(
              (n, r) => n + (r === RELAX_GD_TO_LE || r === RELAX_IE_TO_LE || r === RELAX_LD_TO_LE ? 1 : 0),
              0,
            ),
    };
  }
  /** Symbols looked up in the executor, and what came back. */
  get externals(): ReadonlyMap<string, number> {
    return this.plan.externals;
  }
  /** Where the allocation must lie for the program's 32-bit references to reach. */
  get placement(): Placement | undefined {
    return this.plan.placement;
  }
  /** True when the program calls dlopen: what it loads may need the program's own symbols. */
  get loadsLibraries(): boolean {
    return this.plan.loadsLibraries;
  }

  /**
   * Pass 7 (relocate): gives every section and symbol its executor address, given the
   * allocation's base and the working memory of each segment (in layout order), fills the GOT
   * and the stubs, and applies every relocation there. Content must already be in working
   * memory. Throws ERR_LINK_RELOCATION_OVERFLOW when a value does not fit its field; then
   * nothing in the executor uses the memory, and the caller abandons the allocation.
   */
  /**
   * True when the program has thread-local storage or reaches the executor's: the loader must bind
   * it (tlsImage, then relocate with the binding).
   */
  get usesTls(): boolean {
    return !this.plan.tls.empty;
  }

  /**
   * The program's TLS image for an allocation at `base`: the .tdata template with its
   * relocations applied (a thread-local pointer's initial value is an address of the program),
   * and the executor's thread-locals the program reaches.
   */
  tlsImage(base: number, layout: GraphLayout = this.layout): TlsImage {
    const tls = this.plan.tls;
    const template = new Uint8Array(tls.templateSize);
    for (const { object, section } of tls.pieces) {
      const content = object.elf.sectionContent(section);
      if (content !== undefined && object.placeOffset[section]! < tls.templateSize)
        template.set(content, object.placeOffset[section]!);
    }
    if (tls.templateLists.length > 0) {
      const a = assignAddresses(this.plan, base, layout, undefined);
      const view = new DataView(template.buffer);
      const words = this.plan.relocationWords;
      for (const list of tls.templateLists) {
        const object = list.object;
        const symbols = a.objectSymbols[object.slot]!;
        for (let i = 0, k = list.first * RELOCATION_WORDS; i < list.count; i++, k += RELOCATION_WORDS) {
          if (words[k + 2] === 0) continue; // R_X86_64_NONE; the scan let only R_X86_64_64 through otherwise
          const offset = words[k]!;
          const value = symbols[words[k + 3]!]! + ((words[k + 5]! | 0) * TWO_32 + words[k + 4]!);
          writeField(view, object.placeOffset[list.target]! + offset, FIELD_64, value, {
            sectionSize: list.targetSize,
            offset,
            overflow: () => new JitmemError('ERR_LINK_INTERNAL', 'a 64-bit field overflowed', {}),
            outside: () =>
              new JitmemError(
                'ERR_ELF_BAD_RELOCATION',
                `${object.name}: relocation ${i} of ${list.name} writes past its end`,
                {},
              ),
          });
        }
      }
    }
    return {
      template,
      size: tls.size,
      alignment: tls.alignment,
      externals: [...tls.externals.values()].map((x) => ({ ...x })),
    };
  }

  relocate(
    base: number,
    workingMemory: readonly Uint8Array[],
    layout: GraphLayout = this.layout,
    tls?: TlsBinding,
  ): RelocatedProgram {
    const planned = this.layout;
    if (layout !== planned && (layout.size !== planned.size || layout.segments.length !== planned.segments.length)) {
      throw new JitmemError(
        'ERR_LINK_LAYOUT_MISMATCH',
        `relocate: the allocation's layout (${layout.size} bytes) is not the one the link planned (${planned.size} bytes)`,
        {},
      );
    }
    if (workingMemory.length !== layout.segments.length) {
      throw new JitmemError(
        'ERR_LINK_LAYOUT_MISMATCH',
        `relocate: ${workingMemory.length} working-memory segments for a layout of ${layout.segments.length}`,
        {},
      );
    }
    const addresses = assignAddresses(this.plan, base, layout, workingMemory);
    const views = workingMemory.map((wm) => new DataView(wm.buffer, wm.byteOffset, wm.length));
    this.fillGotAndStubs(addresses, views);
    const tlsGot = this.plan.tls.gotSection;
    const tlsGotAddress = tlsGot ? addresses.sectionAddress[tlsGot.serial]! : 0;
    if (tlsGot) this.fillTlsGot(addresses, views, tls);
    applyRelocations(this.plan.relocationLists, {
      words: this.plan.relocationWords,
      views,
      addresses,
      relaxedGotLoads: this.plan.relaxedGotLoads,
      tls: { plan: this.plan.tls, binding: tls, gotAddress: tlsGotAddress },
    });
    return this.result(addresses, views);
  }

  private fillGotAndStubs(a: ProgramAddresses, views: readonly DataView[]): void {
    const { gotSection, stubSection } = this.plan;
    if (gotSection) {
      const si = a.sectionSegment[gotSection.serial]!;
      const at = a.sectionOffset[gotSection.serial]! - a.segmentOffsets[si]!;
      this.plan.gotTargets.forEach((t, i) =>
        write64(views[si]!, at + i * GOT_ENTRY_SIZE, a.objectSymbols[t.object.slot]![t.index]!),
      );
    }
    if (stubSection) {
      const si = a.sectionSegment[stubSection.serial]!;
      const at = a.sectionOffset[stubSection.serial]! - a.segmentOffsets[si]!;
      this.plan.stubTargets.forEach((g, i) =>
        writeStub(views[si]!, at, a.stubAddress, i, a.gotAddress + g.got * GOT_ENTRY_SIZE),
      );
    }
  }

  /** The TLS GOT from the binding: (module, offset) pairs and offsets from the thread pointer. */
  private fillTlsGot(a: ProgramAddresses, views: readonly DataView[], binding: TlsBinding | undefined): void {
    if (binding === undefined) {
      throw new JitmemError(
        'ERR_LINK_TLS_UNBOUND',
        'relocate: the program uses thread-local storage, and was given no TLS binding (the loader binds it through the executor)',
        {},
      );
    }
    const section = this.plan.tls.gotSection!;
    const si = a.sectionSegment[section.serial]!;
    const at = a.sectionOffset[section.serial]! - a.segmentOffsets[si]!;
    const view = views[si]!;
    for (const e of this.plan.tls.entries) {
      const x = e.own ? undefined : binding.externals.get(e.name);
      if (!e.own && x === undefined)
        throw new JitmemError(
          'ERR_LINK_TLS_UNBOUND',
          `relocate: the TLS binding says nothing of the executor's thread-local ${JSON.stringify(e.name)}`,
          { symbol: e.name },
        );
      const word = at + e.word * GOT_ENTRY_SIZE;
      if (e.model === 'ie') {
        write64(view, word, e.own ? binding.tpOffset + e.imageOffset : x!.tpOffset);
      } else {
        write64(view, word, e.own ? binding.module : x!.module);
        write64(view, word + GOT_ENTRY_SIZE, e.own ? e.imageOffset : x!.offset);
      }
    }
  }

  private result(a: ProgramAddresses, views: readonly DataView[]): RelocatedProgram {
    const plan = this.plan;
    const symbols = plan.table.symbols;
    const ehFrame = plan.ehFrame
      ? {
          start: a.sectionAddress[plan.ehFrame.serial]!,
          end: a.sectionAddress[plan.ehFrame.serial]! + plan.ehFrame.size,
        }
      : undefined;
    const { init, fini } = this.initializers(a, views);
    const globals = a.globals;
    return Object.freeze({
      base: a.base,
      entry: a.globals[symbols.get(plan.entryName)!.serial]!,
      init: Object.freeze(init),
      fini: Object.freeze(fini),
      ...(ehFrame ? { ehFrame: Object.freeze(ehFrame) } : {}),
      // Only the symbols' addresses (fresh for this call) outlive it: the rest of `a` is the plan's scratch.
      exports: () => this.exportedSymbols(globals),
      symbol: (name: string) => {
        const g = symbols.get(name);
        return g && g.state !== SYM_UNDEFINED ? globals[g.serial] : undefined;
      },
    });
  }

  /** The program's global symbols as a natively linked program exports them (not hidden, not thread-local). */
  private exportedSymbols(globals: Float64Array): ExportedSymbol[] {
    const out: ExportedSymbol[] = [];
    for (let serial = 0, all = this.plan.table.list; serial < all.length; serial++) {
      const g = all[serial]!;
      if (g.state === SYM_COMMON) {
        out.push({ name: g.name, address: globals[g.serial]!, size: g.commonSize, type: 1 });
        continue;
      }
      if (g.state !== SYM_DEFINED || !g.inGraph) continue;
      const o = g.object!;
      const visibility = o.symbolVisibility[g.index]!;
      const type = o.symbolInfo[g.index]! & 0xf;
      if (visibility === STV_INTERNAL || visibility === STV_HIDDEN || type > LAST_EXPORTED_TYPE) continue;
      out.push({ name: g.name, address: globals[g.serial]!, size: o.symbolSize[g.index]!, type });
    }
    return out;
  }

  /** The functions of the init and fini arrays, read from relocated memory, in the order they run. */
  private initializers(a: ProgramAddresses, views: readonly DataView[]): { init: number[]; fini: number[] } {
    const read = (s: ArraySection): number[] => {
      const place = s.object.placeSection[s.section]!;
      const si = a.sectionSegment[place]!;
      if (si < 0) return [];
      const view = views[si]!;
      const at = a.sectionOffset[place]! - a.segmentOffsets[si]! + s.object.placeOffset[s.section]!;
      const size = s.object.elf.sectionSize(s.section);
      const out: number[] = [];
      for (let p = 0; p + 8 <= size; p += 8) {
        const lo = view.getUint32(at + p, true);
        const hi = view.getUint32(at + p + 4, true);
        // 0 and -1 are the sentinels old crtbegin/crtend put around .ctors/.dtors.
        if ((lo === 0 && hi === 0) || (lo === 0xffffffff && hi === 0xffffffff)) continue;
        out.push(hi * TWO_32 + lo);
      }
      return s.reversed ? out.reverse() : out;
    };
    const ordered = (kind: ArraySection['kind']) =>
      this.plan.arrays
        .filter((s) => s.kind === kind)
        .sort((x, y) => x.priority - y.priority || x.object.order - y.object.order || x.section - y.section)
        .flatMap(read);
    return { init: [...ordered('preinit'), ...ordered('init')], fini: ordered('fini').reverse() };
  }
}
