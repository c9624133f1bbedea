import test from 'ava';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { incGraph } from './helpers/graphs.js';
import { MAPPER_KINDS, openTarget } from './helpers/mapper-targets.js';
import { mapperContractSuite } from './helpers/mapper-contract.js';
import { shmObjects } from './helpers/executor-process.js';

/**
 * The MemoryMapper contract, run against all three mappers through the slab memory manager:
 * remote ones run the code and hash the bytes in the executor itself.
 */

for (const kind of MAPPER_KINDS) mapperContractSuite(kind);

test('shared: no shared-memory object is left once the session is closed', async (t) => {
  const target = await openTarget('shared');
  const pid = target.session!.pid!;
  const manager = new SlabMemoryManager(target.mapper, { granularity: 1 << 20 });
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  await alloc.finalize();
  // The controller unlinks each name as soon as it has opened it.
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  await target.close();
  t.deepEqual(await target.session!.exited(), { code: 0, signal: null });
  t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
});
