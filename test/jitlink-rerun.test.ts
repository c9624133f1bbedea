import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import type { MemoryMapper } from '../mappers/memory-mapper.js';
import { ExecutorSession } from '../session/executor-session.js';
import { InProcessTarget, SessionTarget, type ProgramTarget } from '../loader/program-target.js';
import { runProgram } from '../loader/run-program.js';
import { findPythonObjects } from '../workloads/python-objects.js';
import { tempDir } from './helpers/jitlink-run.js';
import { stdoutAtLeast } from './helpers/executor-process.js';

/**
 * One executor (or this process) runs CPython twice, each run importing json, whose C half
 * (lib-dynload/_json*.so) the interpreter dlopen()s and which binds to the interpreter through
 * the program's export library. The second run must get a fresh _json bound to the second
 * interpreter: the runtime closes what a program opened once it has ended, and the export
 * library is closed after it, so neither stays mapped.
 */

const python = findPythonObjects();

// Writes its verdict to argv[1] (this process's stdout is ava's), and prints it when argv[3] says so.
const SCRIPT = `
import json, json.decoder, sys
data = json.loads('{"a": [1, 2.5, "x"], "b": null}')
assert data == {"a": [1, 2.5, "x"], "b": None}, data
assert json.dumps(data, sort_keys=True) == '{"a": [1, 2.5, "x"], "b": null}'
assert json.decoder.c_scanstring is not None, "the C accelerator _json was not loaded"
run = sys.argv[2]
with open(sys.argv[1], "w") as f:
    f.write("json ok " + run + "\\n")
if sys.argv[3] == "print":
    print("json ok", run)
`;

/** The lines of a process's maps that name a library a program loaded or its export library. */
function leftovers(pid: number): string[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter((l) => /\/_json[.-]|jitmem-exports-/.test(l));
}

async function runTwice(
  t: import('ava').ExecutionContext,
  target: ProgramTarget,
  mapper: MemoryMapper,
  pid: number,
  print: boolean,
): Promise<void> {
  const dir = tempDir(t);
  for (const run of ['1', '2']) {
    const out = path.join(dir, `out-${run}`);
    const r = await runProgram({
      inputs: [...python.files],
      target,
      mapper,
      preload: ['libexpat.so.1', 'libz.so.1'],
      args: ['-c', SCRIPT, out, run, print ? 'print' : 'quiet'],
    });
    t.deepEqual(r.result, { status: 0, outcome: 'returned' }, `run ${run}`);
    t.is(readFileSync(out, 'utf8'), `json ok ${run}\n`);
    t.deepEqual(leftovers(pid), [], `after run ${run}: _json and the export library are unloaded`);
  }
}

for (const [mapperName, makeMapper] of [
  ['shared', (s: ExecutorSession) => new SharedMemoryMapper(s)],
  ['rpc', (s: ExecutorSession) => new RpcCopyMapper(s)],
] as const) {
  test(`one ${mapperName} executor session runs a json-importing python twice`, async (t) => {
    const session = await ExecutorSession.spawn();
    const mapper = makeMapper(session);
    t.teardown(async () => {
      await mapper.close().catch(() => undefined);
      await session.close().catch(() => undefined);
    });
    await runTwice(t, new SessionTarget(session), mapper, session.pid!, true);
    const printed = 'json ok 1\njson ok 2\n';
    t.is(await stdoutAtLeast(session, printed.length), printed);
  });
}

test('this process runs a json-importing python twice', async (t) => {
  const mapper = new InProcessMemoryMapper();
  t.teardown(() => mapper.close().catch(() => undefined));
  await runTwice(t, new InProcessTarget(), mapper, process.pid, false);
});
