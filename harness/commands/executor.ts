import type { Command } from './command.js';
import { runExecutor } from '../../executor/cli.js';

export const executorCommand: Command = {
  name: 'executor',
  async run(argv, io) {
    const status = await runExecutor(argv, io);
    // As a process of its own, the executor ends with its session: nothing it started may keep it alive.
    if (io.stdout === process.stdout) process.exit(status);
    return status;
  },
};
