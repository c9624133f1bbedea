import path from 'node:path';
import { appendFileSync } from 'node:fs';
import { parseFlags, printHelp, type CommandSpec, type FlagTable, type ParsedFlags } from './flags.js';

/**
 * A subcommand of the `jitmem` CLI. Each lives in harness/commands/<name>.ts and is listed in
 * harness/main.ts. `run` gets the arguments after the subcommand name and resolves to the exit
 * status; output goes through `io` so tests can capture it.
 */
export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export interface Command {
  readonly name: string;
  run(argv: string[], io: CommandIO): Promise<number>;
}

/**
 * A command whose flags are a table: its flags are read (and --help answered) before `run` gets
 * their values, the other arguments and, when it needs them, the arguments as given.
 */
export function flagCommand<T extends FlagTable>(
  spec: CommandSpec<T>,
  run: (parsed: ParsedFlags<T>, io: CommandIO, argv: readonly string[]) => Promise<number>,
): Command {
  return {
    name: spec.name,
    async run(argv, io) {
      const parsed = parseFlags(spec, argv);
      if (parsed.help) return printHelp(spec, io);
      return run(parsed, io, argv);
    },
  };
}

/**
 * Where the commands write when `--out` is not given: a folder in the current directory, never
 * inside the package (which, installed, lives under node_modules/).
 */
export const DEFAULT_REPORTS_DIR = 'jitmem-reports';

/** A default output path under ./jitmem-reports/. */
export function defaultOutput(...parts: string[]): string {
  return path.resolve(DEFAULT_REPORTS_DIR, ...parts);
}

/**
 * Markdown output is also appended to the file GitHub Actions names in $GITHUB_STEP_SUMMARY, so
 * that a CI run shows it on its summary page. A summary that cannot be written is a warning:
 * the output itself went to stdout.
 */
export function appendStepSummary(markdown: string, io: CommandIO): void {
  const summary = process.env.GITHUB_STEP_SUMMARY;
  if (!summary) return;
  try {
    appendFileSync(summary, markdown + '\n');
  } catch (err) {
    io.stderr.write(`warning: cannot append to $GITHUB_STEP_SUMMARY (${summary}): ${(err as Error).message}\n`);
  }
}
