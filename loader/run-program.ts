import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { JitmemError } from '../core/errors.js';
import { alignUp } from '../core/checks.js';
import type { MemoryMapper } from '../mappers/memory-mapper.js';
import {
  SlabMemoryManager,
  type FinalizedAllocation,
  type InFlightAllocation,
  type SlabMemoryManagerOptions,
} from '../mappers/slab/slab-memory-manager.js';
import type { SlabKeeper } from '../mappers/slab/slab-keeper.js';
import { SpsWriter } from '../protocol/sps.js';
import {
  linkObjects,
  type LinkedProgram,
  type LinkInput,
  type LinkStats,
  type RelocatedProgram,
} from '../jitlink/link.js';
import { MappedInputs } from './mapped-inputs.js';
import type { ProgramRunResult, ProgramTarget } from './program-target.js';
import { buildExportLibrary } from './export-library.js';
import { cleanUp, failAfterCleanup } from './cleanup.js';
import { joinErrors } from '../core/cleanup.js';
import { loadTls, type LoadedTls } from './load-tls.js';

/**
 * Links a program, moves it into the executor through the slab memory manager (and so through
 * whichever mapper it sits on), runs it to its end and gives its memory back: what `jitmem
 * run` does, phase by phase, each timed.
 */

export interface PhaseTimes {
  /** Opening --preload libraries in the executor. */
  preload: number;
  readObjects: number;
  resolve: number;
  layout: number;
  /** The slab's allocate: reserve (when it needs a new slab) and working memory (transport). */
  reserve: number;
  /** Content into working memory. */
  write: number;
  applyRelocations: number;
  /** finalize: the mapper's initialize, with the alloc actions (EH frames) (transport). */
  initialize: number;
  /**
   * Making the program's symbols visible to the libraries it loads (programs that call dlopen):
   * building the export library, and what opening it took after the finalize was answered (it
   * travels beside the finalize; the time they overlap counts once, as building).
   */
  exportSymbols: number;
  run: number;
  /** Deallocation after the run (transport). */
  deallocate: number;
}

export const PHASE_NAMES: ReadonlyArray<[keyof PhaseTimes, string]> = [
  ['preload', 'preload libraries'],
  ['readObjects', 'read objects'],
  ['resolve', 'resolve symbols'],
  ['layout', 'layout'],
  ['reserve', 'reserve'],
  ['write', 'write'],
  ['applyRelocations', 'apply relocations'],
  ['initialize', 'initialize'],
  ['exportSymbols', 'export symbols'],
  ['run', 'run'],
  ['deallocate', 'deallocate'],
];

export interface RunProgramOptions {
  readonly inputs: readonly LinkInput[];
  readonly target: ProgramTarget;
  /**
   * The transport. Each program gets a slab memory manager of its own on it, released when
   * the program has ended; the mapper (and the executor behind it) can take the next one.
   */
  readonly mapper: MemoryMapper;
  readonly slab?: SlabMemoryManagerOptions;
  /**
   * Where the program's slab comes from and goes back to, for a controller that runs program
   * after program over one mapper: the next program lands on pages the executor has already
   * faulted in (no new reservation, no new shm object). Without it each program gets a slab of
   * its own, closed when the program has ended. A slab is closed, not given back, when linking
   * or running failed.
   */
  readonly keeper?: SlabKeeper;
  /** argv[0]; default: the first input's path. */
  readonly programName?: string;
  readonly args?: readonly string[];
  readonly entry?: string;
  readonly preload?: readonly string[];
  /**
   * Make the program's global symbols visible to libraries it dlopen()s, as --export-dynamic
   * does (CPython's extension modules need it). Default: when the program calls dlopen.
   * It goes through a small generated shared library, written to a temporary file that is
   * removed as soon as the executor has opened it (the executor must share this machine).
   */
  readonly exportSymbols?: boolean;
}

export interface ProgramRun {
  readonly result: ProgramRunResult;
  readonly times: PhaseTimes;
  readonly stats: LinkStats;
  readonly program: RelocatedProgram;
}

/** The AllocActionCallPair that registers an .eh_frame range at finalize and deregisters it at deallocation. */
function ehFrameActionPair(register: number, deregister: number, range: { start: number; end: number }) {
  const args = new SpsWriter(16).addrRange(range).finish();
  return { finalize: { fn: register, args }, dealloc: { fn: deregister, args } };
}

export interface LinkedAllocation {
  readonly memory: SlabMemoryManager;
  /** The symbols the program exported to the libraries it loads (empty when it loads none). */
  readonly exported: ReadonlyMap<string, number>;
  readonly allocation: FinalizedAllocation;
  readonly program: RelocatedProgram;
  readonly stats: LinkStats;
  /** The program's TLS library in the executor, closed after the program's memory is given back. */
  readonly tls: LoadedTls | undefined;
}

/**
 * Links `inputs` and makes them live in the executor (everything but running them). Errors
 * before the allocation leave the executor untouched; an error after it (a relocation that
 * overflows) abandons the allocation, so nothing of the program stays in the executor.
 */
export async function linkIntoExecutor(
  options: Omit<RunProgramOptions, 'args' | 'programName'>,
  times: PhaseTimes = emptyTimes(),
): Promise<LinkedAllocation> {
  const { target } = options;
  const inputs = new MappedInputs();
  const linked = await linkInputs(options, times, inputs);
  let t: number;

  // A program whose 32-bit references must reach some data, or the low 2 GiB, gets a slab of
  // its own size placed there.
  const slabOptions = linked.placement
    ? { ...options.slab, placement: linked.placement, granularity: alignUp(linked.layout.size, 1 << 20) }
    : options.slab;
  const memory = options.keeper
    ? options.keeper.acquire(slabOptions)
    : new SlabMemoryManager(options.mapper, slabOptions);
  t = performance.now();
  let allocation;
  try {
    allocation = await memory.allocate(linked.graph);
  } catch (err) {
    return failAfterCleanup(err, () => memory.close());
  }
  times.reserve = performance.now() - t;
  let program: RelocatedProgram;
  let tls: LoadedTls | undefined;
  try {
    t = performance.now();
    allocation.writeContent();
    times.write = performance.now() - t;
    // Thread-local storage goes to the executor's dynamic linker first: relocation needs to know where it put it.
    if (linked.usesTls) tls = await loadTls(target, linked.tlsImage(allocation.base, allocation.layout));
    t = performance.now();
    program = linked.relocate(
      allocation.base,
      allocation.segments.map((s) => s.workingMemory),
      allocation.layout,
      tls?.binding,
    );
    times.applyRelocations = performance.now() - t;
    // The inputs' bytes have all been read (content copied, relocations applied).
    inputs.checkUnchanged();
  } catch (err) {
    return failAfterCleanup(
      err,
      () => allocation.abandon(),
      () => closeTls(tls),
      () => memory.close(),
    );
  }
  const eh = target.ehFrameActions();
  if (program.ehFrame && eh) allocation.actions.push(ehFrameActionPair(eh.register, eh.deregister, program.ehFrame));
  const { finalized, exported } = await finalizeAndExport(
    target,
    allocation,
    program,
    options.exportSymbols ?? linked.loadsLibraries,
    times,
    { memory, tls },
  );
  return { memory, exported, allocation: finalized, program, stats: linked.stats, tls };
}

/**
 * Finalizes a program's allocation and, for a program that loads libraries, opens its export
 * library. The export library is built and sent while the executor finalizes: its building
 * overlaps the executor's work, and its open follows the finalize on the wire instead of a round
 * trip after it. An executor opens it after the finalize (or beside it, LLVM's, which handles
 * calls on threads): it holds only absolute symbols, so nothing of it runs before the program
 * does. On failure nothing of the program stays: the export library is closed again, the
 * allocation given back, its TLS closed and the slab closed.
 */
async function finalizeAndExport(
  target: ProgramTarget,
  allocation: InFlightAllocation,
  program: RelocatedProgram,
  exportSymbols: boolean,
  times: PhaseTimes,
  owned: { readonly memory: SlabMemoryManager; readonly tls: LoadedTls | undefined },
): Promise<{ finalized: FinalizedAllocation; exported: Map<string, number> }> {
  const { memory, tls } = owned;
  const t0 = performance.now();
  let finalizedAt = t0;
  const finalizing = allocation.finalize().finally(() => void (finalizedAt = performance.now()));
  // Settled below, after a turn: a failure meanwhile is not an unhandled rejection.
  finalizing.catch(() => undefined);
  let exporting: Promise<Map<string, number>> | undefined;
  let builtAt = t0;
  let buildMs = 0;
  if (exportSymbols) {
    // The channel sends what a turn queued when the turn ends: the finalize leaves now, before the building.
    await nextTurn();
    const b = performance.now();
    try {
      const prepared = prepareExports(program);
      if (prepared) exporting = loadPreparedExports(target, prepared);
    } catch (err) {
      exporting = Promise.reject(err);
    }
    builtAt = performance.now();
    buildMs = builtAt - b;
  }
  const [fin, exp] = await Promise.allSettled([finalizing, exporting ?? Promise.resolve(new Map<string, number>())]);
  const ended = performance.now();
  // Phases that add up to the wall time: the export library's are its building and what its open
  // took after the finalize was answered; the rest is the finalize's.
  times.exportSymbols = buildMs + (exporting ? Math.max(0, ended - Math.max(finalizedAt, builtAt)) : 0);
  times.initialize = ended - t0 - times.exportSymbols;
  if (fin.status === 'rejected') {
    return failAfterCleanup(
      exp.status === 'rejected' ? joinErrors(fin.reason, [exp.reason]) : fin.reason,
      () => (exp.status === 'fulfilled' && exporting ? target.retireExports(exp.value) : Promise.resolve()),
      () => closeTls(tls),
      () => memory.close(),
    );
  }
  const finalized = fin.value;
  if (exp.status === 'rejected') {
    return failAfterCleanup(
      exp.reason,
      () => memory.deallocate([finalized]),
      () => closeTls(tls),
      () => memory.close(),
    );
  }
  return { finalized, exported: exp.value };
}

/** Preloads the libraries and reads, resolves and lays out the inputs (mapped), timed into `times`. */
async function linkInputs(
  options: Omit<RunProgramOptions, 'args' | 'programName'>,
  times: PhaseTimes,
  inputs: MappedInputs,
): Promise<LinkedProgram> {
  const { target } = options;
  if (options.keeper && options.keeper.mapper !== options.mapper) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      "runProgram: the slab keeper's mapper is not the mapper given; a kept slab would move the program through another transport",
      {},
    );
  }
  const t = performance.now();
  for (const lib of options.preload ?? []) await target.preload(lib);
  times.preload = performance.now() - t;

  const linked = await linkObjects(options.inputs, {
    pageSize: target.pageSize,
    ...(options.entry !== undefined ? { entry: options.entry } : {}),
    lookup: (names) => target.lookup(names),
    runtimeSymbols: target.runtimeSymbols(),
    readFile: inputs.read,
  });
  times.readObjects = linked.times.readObjects;
  times.resolve = linked.times.resolve;
  times.layout = linked.times.layout;
  return linked;
}

async function closeTls(tls: LoadedTls | undefined): Promise<void> {
  if (tls !== undefined) await tls.close();
}

export function emptyTimes(): PhaseTimes {
  return {
    preload: 0,
    readObjects: 0,
    resolve: 0,
    layout: 0,
    reserve: 0,
    write: 0,
    applyRelocations: 0,
    initialize: 0,
    exportSymbols: 0,
    run: 0,
    deallocate: 0,
  };
}

/** Resolves after the callbacks queued for the end of this turn (a channel's send of its queued frames). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve));
}

/** A program's export library, written to a temporary file, with the symbols it holds. */
interface PreparedExports {
  readonly file: string;
  readonly exported: Map<string, number>;
}

/** The program's export library, or undefined when it has no symbol to export (then no library is opened). */
function prepareExports(program: RelocatedProgram): PreparedExports | undefined {
  const symbols = program.exports();
  if (symbols.length === 0) return undefined;
  const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const file = path.join(tmpdir(), `jitmem-exports-${tag}.so`);
  writeFileSync(file, buildExportLibrary(`jitmem-exports-${tag}.so`, symbols), { mode: 0o600 });
  return { file, exported: new Map(symbols.map((s) => [s.name, s.address])) };
}

/** Opens the export library in the executor, and removes its file once it has been opened (or refused). */
async function loadPreparedExports(target: ProgramTarget, prepared: PreparedExports): Promise<Map<string, number>> {
  try {
    await target.loadExports(prepared.file, prepared.exported);
  } finally {
    rmSync(prepared.file, { force: true });
  }
  return prepared.exported;
}

/** Links, loads, runs and unloads a program; resolves with how it ended and the phase times. */
export async function runProgram(options: RunProgramOptions): Promise<ProgramRun> {
  const times = emptyTimes();
  const first = options.inputs[0];
  if (first === undefined)
    throw new JitmemError('ERR_LINK_NO_INPUT', 'nothing to link: give at least one object file or archive', {});
  const { memory, exported, allocation, program, stats, tls } = await linkIntoExecutor(options, times);
  const argv = [options.programName ?? (typeof first === 'string' ? first : first.path), ...(options.args ?? [])];
  let t = performance.now();
  let result: ProgramRunResult;
  try {
    result = await options.target.run(program.entry, argv, program.init, program.fini);
  } catch (err) {
    return failAfterCleanup(
      err,
      () => (exported.size > 0 ? options.target.retireExports(exported) : Promise.resolve()),
      () => closeTls(tls),
      () => memory.close(),
    );
  } finally {
    times.run = performance.now() - t;
  }
  // The executor is gone when the program ended it (exit() under LLVM's executor): nothing to give back.
  if (!result.executorEnded) {
    t = performance.now();
    try {
      await memory.deallocate([allocation]);
      times.deallocate = performance.now() - t;
    } catch (err) {
      return failAfterCleanup(
        err,
        () => (exported.size > 0 ? options.target.retireExports(exported) : Promise.resolve()),
        () => closeTls(tls),
        () => memory.close(),
      );
    }
    await cleanUp(
      () => (exported.size > 0 ? options.target.retireExports(exported) : Promise.resolve()),
      () => closeTls(tls),
      () => (options.keeper ? options.keeper.giveBack(memory) : memory.close()),
    );
  }
  return { result, times, stats, program };
}
