import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

/**
 * Preloaded (node --import) into the processes `jitmem profile --target executor|both` runs:
 * starts V8's CPU profiler in the process and writes <role>-<pid>.cpuprofile when it exits.
 * Node does not allow --cpu-prof in NODE_OPTIONS, which is how executors spawned by the bench
 * inherit settings; an --import preload is allowed. The first process to load this is the
 * controller; it marks the environment, so that every process it spawns (the executors) knows
 * it is not. JITMEM_CPU_PROF_DIR: where profiles go; JITMEM_CPU_PROF_TARGET: executor or both.
 */
const dir = process.env.JITMEM_CPU_PROF_DIR;
const target = process.env.JITMEM_CPU_PROF_TARGET ?? 'executor';
const role = process.env.JITMEM_CPU_PROF_ROOT ? 'executor' : 'controller';
if (role === 'controller') process.env.JITMEM_CPU_PROF_ROOT = String(process.pid);

if (dir && (target === 'both' || target === role)) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.once('exit', () => {
    // The in-process inspector session answers synchronously, so this completes inside 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (!err && result?.profile) writeFileSync(path.join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
