import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { constants as osConstants } from 'node:os';
import type { Command, CommandIO } from './command.js';
import {
  booleanFlag,
  conflictingOptions,
  nonEmptyText,
  oneOf,
  parseFlags,
  printHelp,
  repeatedFlag,
  valueFlag,
} from './flags.js';
import { JitmemError, hex } from '../../core/errors.js';
import { checkRegularFile } from '../../core/files.js';
import { checkObjectInput } from '../../core/object-kind.js';
import { runAll } from '../../core/cleanup.js';
import type { MemoryMapper } from '../../mappers/memory-mapper.js';
import type { ExecutorSession } from '../../session/executor-session.js';
import type { ProgramRunResult, ProgramTarget } from '../../loader/program-target.js';
import type { PhaseTimes } from '../../loader/run-program.js';

import { DEFAULT_LLVM_EXECUTOR } from '../../session/llvm-executor-path.js';
import { inputBytes, withYoungGenerationFor } from '../young-generation.js';

/** Exit statuses are one byte: exit(257) is status 1. */
const EXIT_STATUS_MASK = 0xff;
const MAPPERS = ['inprocess', 'shared', 'rpc'] as const;
const EXECUTORS = ['jitmem', 'llvm'] as const;

/** jitmem run's flags: one entry per flag (its value, check, default and --help text). */
const RUN_FLAGS = {
  mapper: valueFlag(
    {
      value: 'M',
      help: `inprocess (run in this process), shared (POSIX shared memory with an
executor process) or rpc (content copied over the wire).
Default: inprocess, or shared when --executor is given.`,
    },
    oneOf(MAPPERS),
  ),
  executor: valueFlag(
    {
      value: 'E',
      help: `with shared or rpc: jitmem (default: jitmem's executor) or llvm
(LLVM's llvm-jitlink-executor)`,
    },
    oneOf(EXECUTORS),
  ),
  'llvm-executor': valueFlag(
    { value: 'P', help: `where llvm-jitlink-executor is (default ${DEFAULT_LLVM_EXECUTOR})` },
    nonEmptyText,
  ),
  preload: repeatedFlag(
    {
      value: 'LIB',
      help: `open the shared library LIB in the executor before linking; its
symbols come before the executor's own (repeatable), e.g.
--preload libexpat.so.1`,
    },
    nonEmptyText,
  ),
  entry: valueFlag({ value: 'SYM', help: 'call SYM as main (default main)' }, nonEmptyText),
  argv0: valueFlag(
    {
      value: 'NAME',
      help: `the program's argv[0] (default: the first FILE), for programs that
start themselves again, e.g. --argv0 /usr/bin/python3.11`,
    },
    nonEmptyText,
  ),
  'show-times': booleanFlag(`print the time of each phase on stderr when the program has ended:
read objects, resolve, layout, reserve, write, apply relocations,
initialize, run, deallocate`),
};

const RUN_SPEC = {
  name: 'run',
  usage: `jitmem run [--mapper inprocess|shared|rpc] [--executor jitmem|llvm] [--preload LIB]...
                  [--entry SYM] [--argv0 NAME] [--show-times] FILE... [-- ARGS...]`,
  about: `Links the x86-64 ELF objects and archives FILE... with jitmem's own linker, moves the program
through the chosen mapper into the executor, and runs main(argc, argv) there with argv[0] =
the first FILE (or --argv0 NAME) and the ARGS after "--". The program's stdin, stdout and stderr are yours.`,
  flags: RUN_FLAGS,
  operands: true,
  terminator: true,
  unknownOptionHint: 'program arguments go after "--"',
  footer: `exit status:
  the program's own status (main's return value or exit()'s argument, modulo 256);
  128 + N when the program was killed by signal N (a crash is reported on stderr with the
  faulting address and instruction when the executor could catch it);
  2 when the program could not be linked or loaded (bad input, an undefined or duplicate
  symbol, an unsupported relocation, a relocation overflow, a bad flag): stderr says what
  and where, with an error code in brackets.
SIGINT, SIGTERM and SIGHUP sent to jitmem run go to the program in its executor, and jitmem
run exits with its status; the executor never outlives jitmem run, SIGKILL included.`,
};

interface RunArgs {
  mapper: 'inprocess' | 'shared' | 'rpc';
  executor: 'jitmem' | 'llvm';
  llvmExecutor: string;
  preload: string[];
  entry: string | undefined;
  argv0: string | undefined;
  showTimes: boolean;
  files: string[];
  args: string[];
}

export function parseRunArgs(argv: readonly string[]): RunArgs | 'help' {
  const { values, operands: files, afterTerminator: args, help } = parseFlags(RUN_SPEC, argv);
  if (help) return 'help';
  const { executor, 'llvm-executor': llvmExecutor } = values;
  if (files.length === 0)
    throw new JitmemError(
      'ERR_LINK_NO_INPUT',
      "no object file or archive to link: name at least one (jitmem run FILE.o...); see 'jitmem run --help'",
      {},
    );
  const mapper = values.mapper ?? (executor !== undefined ? 'shared' : 'inprocess');
  if (mapper === 'inprocess' && executor !== undefined) {
    const why = 'the inprocess mapper runs the program in this process';
    throw conflictingOptions(`--executor ${executor} needs --mapper shared or rpc: ${why}`, ['--executor', '--mapper']);
  }
  if (llvmExecutor !== undefined && executor !== 'llvm')
    throw conflictingOptions('--llvm-executor goes with --executor llvm', ['--llvm-executor', '--executor']);
  return {
    mapper,
    executor: executor ?? 'jitmem',
    llvmExecutor: llvmExecutor ?? DEFAULT_LLVM_EXECUTOR,
    preload: values.preload,
    entry: values.entry,
    argv0: values.argv0,
    showTimes: values['show-times'],
    files,
    args,
  };
}

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function signalName(n: number): string {
  const entry = Object.entries(osConstants.signals).find(([, v]) => v === n);
  return entry ? entry[0] : `signal ${n}`;
}

export function describeCrash(r: ProgramRunResult): string {
  const sig = r.signal !== undefined ? signalName(r.signal) : 'a signal';
  if (r.faultAddress !== undefined) {
    return `the program crashed: ${sig} at address ${hex(r.faultAddress)} (instruction at ${hex(r.pc ?? 0)})`;
  }
  return `the program was killed by ${sig}${r.executorEnded ? ' (the executor process ended with it; it cannot say where)' : ''}`;
}

/** When start-up steps ended, in ms since the process started (performance.now()). */
export interface StartTimes {
  /** Node started, the CLI loaded and the run command's flags parsed. */
  readonly commandReady: number;
  /** The executor process spawned until its Setup arrived; absent in process. */
  readonly executorSetup?: number;
  /** The loader, linker and mapper modules loaded (while the executor started). */
  readonly modulesLoaded: number;
}

export function formatTimes(
  times: PhaseTimes,
  heading: string,
  phaseNames: ReadonlyArray<readonly [keyof PhaseTimes, string]>,
  start?: StartTimes,
): string {
  const width = Math.max(...phaseNames.map(([, n]) => n.length));
  const link = times.readObjects + times.resolve + times.layout + times.applyRelocations;
  const lines = phaseNames.map(([key, name]) => `  ${name.padEnd(width)}  ${times[key].toFixed(2).padStart(9)} ms`);
  lines.push(`  ${'link (read+resolve+layout+relocate)'}  ${link.toFixed(2)} ms`);
  if (start) {
    const ms = (v: number): string => `${v.toFixed(2).padStart(9)} ms`;
    lines.unshift(
      `  start: process start to command ready    ${ms(start.commandReady)}`,
      `  start: command ready to modules loaded   ${ms(start.modulesLoaded - start.commandReady)}`,
      ...(start.executorSetup !== undefined
        ? [`  start: executor spawn to Setup           ${ms(start.executorSetup)} (while the modules load)`]
        : []),
    );
  }
  return `${heading}\n${lines.join('\n')}\n`;
}

/** The modules a run needs, loaded once the executor (if any) is starting. */
async function loadRunModules(mapper: RunArgs['mapper']) {
  const [loader, targets, mapperModule] = await Promise.all([
    import('../../loader/run-program.js'),
    import('../../loader/program-target.js'),
    mapper === 'inprocess'
      ? import('../../mappers/in-process-memory-mapper.js').then((m) => ({ make: () => new m.InProcessMemoryMapper() }))
      : mapper === 'shared'
        ? import('../../mappers/shared-memory-mapper.js').then((m) => ({
            make: (s: ExecutorSession) => new m.SharedMemoryMapper(s),
          }))
        : import('../../mappers/rpc-copy-mapper.js').then((m) => ({
            make: (s: ExecutorSession) => new m.RpcCopyMapper(s),
          })),
  ]);
  return { loader, targets, makeMapper: mapperModule.make as (s?: ExecutorSession) => MemoryMapper };
}

/**
 * A program expects blocking stdio; Node leaves pipes it touched non-blocking, and the flag
 * belongs to the open file, which the executor shares. Set once the executor is spawned (the
 * addon's load then overlaps its start), before the program runs.
 */
async function withBlockingStdio<T>(modules: T): Promise<T> {
  const native = await import('../../native/index.js');
  for (const fd of [0, 1, 2]) {
    try {
      native.setBlocking(fd);
    } catch {
      // Not open: the program finds it closed, as it would natively.
    }
  }
  return modules;
}

/**
 * Starts the executor first, then loads the linker and loader while it starts (Node's module
 * loading is most of the start-up; the executor's spawn to Setup is a few ms that now hide in it).
 */
async function startRun(args: RunArgs) {
  let spawning: Promise<ExecutorSession> | undefined;
  let spawnedAt = 0;
  if (args.mapper !== 'inprocess') {
    const { ExecutorSession } = await import('../../session/executor-session.js');
    spawnedAt = performance.now();
    spawning = ExecutorSession.spawn({
      kind: args.executor,
      llvmExecutor: args.llvmExecutor,
      stdio: 'inherit',
      stdin: 'inherit',
    });
  }
  let setupAt = 0;
  const started = spawning?.then((s) => {
    setupAt = performance.now();
    return s;
  });
  // Settled together so that a failed import still closes an executor that did start.
  const [modules, session] = await Promise.allSettled([loadRunModules(args.mapper).then(withBlockingStdio), started]);
  const modulesLoaded = performance.now();
  if (modules.status === 'rejected') {
    if (session.status === 'fulfilled' && session.value) await session.value.close().catch(() => {});
    throw modules.reason;
  }
  if (session.status === 'rejected') throw session.reason;
  return {
    ...modules.value,
    session: session.value,
    modulesLoaded,
    executorSetup: session.value ? setupAt - spawnedAt : undefined,
  };
}

export const runCommand: Command = {
  name: 'run',
  async run(argv: string[], io: CommandIO): Promise<number> {
    const commandReady = performance.now();
    const args = parseRunArgs(argv);
    if (args === 'help') return printHelp(RUN_SPEC, io);
    // Every input checked before an executor starts: a FIFO, a device, source code, a shared
    // library or another machine's object is refused as every command refuses it.
    for (const lib of args.preload)
      if (lib.includes('/')) checkRegularFile(lib, 'library to preload', 'ERR_PRELOAD_UNREADABLE');
    for (const file of args.files) checkObjectInput(file);
    if (args.executor === 'llvm' && args.mapper !== 'inprocess' && !existsSync(args.llvmExecutor)) {
      throw new JitmemError(
        'ERR_LLVM_EXECUTOR_MISSING',
        `LLVM's executor is not at ${args.llvmExecutor}; install llvm-22 or name it with --llvm-executor`,
        { path: args.llvmExecutor },
      );
    }
    const started = await startRun(args);
    const { session, loader } = started;
    let forward: ((signal: NodeJS.Signals) => void) | undefined;
    let target: ProgramTarget;
    let mapper: MemoryMapper;
    if (session === undefined) {
      target = new started.targets.InProcessTarget();
      mapper = started.makeMapper();
    } else {
      // SIGINT, SIGTERM and SIGHUP go to the program, in the executor: it ends as it would
      // natively (or handles them), and this command exits with its status.
      forward = (signal: NodeJS.Signals): void => session.kill(signal);
      for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
      target = new started.targets.SessionTarget(session);
      mapper = started.makeMapper(session);
    }
    let crashed = false;
    try {
      const run = await withYoungGenerationFor(inputBytes(args.files), () =>
        loader.runProgram({
          inputs: args.files,
          target,
          mapper,
          args: args.args,
          preload: args.preload,
          ...(args.entry !== undefined ? { entry: args.entry } : {}),
          ...(args.argv0 !== undefined ? { programName: args.argv0 } : {}),
        }),
      );
      const r = run.result;
      if (args.showTimes) {
        io.stderr.write(
          formatTimes(
            run.times,
            `jitmem run: phases (mapper ${args.mapper}${args.mapper === 'inprocess' ? '' : `, executor ${args.executor}`}; ${run.stats.objects} objects, ${run.stats.relocations} relocations):`,
            loader.PHASE_NAMES,
            {
              commandReady,
              modulesLoaded: started.modulesLoaded,
              ...(started.executorSetup !== undefined ? { executorSetup: started.executorSetup } : {}),
            },
          ),
        );
      }
      if (r.outcome === 'crashed') {
        crashed = true;
        io.stderr.write(`jitmem run: ${describeCrash(r)}\n`);
        return r.status;
      }
      // As a shell sees it: the exit status is the low byte of the program's status.
      return r.status & EXIT_STATUS_MASK;
    } finally {
      if (forward) for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
      const executor = session;
      const failures = await runAll(
        crashed && executor
          ? // A program that crashed may have left the executor's locks held: do not wait on it.
            [() => executor.kill(), () => executor.exited()]
          : [() => mapper.close(), () => executor?.close()],
      );
      // The program's status is the result; a failure to clean up after it is said, not made the status.
      for (const err of failures)
        io.stderr.write(`jitmem run: cleaning up after the program failed: ${(err as Error).message}\n`);
    }
  },
};
