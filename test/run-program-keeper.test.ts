import test from 'ava';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { SlabKeeper } from '../mappers/slab/slab-keeper.js';
import { ExecutorSession } from '../session/executor-session.js';
import { InProcessTarget, SessionTarget } from '../loader/program-target.js';
import { runProgram } from '../loader/run-program.js';
import { compile, tempDir } from './helpers/jitlink-run.js';

/**
 * A controller that runs program after program (the bench's warm controller) hands runProgram
 * a SlabKeeper: every program after the first lands on the slab the first reserved, so the
 * executor makes no new mapping and no new shared-memory object for it, and the keeper holds
 * the slab, empty, between programs.
 */

const SOURCE = `
#include <stdlib.h>
static char buffer[300000];
int main(int argc, char **argv) {
  for (int i = 0; i < (int)sizeof buffer; i += 4096) buffer[i] = (char)i;
  return argc + atoi(argv[1]);
}
`;

test('programs run one after another on one kept slab: no new mapping or shm object after the first', async (t) => {
  const object = compile(tempDir(t), 'kept.c', SOURCE, ['-O2', '-fPIC']);
  const session = await ExecutorSession.spawn();
  t.teardown(() => session.close());
  const mapper = new SharedMemoryMapper(session);
  const keeper = new SlabKeeper(mapper);
  const target = new SessionTarget(session);
  const counters = async () => {
    const c = await session.executorCostCounters();
    return { mmap: c.mmap, shmCreated: c.shmCreated };
  };
  const ranges: string[] = [];
  const created: Array<{ mmap: number; shmCreated: number }> = [];
  for (let i = 0; i < 3; i++) {
    const before = await counters();
    const run = await runProgram({ inputs: [object], target, mapper, keeper, args: [String(10 * i)] });
    const after = await counters();
    t.is(run.result.status, 2 + 10 * i);
    t.is(keeper.idleCount, 1, 'the slab is back with the keeper');
    created.push({ mmap: after.mmap - before.mmap, shmCreated: after.shmCreated - before.shmCreated });
    // Borrowed and given back at once: the kept slab (the keeper would make a new one otherwise).
    const slab = keeper.acquire();
    ranges.push(JSON.stringify(slab.reservationRanges()));
    await keeper.giveBack(slab);
  }
  t.true(created[0]!.shmCreated >= 1, JSON.stringify(created));
  t.deepEqual(created.slice(1), [
    { mmap: 0, shmCreated: 0 },
    { mmap: 0, shmCreated: 0 },
  ]);
  t.is(new Set(ranges).size, 1, 'one slab, the same reservations, for all three');
  await keeper.close();
  await mapper.close();
});

test('a keeper over another mapper is refused before anything is linked', async (t) => {
  const object = compile(tempDir(t), 'kept.c', SOURCE, ['-O2', '-fPIC']);
  const mapper = new InProcessMemoryMapper();
  const other = new InProcessMemoryMapper();
  t.teardown(async () => {
    await mapper.close();
    await other.close();
  });
  const keeper = new SlabKeeper(other);
  await t.throwsAsync(runProgram({ inputs: [object], target: new InProcessTarget(), mapper, keeper, args: ['1'] }), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /slab keeper's mapper is not the mapper given/,
  });
  t.is(keeper.idleCount, 0);
});
