import type { CommandIO } from './commands/command.js';

/**
 * How a command's failure reaches the user: a typed error (a JitmemError, or a Node error with an
 * errno-style code) is one line, `jitmem NAME: message [CODE]`, and exit status 2; anything else
 * is rethrown as an internal error. By the error's name and code, not its class: `jitmem run`
 * may run from the bundle (run-bundle.ts), whose JitmemError is a class of its own.
 */
export function reportCommandFailure(name: string, err: unknown, io: CommandIO): number {
  const code = (err as { code?: unknown }).code;
  const typed = typeof code === 'string' && ((err as Error).name === 'JitmemError' || /^(ERR_|E[A-Z])/.test(code));
  if (!typed) throw err;
  io.stderr.write(`jitmem ${name}: ${(err as Error).message}${code ? ` [${code}]` : ''}\n`);
  return 2;
}
