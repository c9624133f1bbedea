import path from 'node:path';
import { defaultOutput, type Command } from './command.js';
import { nonEmptyText, oneOf, parseFlags, printHelp, requiredFlag, valueFlag } from './flags.js';
import { PROFILE_TARGETS, PROFILE_TOOLS, runProfile } from '../profile/profile.js';

const SPEC = {
  name: 'profile',
  usage: 'jitmem profile --tool flame|doctor|cpuprof [--out DIR] -- BENCH-FLAGS',
  about: `Runs 'jitmem bench BENCH-FLAGS' under a profiler and prints where the profile is.

tools:
  flame     clinic flame: a flame graph of where CPU time goes (HTML page)
  doctor    clinic doctor: event-loop delay, CPU, memory and handles over time (HTML page);
            it diagnoses event-loop blocking, so profile a bench that awaits its executor
            (the shared or rpc mapper)
  cpuprof   V8's CPU profiler (node --cpu-prof): a .cpuprofile for Chrome DevTools or speedscope
Clinic is unmaintained: when it fails, the run is repeated under cpuprof and the output says why.
By default the profile covers the controller process (the bench); --target executor profiles
the executor processes the bench starts (one per shared or rpc transport), so both sides of a
transport can be seen.`,
  flags: {
    tool: requiredFlag({ value: 'NAME', help: 'flame, doctor or cpuprof (required)' }, oneOf(PROFILE_TOOLS), 'flame, doctor or cpuprof'),
    target: valueFlag(
      { value: 'T', help: 'controller (default), executor or both; executor and both need --tool cpuprof' },
      oneOf(PROFILE_TARGETS),
      'controller',
    ),
    out: valueFlag({ value: 'DIR', help: 'where the profile goes (default jitmem-reports/profile in the current directory)' }, nonEmptyText),
  },
  // The bench's own flags follow `--`, untouched.
  operands: false,
  terminator: true,
  unknownOptionHint: "bench flags go after '--'",
  footer: `exit status: 0 when profiled; 1 when the profiled bench failed (cpuprof reports it; clinic
does not); 2 for bad flags.

examples:
  jitmem profile --tool flame -- --workload python --pattern load --mapper rpc --time 2000
  jitmem profile --tool cpuprof --target executor -- --workload python --pattern load --mapper shared`,
};

export const profileCommand: Command = {
  name: 'profile',
  summary: 'run a bench under clinic flame/doctor or the V8 CPU profiler and print where the profile is',
  async run(argv, io) {
    const { values, afterTerminator: benchArgs, help } = parseFlags(SPEC, argv);
    if (help) return printHelp(SPEC, io);
    const { tool, target } = values;
    const outDir = values.out !== undefined ? path.resolve(values.out) : defaultOutput('profile');
    const result = await runProfile({ tool, outDir, args: benchArgs, target });
    if (result.fallbackReason) io.stderr.write(`jitmem profile: ${result.fallbackReason}; profiled with V8's CPU profiler instead\n`);
    if (result.exitStatus !== undefined && result.exitStatus !== 0) io.stderr.write(`jitmem profile: the profiled bench exited with status ${result.exitStatus}\n`);
    const what = result.tool === 'flame' ? 'flame graph' : result.tool === 'doctor' ? 'clinic doctor report' : 'CPU profile (open in Chrome DevTools > Performance, or speedscope)';
    if (result.executorFiles) {
      if (result.controllerFile) io.stdout.write(`\ncontroller ${what}: ${result.controllerFile}\n`);
      const n = result.executorFiles.length;
      io.stdout.write(`\nexecutor CPU profile${n > 1 ? `s, one per executor process (${n}, largest first)` : ''}:\n${result.executorFiles.map((f) => `  ${f}\n`).join('')}`);
    } else {
      io.stdout.write(`\n${what}: ${result.file}\n`);
    }
    return result.exitStatus === undefined || result.exitStatus === 0 ? 0 : 1;
  },
};
