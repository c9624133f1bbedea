import { flagCommand } from './command.js';
import { booleanFlag, positiveInteger, valueFlag } from './flags.js';
import { BUDGET_MS, runRemoteBench } from '../component-benches/remote-bench.js';
import { STARTUP_BUDGET, runStartupBench } from '../component-benches/startup-bench.js';
import { runWarmPagesBench } from '../component-benches/warm-pages-bench.js';

const SPEC = {
  name: 'bench-remote',
  usage: 'jitmem bench-remote [options]',
  about: `What the executor boundary costs: (1) the round trip of a call that does nothing, with the
controller and the executor on the same CPU and on different CPUs; (2) a CPython-shaped load
(177 graphs, 6.66 MB of content, 0.28 MB zero-fill) through each mapper, sequential and
pipelined, as extra time over in-process beside the budgets (shared memory <= ${BUDGET_MS.shared} ms,
RPC copy <= ${BUDGET_MS.rpc} ms); (3) \`jitmem run\` of a trivial object in process and through shared
memory beside \`node -e 0\`, whole processes in turn (budgets ${STARTUP_BUDGET.inprocess}x and ${STARTUP_BUDGET.shared}x); (4) warm
pages: an 8 MiB slab written again after its pages were kept, given back with MADV_DONTNEED,
MADV_REMOVE or MADV_FREE, or replaced by a fresh shared object (time and minor faults per
iteration). Run it on a quiet machine; it takes about a minute.`,
  flags: {
    iterations: valueFlag(
      { value: 'N', help: 'loads per mapper and mode, after 8 warm-up loads (default 9)' },
      positiveInteger,
    ),
    'startup-rounds': valueFlag(
      { value: 'N', help: 'rounds of the three start-up commands, each round in turn (default 15)' },
      positiveInteger,
    ),
    calls: valueFlag({ value: 'N', help: 'no-op calls per CPU placement (default 5000)' }, positiveInteger),
    json: booleanFlag('print the figures as JSON on stdout (the running commentary goes to stderr)'),
    'check-budgets': booleanFlag('exit 1 when a pipelined load is over its budget'),
  },
  operands: false,
  footer: `exit status: 0 when measured (over budget or not, unless --check-budgets); 1 with
--check-budgets when a budget is exceeded; 2 for bad flags.`,
};

export const benchRemoteCommand = flagCommand(SPEC, async ({ values }, io) => {
  const { iterations, calls: latencyCalls } = values;
  const out = values.json ? io.stderr : io.stdout;
  const result = await runRemoteBench({
    ...(iterations ? { iterations } : {}),
    ...(latencyCalls ? { latencyCalls } : {}),
    write: (line) => out.write(line + '\n'),
  });
  out.write('\n');
  const startupRounds = values['startup-rounds'];
  const startup = await runStartupBench({
    ...(startupRounds ? { rounds: startupRounds } : {}),
    write: (line) => out.write(line + '\n'),
  });
  out.write('\n');
  const warmPages = runWarmPagesBench({ write: (line) => out.write(line + '\n') });
  if (values.json)
    io.stdout.write(
      JSON.stringify({ ...result, budgetsMs: BUDGET_MS, startup, startupBudget: STARTUP_BUDGET, warmPages }, null, 2) +
        '\n',
    );
  const over = result.extraMs.shared > BUDGET_MS.shared || result.extraMs.rpc > BUDGET_MS.rpc;
  return values['check-budgets'] && over ? 1 : 0;
});
