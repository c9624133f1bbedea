import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { JitmemError } from '../core/errors.js';
import type { ElfObject } from '../objects/elf-object.js';
import { LinkPlan } from './link-plan.js';
import { LinkedProgram } from './linked-program.js';
import { buildEntries } from './passes/build-entries.js';
import { layOut } from './passes/lay-out.js';
import { planSections, sectionGroups } from './passes/plan-sections.js';
import { planTlsImage } from './passes/plan-tls.js';
import { readInputs, type InputReader, type LinkInput } from './passes/read-inputs.js';
import { loadObjects, resolveSymbols } from './passes/resolve-symbols.js';
import { scanRelocations } from './passes/scan-relocations.js';
import { GOT_SYMBOL, SYM_SYNTHETIC, SymbolTable } from './symbol-table.js';

/**
 * jitmem's static linker for x86-64 ELF relocatable objects and archives, for code that runs
 * in an executor: the objects become one link graph (their allocated sections, a GOT, PLT
 * stubs, one merged .eh_frame, the linker's own data for COMMON symbols), which the slab
 * memory manager lays out and allocates like any other graph. Every check that needs no
 * address (relocation types, symbols, bounds) runs before anything is allocated; only a value
 * that does not fit its field can fail once addresses are known, and then the caller abandons
 * the allocation, so the executor never sees a half-linked program.
 *
 * linkObjects is a driver over named passes that fill one LinkPlan (the shape of mold's
 * elf/main.cc, and of LLVM's link_ELF_x86_64 pass list):
 *   1 read inputs        files, archive indices, ELF headers, symbol tables
 *   2 resolve symbols    the symbol table, archive members on demand, the executor's symbols
 *                        in one batched lookup
 *   3 plan sections      graph sections, merged .eh_frame and __start_X sections, init/fini
 *                        arrays, relocation lists, the linker's own data; the TLS image
 *   4 scan relocations   refuse what cannot be linked; GOT, stub, TLS GOT and relaxation
 *                        decisions
 *   5 build entries      the GOT, the TLS GOT and the PLT stubs
 *   6 lay out            BasicLayout, size and placement checks
 *   7 relocate           (LinkedProgram.relocate, once the slab has given the graph an
 *                        address) assign addresses, fill GOT and stubs, apply relocations
 * x86-64 knowledge (relocation types, relaxations, stubs, field writes) is in x86-64/.
 */

export type { InputReader, LinkInput } from './passes/read-inputs.js';
export type { LinkStats, LinkTimes, TlsBinding, TlsImage } from './link-plan.js';
export { LinkedProgram, type ExportedSymbol, type RelocatedProgram } from './linked-program.js';

export interface LinkOptions {
  /** The executor's page size. */
  readonly pageSize: number;
  /** The symbol to call as main (default "main"). */
  readonly entry?: string;
  /**
   * Finds symbols the objects do not define, in the executor: one batched call, an address or
   * 0 per name.
   */
  readonly lookup: (names: readonly string[]) => Promise<readonly number[]>;
  /**
   * Executor functions that stand in for the process's own when the objects call them
   * (exit, atexit, __cxa_atexit run by the program runner, so that exit() ends the program
   * rather than the executor).
   */
  readonly runtimeSymbols?: ReadonlyMap<string, number>;
  /** How an input given by path becomes bytes (default: read into memory). */
  readonly readFile?: InputReader;
}

/** Reads, resolves and lays out a program; see LinkedProgram.relocate for the rest. */
export async function linkObjects(inputs: readonly LinkInput[], options: LinkOptions): Promise<LinkedProgram> {
  if (inputs.length === 0)
    throw new JitmemError('ERR_LINK_NO_INPUT', 'nothing to link: give at least one object file or archive', {});
  const plan = new LinkPlan(new SymbolTable());
  const t0 = performance.now();
  const plain = readInputs(inputs, plan.table, options.readFile);
  const t1 = performance.now();
  const memberTime = loadObjects(plan, plain);
  await resolveSymbols(plan, {
    entry: options.entry ?? 'main',
    lookup: options.lookup,
    runtimeSymbols: options.runtimeSymbols ?? new Map(),
  });
  const t2 = performance.now();
  const groups = sectionGroups();
  planSections(plan, groups, options.pageSize);
  planTlsImage(plan);
  const needGot = plan.table.symbols.get(GOT_SYMBOL)?.state === SYM_SYNTHETIC;
  const scanner = scanRelocations(plan, needGot);
  buildEntries(plan, groups, scanner.needGot);
  const first = inputs[0]!;
  layOut(plan, path.basename(typeof first === 'string' ? first : first.path), options.pageSize, scanner);
  const t3 = performance.now();
  // Members are read while resolving (on demand): their reading counts as reading.
  Object.assign(plan.times, { readObjects: t1 - t0 + memberTime, resolve: t2 - t1 - memberTime, layout: t3 - t2 });
  return new LinkedProgram(plan);
}

/**
 * The objects a link of `inputs` takes, in load order: the plain ones, then the archive
 * members their symbols pull (resolved among the inputs alone; nothing is asked of an
 * executor). What a workload's `load` pattern moves for a program linked from archives.
 */
export function objectsOfLink(inputs: readonly LinkInput[]): ElfObject[] {
  const plan = new LinkPlan(new SymbolTable());
  loadObjects(plan, readInputs(inputs, plan.table, undefined));
  return plan.table.objects.map((o) => o.elf);
}
