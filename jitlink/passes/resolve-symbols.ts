import { performance } from 'node:perf_hooks';
import { JitmemError } from '../../core/errors.js';
import type { ArMember } from '../../objects/ar-archive.js';
import { readElfObject } from '../../objects/elf-object.js';
import { InputObject, SECTION_ALLOC } from '../input-object.js';
import type { LinkPlan } from '../link-plan.js';
import {
  DSO_HANDLE,
  GOT_SYMBOL,
  SYM_COMMON,
  SYM_DEFINED,
  SYM_EXTERNAL,
  SYM_NULL,
  SYM_SYNTHETIC,
  SYM_UNDEFINED,
  type GlobalSymbol,
  type SymbolTable,
} from '../symbol-table.js';

export interface ResolveOptions {
  readonly entry: string;
  /** One batched lookup in the executor: an address or 0 per name. */
  readonly lookup: (names: readonly string[]) => Promise<readonly number[]>;
  /** Executor functions standing in for the process's own (exit, atexit, dlopen...). */
  readonly runtimeSymbols: ReadonlyMap<string, number>;
}

const BOUNDARY = /^__(start|stop)_([A-Za-z_][A-Za-z0-9_]*)$/;

/** Names of the allocated sections of the objects loaded so far. */
function allocatedSectionNames(table: SymbolTable): Set<string> {
  const names = new Set<string>();
  for (const o of table.objects)
    for (let index = 0; index < o.elf.sectionCount; index++)
      if (o.sectionKind[index] === SECTION_ALLOC) names.add(o.elf.sectionName(index));
  return names;
}

/**
 * Pass 2a, archives on demand: enters the plain objects, then pulls the archive members that
 * define what is still undefined until nothing new is pulled. Returns the time spent reading
 * members (which counts as reading, not resolving).
 */
export function loadObjects(plan: LinkPlan, plain: readonly InputObject[]): number {
  const table = plan.table;
  for (const object of plain) table.addObject(object);
  let memberTime = 0;
  let order = plain.length;
  table.pullArchiveMembers((file: string, member: ArMember) => {
    const m0 = performance.now();
    const object = new InputObject(
      readElfObject(member.data, { file, member: member.name, base: member.dataOffset }),
      order++,
    );
    memberTime += performance.now() - m0;
    return object;
  });
  return memberTime;
}

/**
 * Pass 2b, resolve symbols: the entry must be defined; the linker's own names and __start_X /
 * __stop_X become synthetic; the runtime's stand-ins bind first; everything else still
 * undefined is looked up in the executor in one batch. Strong references nothing provides are
 * one error naming them all.
 */
export async function resolveSymbols(plan: LinkPlan, options: ResolveOptions): Promise<void> {
  const symbols = plan.table.symbols;
  plan.entryName = options.entry;
  const entry = symbols.get(options.entry);
  if (!entry || (entry.state !== SYM_DEFINED && entry.state !== SYM_COMMON)) {
    throw new JitmemError(
      'ERR_LINK_NO_ENTRY',
      `no object defines the entry symbol ${JSON.stringify(options.entry)}${options.entry === 'main' ? ' (is a main() among the inputs? name another with --entry)' : ''}`,
      {
        symbol: options.entry,
      },
    );
  }
  const wanted = bindLocally(plan, options.runtimeSymbols);
  const found = wanted.length > 0 ? await options.lookup(wanted.map((g) => g.name)) : [];
  const missing: GlobalSymbol[] = [];
  wanted.forEach((g, i) => {
    const addr = found[i] ?? 0;
    plan.externals.set(g.name, addr);
    if (addr !== 0) {
      g.state = SYM_EXTERNAL;
      g.address = addr;
    } else if (g.strongReference) {
      missing.push(g);
    } else {
      g.state = SYM_NULL;
      g.address = 0;
    }
  });
  if (missing.length > 0) throw undefinedSymbols(missing);
  plan.loadsLibraries ||= (plan.externals.get('dlopen') ?? 0) !== 0 || (plan.externals.get('dlmopen') ?? 0) !== 0;
}

/** Binds what the link itself provides; returns the symbols left for the executor to find. */
function bindLocally(plan: LinkPlan, runtime: ReadonlyMap<string, number>): GlobalSymbol[] {
  const wanted: GlobalSymbol[] = [];
  let sectionNames: Set<string> | undefined;
  for (let serial = 0, all = plan.table.list; serial < all.length; serial++) {
    const g = all[serial]!;
    if (g.state !== SYM_UNDEFINED || g.name === '') continue;
    if (g.name === DSO_HANDLE || g.name === GOT_SYMBOL) {
      g.state = SYM_SYNTHETIC;
      continue;
    }
    // (the regular expression only for names that can match: most are not __start_X or __stop_X)
    const bound = g.name.startsWith('__st') ? BOUNDARY.exec(g.name) : null;
    if (bound && (sectionNames ??= allocatedSectionNames(plan.table)).has(bound[2]!)) {
      // __start_X / __stop_X: the ends of the sections named X, which are laid out as one.
      g.state = SYM_SYNTHETIC;
      g.inGraph = true;
      let list = plan.boundaries.get(bound[2]!);
      if (!list) plan.boundaries.set(bound[2]!, (list = []));
      list.push(g);
      continue;
    }
    if (g.threadLocal) {
      // Looking a thread-local up would give this thread's copy (and make the executor's
      // dynamic linker allocate it dynamically, ruling out static TLS); the TLS library binds it.
      g.state = SYM_EXTERNAL;
      g.address = 0;
      continue;
    }
    const stand = runtime.get(g.name);
    if (stand !== undefined) {
      // dlopen bound to the runtime still means the program loads libraries.
      if (g.name === 'dlopen') plan.loadsLibraries = true;
      g.state = SYM_EXTERNAL;
      g.address = stand;
      continue;
    }
    wanted.push(g);
  }
  return wanted;
}

function undefinedSymbols(missing: readonly GlobalSymbol[]): JitmemError {
  const shown = missing
    .slice(0, 20)
    .map((g) => `${JSON.stringify(g.name)} (referenced by ${g.referrer?.name ?? 'an object'})`);
  return new JitmemError(
    'ERR_LINK_UNDEFINED_SYMBOL',
    `undefined symbol${missing.length > 1 ? 's' : ''}: ${shown.join(', ')}${missing.length > 20 ? ` and ${missing.length - 20} more` : ''}; no input object defines ${missing.length > 1 ? 'them' : 'it'} and the executor does not provide ${missing.length > 1 ? 'them' : 'it'} (load a library with --preload)`,
    { symbols: missing.map((g) => g.name), referrers: missing.map((g) => g.referrer?.name) },
  );
}
