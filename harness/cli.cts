#!/usr/bin/env node

/**
 * The `jitmem` command (package.json's bin). CommonJS, unlike the rest of the harness: an ES
 * module entry starts Node's ES module loader before anything of ours runs, a few ms that
 * `jitmem run` from its bundle (a script) never needs. Every other command is an ES module,
 * imported from here (main.ts). cli.ts is the same entry for `node dist/harness/cli.js`.
 */

import type { CommandIO } from './commands/command.js';
import { loadRunBundle } from './run-bundle-loader.cjs';

/** Output piped into a reader that stops early (| head) is not an error of ours. */
function quietOnEpipe<S extends NodeJS.WriteStream>(stream: S): S {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  return stream;
}

/**
 * process.stdout and process.stderr, made when first used: `jitmem run` seldom writes (the
 * program's output goes straight to the file descriptors), and making a stream loads Node's
 * stream modules.
 */
function lazyIO(): CommandIO {
  let stdout: NodeJS.WriteStream | undefined;
  let stderr: NodeJS.WriteStream | undefined;
  return {
    get stdout() {
      return (stdout ??= quietOnEpipe(process.stdout));
    },
    get stderr() {
      return (stderr ??= quietOnEpipe(process.stderr));
    },
  };
}

/**
 * `jitmem run` starts from its bundle when there is a fresh one (run-bundle-loader.cts), without
 * the command table: a command line tool's start-up is what its users feel.
 */
async function start(argv: string[]): Promise<number> {
  if (argv[0] === 'run') {
    const runCommand = loadRunBundle();
    if (runCommand) {
      const io = lazyIO();
      return runCommand.run(argv.slice(1), io).catch(async (err: unknown) => {
        const { reportCommandFailure } = await import('./command-failure.js');
        return reportCommandFailure('run', err, io);
      });
    }
  }
  quietOnEpipe(process.stdout);
  quietOnEpipe(process.stderr);
  const { main } = await import('./main.js');
  return main(argv);
}

start(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`jitmem: internal error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 70;
  },
);
