import type { GraphLayout } from '../graph/layout.js';
import type { LinkGraph, Section } from '../graph/link-graph.js';
import type { InputObject } from './input-object.js';
import { TlsPlan } from './passes/plan-tls.js';
import type { RelocationList } from './relocation-list.js';
import type { GlobalSymbol, SymbolTable } from './symbol-table.js';

/**
 * What the passes of a link decide, in one object: each pass fills its part (see link.ts for
 * the order), and once the last has run nothing changes it any more. relocate() reads it and
 * writes only into the memory and the result it is given.
 */

/** A section of the graph with what the linker needs to find it again after layout. */
export interface PlannedSection extends Section {
  readonly serial: number;
}

/** An init or fini array section of an object, and when it runs. */
export interface ArraySection {
  readonly object: InputObject;
  readonly section: number;
  readonly kind: 'preinit' | 'init' | 'fini';
  readonly priority: number;
  /** .ctors/.dtors run from the end. */
  readonly reversed: boolean;
}

/** A symbol reached through the GOT: the object and its index there. */
export interface GotTarget {
  readonly object: InputObject;
  readonly index: number;
}

export interface LinkTimes {
  readObjects: number;
  resolve: number;
  layout: number;
}

export interface LinkStats {
  readonly objects: number;
  readonly sections: number;
  readonly relocations: number;
  readonly gotEntries: number;
  readonly stubs: number;
  readonly externals: number;
  /** GOT loads turned into direct references (mov -> lea, call * -> call). */
  readonly relaxable: number;
  /** Thread-local accesses to the program's own thread-locals turned into local exec (GD, LD, IE -> LE). */
  readonly tlsRelaxed: number;
}

/** Where the allocation must lie for the program's 32-bit references to reach. */
export interface Placement {
  readonly start: number;
  readonly end: number;
}

export class LinkPlan {
  // read inputs
  readonly table: SymbolTable;
  // resolve symbols
  entryName = 'main';
  /** Symbols looked up in the executor, and what came back. */
  externals = new Map<string, number>();
  /** The program calls dlopen (itself or through the runtime's stand-in). */
  loadsLibraries = false;
  /** __start_X/__stop_X symbols by the section name X. */
  readonly boundaries = new Map<string, GlobalSymbol[]>();
  // plan sections
  readonly sections: PlannedSection[] = [];
  readonly arrays: ArraySection[] = [];
  readonly relocationLists: RelocationList[] = [];
  relocationCount = 0;
  /** Every relocation entry, six words each (RelocationList.first). */
  relocationWords = new Uint32Array(0);
  ehFrame: PlannedSection | undefined;
  /** The linker's own zero-filled data: COMMON symbols and __dso_handle. */
  dataSection: PlannedSection | undefined;
  // scan relocations, build entries
  readonly gotTargets: GotTarget[] = [];
  readonly stubTargets: GlobalSymbol[] = [];
  relaxable = 0;
  /**
   * 1 for each GOT load the scan relaxed (by index among the link's relocations; undefined when
   * none was): the fixups rewrite exactly those, without deciding again.
   */
  relaxedGotLoads: Uint8Array | undefined = undefined;
  gotSection: PlannedSection | undefined;
  stubSection: PlannedSection | undefined;
  /** The TLS image and the TLS GOT (plan-tls.ts). */
  readonly tls = new TlsPlan();
  // lay out
  graph: LinkGraph = { name: '', sections: [] };
  layout: GraphLayout | undefined;
  placement: Placement | undefined;
  readonly times: LinkTimes = { readObjects: 0, resolve: 0, layout: 0 };
  /** assignAddresses' per-object arrays, reused by every relocation (none keeps them). */
  addressScratch: { readonly sections: Float64Array[]; readonly symbols: Float64Array[] } | undefined;

  constructor(table: SymbolTable) {
    this.table = table;
  }
}

/**
 * Where the executor's dynamic linker put the program's TLS module, and what it says of the
 * executor's thread-locals.
 */
export interface TlsBinding {
  /** The module id of the program's TLS image (for __tls_get_addr). */
  readonly module: number;
  /** The image's offset from the thread pointer (static TLS), the same in every thread. */
  readonly tpOffset: number;
  readonly externals: ReadonlyMap<
    string,
    { readonly module: number; readonly offset: number; readonly tpOffset: number }
  >;
}

/** The program's TLS image, relocated, for the loader to hand to the executor's dynamic linker. */
export interface TlsImage {
  /** The initial content (.tdata) with its relocations applied. */
  readonly template: Uint8Array;
  /** The whole image: template, then zeros (.tbss). */
  readonly size: number;
  readonly alignment: number;
  /** The executor's thread-locals the program reaches, and how. */
  readonly externals: ReadonlyArray<{
    readonly name: string;
    readonly dynamic: boolean;
    readonly initialExec: boolean;
  }>;
}
