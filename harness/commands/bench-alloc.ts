import { parseCommandArgs, type Command } from './command.js';
import { allocBudgets, runAllocBench } from '../component-benches/alloc-bench.js';
import { checkFitPolicy } from '../../mappers/slab/free-range-index.js';
import { JitmemError } from '../../core/errors.js';
import { formatTable } from '../report/format-table.js';

const HELP = `usage: jitmem bench-alloc [options]

Allocator microbenchmark: latency of one allocate+free pair in the slab allocator's
free-range index holding 1k, 10k and 100k free ranges, for each fit policy. Each figure is
printed beside its budget (p50 <= 1 us at 10k; 100k within 2x of 1k).

options:
  --policy LIST     fit policies, comma-separated (default first-fit,best-fit)
  --sizes LIST      free-range counts, comma-separated; k and m mean thousand and million
                    (default 1k,10k,100k)
  --time MS         sampling time per cell in milliseconds (default 500)
  --batch N         allocate+free pairs per sample (default 1000)
  --seed N          seed of the free-range shapes (default 42)
  --json            print the rows as JSON instead of a table
  --check           exit with status 1 when a figure is over its budget
  -h, --help        show this help

exit status: 0 when measured (figures over budget or not, unless --check); 1 with --check
when a figure is over its budget; 2 for bad flags.
`;

/** A count as the help writes it: 1000, 10k, 1m. */
function count(flag: string, text: string): number {
  const m = /^(\d+)([km]?)$/i.exec(text);
  const n = m ? Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new JitmemError('ERR_INVALID_FLAG', `${flag} takes positive counts such as 1000, 10k or 1m; got ${JSON.stringify(text)}`, { flag, value: text });
  return n;
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new JitmemError('ERR_INVALID_FLAG', `${flag} must be a positive integer; got ${JSON.stringify(text)}`, { flag });
  return n;
}

export const benchAllocCommand: Command = {
  name: 'bench-alloc',
  summary: 'allocator microbenchmark: allocate+free latency at 1k/10k/100k free ranges',
  async run(argv, io) {
    const { values } = parseCommandArgs('bench-alloc', {
      args: argv,
      options: {
        policy: { type: 'string' },
        sizes: { type: 'string' },
        time: { type: 'string' },
        batch: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    const policies = values.policy?.split(',').map((p) => checkFitPolicy(p.trim()));
    const sizes = values.sizes?.split(',').map((s) => count('--sizes', s.trim()));
    const progress = (io.stderr as { isTTY?: boolean }).isTTY === true;
    const rows = await runAllocBench({
      ...(policies ? { policies } : {}),
      ...(sizes ? { sizes } : {}),
      ...(values.time ? { time: positiveInt('--time', values.time) } : {}),
      ...(values.batch ? { batch: positiveInt('--batch', values.batch) } : {}),
      ...(values.seed ? { seed: positiveInt('--seed', values.seed) } : {}),
      onCell: (policy, n) => {
        if (progress) io.stderr.write(`\r\x1b[Kmeasuring ${policy} at ${n} free ranges...`);
      },
    });
    if (progress) io.stderr.write('\r\x1b[K');
    const budgets = allocBudgets(rows);
    if (values.json) {
      io.stdout.write(JSON.stringify({ rows, budgets }, null, 2) + '\n');
    } else {
      io.stdout.write('allocate+free pair latency in the free-range index (us; each sample the mean of ' + rows[0]!.pairsPerSample + ' pairs)\n\n');
      io.stdout.write(
        formatTable(
          ['policy', 'free ranges', 'p50', 'p75', 'p99', 'mean', 'rme', 'samples'],
          rows.map((r) => [r.policy, String(r.freeRanges), r.p50.toFixed(3), r.p75.toFixed(3), r.p99.toFixed(3), r.mean.toFixed(3), `±${r.rme.toFixed(2)}%`, String(r.samples)]),
        ),
      );
      io.stdout.write('\nbudgets\n\n');
      io.stdout.write(formatTable(['figure', 'measured', 'budget', ''], budgets.map((b) => [b.label, b.figure, b.budget, b.ok ? 'ok' : 'OVER'])));
    }
    return values.check && budgets.some((b) => !b.ok) ? 1 : 0;
  },
};
