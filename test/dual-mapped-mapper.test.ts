import test from 'ava';
import { readFileSync } from 'node:fs';
import * as native from '../native/index.js';
import { DualMappedMemoryMapper } from '../mappers/dual-mapped-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { INC_CODE, RW, RX, incGraph } from './helpers/graphs.js';
import { mapperContractSuite } from './helpers/mapper-contract.js';
import { shmObjects } from './helpers/executor-process.js';

/**
 * The dual-mapped in-process mapper: the whole MemoryMapper contract, then what is its own: code
 * pages keep R-X through finalize, patch and deinitialize (no protection toggling), the
 * working memory is still detached at finalize, and no shared-memory name is ever left.
 */

mapperContractSuite('dualmap');

/** The /proc/self/maps line of the mapping that holds `address`: its permissions, e.g. "r-xs". */
function permsAt(address: number): string {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4})/.exec(line);
    if (m && address >= parseInt(m[1]!, 16) && address < parseInt(m[2]!, 16)) return m[3]!;
  }
  return 'unmapped';
}

function fresh(t: { teardown(fn: () => unknown): void }) {
  const mapper = new DualMappedMemoryMapper();
  t.teardown(() => mapper.close());
  return { mapper, manager: new SlabMemoryManager(mapper as never, { granularity: 1 << 20 }) };
}

test('dualmap: code pages are R-X before, during and after finalize and patch; data pages get RW at finalize and lose it at deallocate', async (t) => {
  const { mapper, manager } = fresh(t);
  const alloc = await manager.allocate(incGraph());
  const text = alloc.sectionAddress('.text');
  const data = alloc.sectionAddress('.data');
  t.is(permsAt(text), 'r-xs');
  alloc.writeContent();
  // Working memory is the other view of the same pages: its bytes are already at the target address.
  t.deepEqual([...native.view(text, 4)], [...INC_CODE]);
  const fin = await alloc.finalize();
  t.is(permsAt(text), 'r-xs');
  t.is(permsAt(data), 'rw-s');
  t.is(native.callInt32(text, 41), 42);
  await mapper.patchCode([{ address: text + 2, bytes: Uint8Array.of(0x07) }]); // lea eax, [rdi+7]
  t.is(permsAt(text), 'r-xs');
  t.is(native.callInt32(text, 41), 48);
  await manager.deallocate([fin]);
  t.is(permsAt(text), 'r-xs');
  t.is(permsAt(data), 'r-xs');
});

test('dualmap: after finalize the working memory is detached: a stale write changes nothing and the process lives on', async (t) => {
  const { manager } = fresh(t);
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  const code = alloc.sectionWorkingMemory('.text');
  const segment = alloc.segments.find((s) => s.group.prot === RX.prot)!.workingMemory;
  const fin = await alloc.finalize();
  t.is(segment.length, 0);
  t.is(code.length, 0);
  segment[0] = 0xcc; // int3, if it reached the page
  code[1] = 0x00;
  t.throws(() => segment.set([0xcc]), { instanceOf: TypeError, message: /detached/ });
  t.deepEqual([...native.view(fin.sectionAddress('.text'), 4)], [...INC_CODE]);
  t.is(native.callInt32(fin.sectionAddress('.text'), 9), 10);
  t.throws(() => alloc.writeContent(), { code: 'ERR_WORKING_MEMORY_DETACHED' });
});

test('dualmap: a batch of patches is checked whole before any byte is written', async (t) => {
  const { mapper, manager } = fresh(t);
  const alloc = await manager.allocate(incGraph());
  alloc.writeContent();
  const fin = await alloc.finalize();
  const text = fin.sectionAddress('.text');
  const other = await manager.allocate({ name: 'other', sections: [{ name: '.text', group: RX, alignment: 16, size: 4, content: INC_CODE }] });
  await t.throwsAsync(
    mapper.patchCode([
      { address: text + 2, bytes: Uint8Array.of(0x05) },
      { address: other.sectionAddress('.text'), bytes: Uint8Array.of(0xc3) },
    ]),
    { code: 'ERR_NOT_INITIALIZED' },
  );
  t.is(native.callInt32(text, 1), 2);
  await t.throwsAsync(mapper.patchCode([]), { code: 'ERR_INVALID_PATCH' });
  await t.throwsAsync(mapper.patchCode([{ address: text + mapper.pageSize - 1, bytes: Uint8Array.of(1, 2) }]), { code: 'ERR_PATCH_OUT_OF_SEGMENT' });
  await other.abandon();
});

test('dualmap: the shared-memory object has no name from the moment it exists, and close unmaps both views', async (t) => {
  const mapper = new DualMappedMemoryMapper();
  const { start, end } = await mapper.reserve(4 * mapper.pageSize);
  t.deepEqual(shmObjects(`jitmem_dualmap_${process.pid}_`), []);
  const wm = mapper.prepare(start, 16);
  wm.fill(0x5a);
  t.is(native.view(start, 1)[0], 0x5a);
  await mapper.close();
  t.is(wm.length, 0);
  t.is(permsAt(start), 'unmapped');
  t.is(permsAt(end - 1), 'unmapped');
  await t.throwsAsync(mapper.reserve(mapper.pageSize), { code: 'ERR_MAPPER_CLOSED' });
});

test('dualmap: a failing finalize action rolls data protections back', async (t) => {
  const { manager } = fresh(t);
  const alloc = await manager.allocate({
    name: 'fails',
    sections: [
      { name: '.text', group: RX, alignment: 16, size: 4, content: INC_CODE },
      { name: '.log', group: RW, alignment: 8, size: 8 * 9, content: new Uint8Array(8 * 9) },
    ],
  });
  alloc.writeContent();
  alloc.actions.push({ finalize: { fn: native.actionAddresses().fail, args: new Uint8Array(0) }, dealloc: null });
  await t.throwsAsync(alloc.finalize(), { code: 'ERR_ALLOC_ACTION_FAILED' });
  t.is(permsAt(alloc.sectionAddress('.log')), 'r-xs');
});
