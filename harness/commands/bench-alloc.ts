import { flagCommand } from './command.js';
import { booleanFlag, invalidValue, listOf, positiveInteger, valueFlag } from './flags.js';
import { allocBudgets, runAllocBench } from '../component-benches/alloc-bench.js';
import { FIT_POLICIES } from '../../mappers/slab/free-range-index.js';
import { formatTable } from '../report/format-table.js';

const SPEC = {
  name: 'bench-alloc',
  usage: 'jitmem bench-alloc [options]',
  about: `Allocator microbenchmark: latency of one allocate+free pair in the slab allocator's
free-range index holding 1k, 10k and 100k free ranges, for each fit policy. Each figure is
printed beside its budget (p50 <= 1 us at 10k; 100k within 2x of 1k).`,
  flags: {
    policy: valueFlag(
      { value: 'LIST', help: 'fit policies, comma-separated (default first-fit,best-fit)' },
      listOf(FIT_POLICIES),
    ),
    sizes: valueFlag(
      {
        value: 'LIST',
        help: `free-range counts, comma-separated; k and m mean thousand and million
(default 1k,10k,100k)`,
      },
      counts,
    ),
    time: valueFlag({ value: 'MS', help: 'sampling time per cell in milliseconds (default 500)' }, positiveInteger),
    batch: valueFlag({ value: 'N', help: 'allocate+free pairs per sample (default 1000)' }, positiveInteger),
    seed: valueFlag({ value: 'N', help: 'seed of the free-range shapes (default 42)' }, positiveInteger),
    json: booleanFlag('print the rows as JSON instead of a table'),
    check: booleanFlag('exit with status 1 when a figure is over its budget'),
  },
  operands: false,
  footer: `exit status: 0 when measured (figures over budget or not, unless --check); 1 with --check
when a figure is over its budget; 2 for bad flags.`,
};

/** Counts as the help writes them, comma-separated: 1000, 10k, 1m. */
function counts(text: string, flag: string): number[] {
  return text.split(',').map((item) => {
    const m = /^(\d+)([km]?)$/i.exec(item.trim());
    const n = m ? Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : NaN;
    if (!Number.isSafeInteger(n) || n < 1)
      throw invalidValue(flag, 'positive counts such as 1000, 10k or 1m', item.trim());
    return n;
  });
}

export const benchAllocCommand = flagCommand(SPEC, async ({ values }, io) => {
  const { policy: policies, sizes } = values;
  const progress = (io.stderr as { isTTY?: boolean }).isTTY === true;
  const rows = await runAllocBench({
    ...(policies ? { policies } : {}),
    ...(sizes ? { sizes } : {}),
    ...(values.time ? { time: values.time } : {}),
    ...(values.batch ? { batch: values.batch } : {}),
    ...(values.seed ? { seed: values.seed } : {}),
    onCell: (policy, n) => {
      if (progress) io.stderr.write(`\r\x1b[Kmeasuring ${policy} at ${n} free ranges...`);
    },
  });
  if (progress) io.stderr.write('\r\x1b[K');
  const budgets = allocBudgets(rows);
  if (values.json) {
    io.stdout.write(JSON.stringify({ rows, budgets }, null, 2) + '\n');
  } else {
    io.stdout.write(
      'allocate+free pair latency in the free-range index (us; each sample the mean of ' +
        rows[0]!.pairsPerSample +
        ' pairs)\n\n',
    );
    io.stdout.write(
      formatTable(
        ['policy', 'free ranges', 'p50', 'p75', 'p99', 'mean', 'rme', 'samples'],
        rows.map((r) => [
          r.policy,
          String(r.freeRanges),
          r.p50.toFixed(3),
          r.p75.toFixed(3),
          r.p99.toFixed(3),
          r.mean.toFixed(3),
          `±${r.rme.toFixed(2)}%`,
          String(r.samples),
        ]),
      ),
    );
    io.stdout.write('\nbudgets\n\n');
    io.stdout.write(
      formatTable(
        ['figure', 'measured', 'budget', ''],
        budgets.map((b) => [b.label, b.figure, b.budget, b.ok ? 'ok' : 'OVER']),
      ),
    );
  }
  return values.check && budgets.some((b) => !b.ok) ? 1 : 0;
});
