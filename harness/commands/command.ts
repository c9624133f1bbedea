import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { JitmemError } from '../../core/errors.js';

/**
 * A subcommand of the `jitmem` CLI. Each lives in harness/commands/<name>.ts and is listed in
 * harness/cli.ts. `run` gets the arguments after the subcommand name and resolves to the exit
 * status; output goes through `io` so tests can capture it.
 */
export interface CommandIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export interface Command {
  readonly name: string;
  /** One line for `jitmem --help`. */
  readonly summary: string;
  run(argv: string[], io: CommandIO): Promise<number>;
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
 * Node's parseArgs for a command's own flags: a flag it does not know, or one without its
 * value, is a one-line error (`code`) that points at the command's --help.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(command: string, config: T, code = 'ERR_INVALID_FLAG'): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new JitmemError(code, `${(err as Error).message}; see 'jitmem ${command} --help'`, {});
  }
}
