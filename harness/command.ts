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
