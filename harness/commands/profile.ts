import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultOutput, type Command } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { checkProfileTarget, checkProfileTool, runProfile } from '../profile/profile.js';

const HELP = `usage: jitmem profile --tool flame|doctor|cpuprof [--out DIR] -- BENCH-FLAGS

Runs 'jitmem bench BENCH-FLAGS' under a profiler and prints where the profile is.

tools:
  flame     clinic flame: a flame graph of where CPU time goes (HTML page)
  doctor    clinic doctor: event-loop delay, CPU, memory and handles over time (HTML page);
            it diagnoses event-loop blocking, so profile a bench that awaits its executor
            (the shared or rpc mapper)
  cpuprof   V8's CPU profiler (node --cpu-prof): a .cpuprofile for Chrome DevTools or speedscope
Clinic is unmaintained: when it fails, the run is repeated under cpuprof and the output says why.
By default the profile covers the controller process (the bench); --target executor profiles
the executor processes the bench starts (one per shared or rpc transport), so both sides of a
transport can be seen.

options:
  --tool NAME   flame, doctor or cpuprof (required)
  --target T    controller (default), executor or both; executor and both need --tool cpuprof
  --out DIR     where the profile goes (default jitmem-reports/profile in the current directory)
  -h, --help    show this help

exit status: 0 when profiled; 1 when the profiled bench failed (cpuprof reports it; clinic
does not); 2 for bad flags.

examples:
  jitmem profile --tool flame -- --workload python --pattern load --mapper rpc --time 2000
  jitmem profile --tool cpuprof --target executor -- --workload python --pattern load --mapper shared
`;

export const profileCommand: Command = {
  name: 'profile',
  summary: 'run a bench under clinic flame/doctor or the V8 CPU profiler and print where the profile is',
  async run(argv, io) {
    const dashes = argv.indexOf('--');
    const own = dashes < 0 ? argv : argv.slice(0, dashes);
    const benchArgs = dashes < 0 ? [] : argv.slice(dashes + 1);
    let values;
    try {
      ({ values } = parseArgs({ args: own, options: { tool: { type: 'string' }, target: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
    } catch (err) {
      throw new JitmemError('ERR_INVALID_FLAG', `${(err as Error).message} (bench flags go after '--'; see 'jitmem profile --help')`, {});
    }
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    if (values.tool === undefined) throw new JitmemError('ERR_INVALID_FLAG', "--tool is required: flame, doctor or cpuprof (see 'jitmem profile --help')", { flag: '--tool' });
    const tool = checkProfileTool(values.tool);
    if (values.out === '') throw new JitmemError('ERR_INVALID_FLAG', '--out needs a directory; got ""', { flag: '--out' });
    const outDir = values.out !== undefined ? path.resolve(values.out) : defaultOutput('profile');
    const target = checkProfileTarget(values.target ?? 'controller');
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
