import { existsSync, linkSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

/**
 * Outputs of a workload's native build (cray's object and program, the LLVM drivers'), cached
 * under build/workloads/<name>/<key>/ and shared by every process that needs them: parallel test
 * files build a missing one at the same time.
 */

/**
 * Builds `outputs` unless all are in place: `build` writes each under a name of this process's own
 * (the temporaries it is given, in the same order), then each is put in place where none is
 * (placeBuildOutput), and no temporary is left, whether the build failed or not.
 */
export function buildOutputsOnce(outputs: readonly string[], build: (temporaries: readonly string[]) => void): void {
  if (outputs.every((f) => existsSync(f))) return;
  for (const dir of new Set(outputs.map((f) => path.dirname(f)))) mkdirSync(dir, { recursive: true });
  const temporaries = outputs.map((f) => `${f}.${process.pid}.tmp`);
  try {
    build(temporaries);
    outputs.forEach((f, i) => placeBuildOutput(temporaries[i]!, f));
  } finally {
    for (const t of temporaries) rmSync(t, { force: true });
  }
}

/**
 * Puts a finished build output in place under `final` unless one is there already, and removes
 * `temporary` either way. Of two processes that built the same output at once, the second must
 * not replace the first's: a link of that file may be reading it, and would find its path naming
 * another file (jitmem refuses such an input: "changed while it was being linked", as a fresh
 * clone's tests once did when two of them built cray together). link(2) creates the name only
 * when it is absent, in one step, so a name once placed keeps its file.
 */
export function placeBuildOutput(temporary: string, final: string): void {
  try {
    linkSync(temporary, final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(temporary, { force: true });
  }
}
