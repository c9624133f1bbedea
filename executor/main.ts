#!/usr/bin/env node
import { runExecutor } from './cli.js';

/**
 * The executor's own entry point (`jitmem-executor`): what a controller spawns. It loads the
 * executor and nothing of the harness, so a session starts as fast as Node allows.
 */
runExecutor(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  // The executor ends with its session: nothing it started may keep the process alive.
  (status) => process.exit(status),
  (err: unknown) => {
    process.stderr.write(`jitmem-executor: ${(err as Error).message ?? String(err)}${(err as { code?: string }).code ? ` [${(err as { code?: string }).code}]` : ''}\n`);
    process.exit((err as { code?: string }).code?.startsWith('ERR_') ? 2 : 70);
  },
);
