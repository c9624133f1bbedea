import path from 'node:path';
import { defaultOutput, flagCommand } from './command.js';
import { nonEmptyText, oneOf, requiredFlag, valueFlag } from './flags.js';
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
The profile covers the controller process (the bench). jitmem's executor is a native program:
profile it with perf (perf record -g -p PID on the jitmem-executor process the bench starts).`,
  flags: {
    tool: requiredFlag(
      { value: 'NAME', help: 'flame, doctor or cpuprof (required)' },
      oneOf(PROFILE_TOOLS),
      'flame, doctor or cpuprof',
    ),
    target: valueFlag(
      {
        value: 'T',
        help: 'controller (default); executor and both are refused, with how to profile the native executor',
      },
      oneOf(PROFILE_TARGETS),
      'controller',
    ),
    out: valueFlag(
      { value: 'DIR', help: 'where the profile goes (default jitmem-reports/profile in the current directory)' },
      nonEmptyText,
    ),
  },
  // The bench's own flags follow `--`, untouched.
  operands: false,
  terminator: true,
  unknownOptionHint: "bench flags go after '--'",
  footer: `exit status: 0 when profiled; 1 when the profiled bench failed (cpuprof reports it; clinic
does not); 2 for bad flags.

examples:
  jitmem profile --tool flame -- --workload python --pattern load --mapper rpc --time 2000
  jitmem profile --tool cpuprof -- --workload python --pattern load --mapper shared`,
};

export const profileCommand = flagCommand(SPEC, async ({ values, afterTerminator: benchArgs }, io) => {
  const { tool, target } = values;
  const outDir = values.out !== undefined ? path.resolve(values.out) : defaultOutput('profile');
  const result = await runProfile({ tool, outDir, args: benchArgs, target });
  if (result.fallbackReason)
    io.stderr.write(`jitmem profile: ${result.fallbackReason}; profiled with V8's CPU profiler instead\n`);
  if (result.exitStatus !== undefined && result.exitStatus !== 0)
    io.stderr.write(`jitmem profile: the profiled bench exited with status ${result.exitStatus}\n`);
  const what =
    result.tool === 'flame'
      ? 'flame graph'
      : result.tool === 'doctor'
        ? 'clinic doctor report'
        : 'CPU profile (open in Chrome DevTools > Performance, or speedscope)';
  io.stdout.write(`\n${what}: ${result.file}\n`);
  return result.exitStatus === undefined || result.exitStatus === 0 ? 0 : 1;
});
