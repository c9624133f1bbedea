#!/usr/bin/env node

// Output piped into a reader that stops early (| head) is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

/**
 * `jitmem run` starts from its bundle when there is a fresh one (run-bundle.ts), without the
 * command table: a command line tool's start-up is what its users feel.
 */
async function start(argv: string[]): Promise<number> {
  if (argv[0] === 'run') {
    const runCommand = (await import('./run-bundle.js')).loadRunBundle();
    if (runCommand) {
      const io = { stdout: process.stdout, stderr: process.stderr };
      const { reportCommandFailure } = await import('./command-failure.js');
      return runCommand.run(argv.slice(1), io).catch((err: unknown) => reportCommandFailure('run', err, io));
    }
  }
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
