import type { Command, CommandIO } from './commands/command.js';
import { closestName } from './commands/flags.js';
import { reportCommandFailure } from './command-failure.js';

/**
 * The `jitmem` command line. Subcommands are loaded on demand so that `jitmem executor` starts
 * without loading the benchmark harness.
 */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  bench: {
    summary: 'run the mapper x workload x pattern x policy benchmark and write a report',
    load: async () => (await import('./commands/bench.js')).benchCommand,
  },
  'bench-alloc': {
    summary: 'allocator microbenchmark: allocate+free latency at 1k/10k/100k free ranges',
    load: async () => (await import('./commands/bench-alloc.js')).benchAllocCommand,
  },
  'bench-link': {
    summary: "time jitmem's linker on CPython beside llvm-jitlink's time to link, with the budget",
    load: async () => (await import('./commands/bench-link.js')).benchLinkCommand,
  },
  'bench-remote': {
    summary: 'executor round trip, and a CPython-shaped load through each mapper beside its budget',
    load: async () => (await import('./commands/bench-remote.js')).benchRemoteCommand,
  },
  charts: {
    summary: 'draw bench reports as Vega-Lite specs, SVG, PNG and one self-contained HTML page',
    load: async () => (await import('./commands/charts.js')).chartsCommand,
  },
  compare: {
    summary:
      'compare bench reports: per-row change over measurement rounds or runs; exit 1 on a regression, 3 when rows are too noisy to judge',
    load: async () => (await import('./commands/compare.js')).compareCommand,
  },
  executor: {
    summary: 'serve one ORC (LLVM 22 wire protocol) session as the process that owns target memory',
    load: async () => (await import('./commands/executor.js')).executorCommand,
  },
  history: {
    summary: 'store bench reports per commit and show the trend of the headline speedups with intervals',
    load: async () => (await import('./commands/history.js')).historyCommand,
  },
  profile: {
    summary: 'run a bench under clinic flame/doctor or the V8 CPU profiler and print where the profile is',
    load: async () => (await import('./commands/profile.js')).profileCommand,
  },
  run: {
    summary: 'link x86-64 ELF objects and archives and run them in the executor through a mapper',
    // One bundled script when it is fresh (run-bundle-loader.cts): loading ~80 modules one by one
    // is most of run's start-up.
    load: async () =>
      (await import('./run-bundle-loader.cjs')).loadRunBundle() ?? (await import('./commands/run.js')).runCommand,
  },
  workloads: {
    summary: 'list workloads: link graphs, bytes by AllocGroup, pages',
    load: async () => (await import('./commands/workloads.js')).workloadsCommand,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: jitmem <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    "Run 'jitmem <command> --help' for a command's options.",
    '',
  ].join('\n');
}

export async function main(
  argv: string[],
  io: CommandIO = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    io.stdout.write(pkg.version + '\n');
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    const guess = closestName(name, Object.keys(commands));
    const hint = guess ? `; did you mean ${guess}?` : `; the commands are ${Object.keys(commands).sort().join(', ')}`;
    io.stderr.write(
      `jitmem: unknown command ${JSON.stringify(name)}${hint} (see 'jitmem --help') [ERR_UNKNOWN_COMMAND]\n`,
    );
    return 2;
  }
  try {
    const command = await entry.load();
    return await command.run(rest, io);
  } catch (err) {
    return reportCommandFailure(name, err, io);
  }
}
