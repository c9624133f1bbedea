import { flagCommand } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { booleanFlag, invalidValue, listOf, positiveInteger, valueFlag } from './flags.js';
import { allocBudgets, runAllocBench } from '../component-benches/alloc-bench.js';
import { FIT_POLICIES } from '../../mappers/slab/free-range-index.js';
import { formatTable } from '../report/format-table.js';

/**
 * The largest free-range count: the index holds every range (about 120 bytes each with the
 * allocations that make them: 1m took 116 MB of RSS here), so a count is memory; past this a
 * typo (10000m) would take gigabytes before failing.
 */
const MAX_FREE_RANGES = 2_000_000;
const MAX_BATCH = 1_000_000;
const MAX_ROUNDS = 1000;

/** A value past a flag's limit: a code of its own, so a script can tell it from a malformed value. */
function tooLarge(flag: string, text: string, limit: string): JitmemError {
  return new JitmemError(
    'ERR_OPTION_VALUE_TOO_LARGE',
    `${flag} ${JSON.stringify(text)} is above the limit of ${limit}`,
    {
      option: flag,
      value: text,
      limit,
    },
  );
}

/** A flag's positive integer up to `max`; at least `least.min` when given, or refused with its reason. */
function countUpTo(max: number, least?: { readonly min: number; readonly expected: string }) {
  return (text: string, flag: string): number => {
    const n = positiveInteger(text, flag);
    if (least && n < least.min) throw invalidValue(flag, least.expected, text);
    if (n > max) throw tooLarge(flag, text, String(max));
    return n;
  };
}

const SPEC = {
  name: 'bench-alloc',
  usage: 'jitmem bench-alloc [options]',
  about: `Allocator microbenchmark: latency of one allocate+free pair in the slab allocator's
free-range index holding 1k, 10k and 100k free ranges, for each fit policy. The sizes of a
policy are measured in interleaved rounds (1k 10k 100k, 100k 10k 1k, ...), so that a slower
spell of the machine falls on every size alike. Each budget (p50 <= 1 us at 10k; 100k within 2x
of 1k) is judged by its 95% interval over the rounds: ok when the whole interval is within it,
OVER when the whole interval is past it, otherwise undecided.`,
  flags: {
    policy: valueFlag(
      { value: 'LIST', help: 'fit policies, comma-separated (default first-fit,best-fit)' },
      listOf(FIT_POLICIES),
    ),
    sizes: valueFlag(
      {
        value: 'LIST',
        help: `free-range counts, comma-separated; k and m mean thousand and million
(default 1k,10k,100k; at most 2m, about 250 MB of index)`,
      },
      counts,
    ),
    time: valueFlag(
      { value: 'MS', help: 'sampling time per policy and size in milliseconds, over all rounds (default 500)' },
      positiveInteger,
    ),
    rounds: valueFlag(
      { value: 'N', help: 'interleaved rounds per policy, 3 to 1000 (default 10)' },
      countUpTo(MAX_ROUNDS, { min: 3, expected: 'at least 3 rounds (an interval needs them)' }),
    ),
    batch: valueFlag(
      { value: 'N', help: 'allocate+free pairs per sample (default 1000, at most 1000000)' },
      countUpTo(MAX_BATCH),
    ),
    seed: valueFlag({ value: 'N', help: 'seed of the free-range shapes (default 42)' }, positiveInteger),
    json: booleanFlag('print the rows as JSON instead of a table'),
    check: booleanFlag(`exit with status 1 when a figure is over its budget, 3 when none is but
one is undecided`),
  },
  operands: false,
  footer: `exit status: 0 when measured (figures over budget or not, unless --check); with --check,
1 when a figure is over its budget and 3 when none is but one is undecided (its interval holds
the budget: more --time or --rounds may decide it); 2 for bad flags.`,
};

/** Counts as the help writes them, comma-separated: 1000, 10k, 1m. */
function counts(text: string, flag: string): number[] {
  return text.split(',').map((item) => {
    const m = /^(\d+)([km]?)$/i.exec(item.trim());
    const n = m ? Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : NaN;
    if (!Number.isSafeInteger(n) || n < 1)
      throw invalidValue(flag, 'positive counts such as 1000, 10k or 1m', item.trim());
    if (n > MAX_FREE_RANGES) throw tooLarge(flag, item.trim(), '2m free ranges (about 250 MB of index)');
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
    ...(values.rounds ? { rounds: values.rounds } : {}),
    onRound: (policy, round, rounds) => {
      if (progress) io.stderr.write(`\r\x1b[Kmeasuring ${policy}: round ${round + 1} of ${rounds}...`);
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
    io.stdout.write(
      '\nbudgets (a round median: the median sample of a size in one round; each figure the geometric mean\n' +
        'over the rounds, of the round medians or of their per-round ratio, with its Student-t 95% interval)\n\n',
    );
    io.stdout.write(
      formatTable(
        ['figure', 'measured', '95% CI', 'rounds', 'budget', ''],
        budgets.map((b) => [
          b.label,
          withUnit(digits(b.value, b.unit), b.unit),
          withUnit(`${digits(b.ci95[0], b.unit)}-${digits(b.ci95[1], b.unit)}`, b.unit),
          String(b.rounds),
          `<= ${withUnit(String(b.budget), b.unit)}`,
          VERDICT_TEXT[b.verdict],
        ]),
      ),
    );
  }
  if (!values.check) return 0;
  return budgets.some((b) => b.verdict === 'over') ? 1 : budgets.some((b) => b.verdict === 'undecided') ? 3 : 0;
});

const VERDICT_TEXT = { ok: 'ok', over: 'OVER', undecided: 'undecided' } as const;

function digits(value: number, unit: 'us' | 'x'): string {
  return value.toFixed(unit === 'x' ? 2 : 3);
}

function withUnit(text: string, unit: 'us' | 'x'): string {
  return unit === 'x' ? `${text}x` : `${text} us`;
}
