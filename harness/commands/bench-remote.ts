import { parseCommandArgs, type Command } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { BUDGET_MS, runRemoteBench } from '../component-benches/remote-bench.js';

const HELP = `usage: jitmem bench-remote [options]

What the executor boundary costs: (1) the round trip of a call that does nothing, with the
controller and the executor on the same CPU and on different CPUs; (2) a CPython-shaped load
(177 graphs, 6.66 MB of content, 0.28 MB zero-fill) through each mapper, sequential and
pipelined, as extra time over in-process beside the budgets (shared memory <= ${BUDGET_MS.shared} ms,
RPC copy <= ${BUDGET_MS.rpc} ms). Run it on a quiet machine; it takes about a minute.

options:
  --iterations N    loads per mapper and mode, after 8 warm-up loads (default 9)
  --calls N         no-op calls per CPU placement (default 5000)
  --json            print the figures as JSON on stdout (the running commentary goes to stderr)
  --check-budgets   exit 1 when a pipelined load is over its budget
  -h, --help        show this help

exit status: 0 when measured (over budget or not, unless --check-budgets); 1 with
--check-budgets when a budget is exceeded; 2 for bad flags.
`;

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new JitmemError('ERR_INVALID_FLAG', `${flag} must be a positive integer; got ${JSON.stringify(text)}`, { flag, value: text });
  return n;
}

export const benchRemoteCommand: Command = {
  name: 'bench-remote',
  summary: 'executor round trip, and a CPython-shaped load through each mapper beside its budget',
  async run(argv, io) {
    const { values } = parseCommandArgs('bench-remote', {
      args: argv,
      options: {
        iterations: { type: 'string' },
        calls: { type: 'string' },
        json: { type: 'boolean' },
        'check-budgets': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    const iterations = positiveInt('--iterations', values.iterations);
    const latencyCalls = positiveInt('--calls', values.calls);
    const out = values.json ? io.stderr : io.stdout;
    const result = await runRemoteBench({
      ...(iterations ? { iterations } : {}),
      ...(latencyCalls ? { latencyCalls } : {}),
      write: (line) => out.write(line + '\n'),
    });
    if (values.json) io.stdout.write(JSON.stringify({ ...result, budgetsMs: BUDGET_MS }, null, 2) + '\n');
    const over = result.extraMs.shared > BUDGET_MS.shared || result.extraMs.rpc > BUDGET_MS.rpc;
    return values['check-budgets'] && over ? 1 : 0;
  },
};
