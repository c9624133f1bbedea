import test from 'ava';
import { readFileSync } from 'node:fs';
import { JitmemError } from '../core/errors.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
import { linkObjects } from '../jitlink/link.js';
import { InProcessTarget } from '../loader/program-target.js';
import { archive, compile, tempDir } from './helpers/jitlink-run.js';

/**
 * Damaged copies of real objects and archives, linked and relocated into real (in-process)
 * memory: every failure is a JitmemError with a code, never a TypeError, a RangeError or a
 * crash, and nothing is written outside the allocation (the process lives on).
 */

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SOURCE = `
#include <stdio.h>
#include <setjmp.h>
static int counter;
int shared_common;
__attribute__((weak)) int tunable = 3;
extern void jitmem_fuzz_weak_hook(void) __attribute__((weak));
static int twice(int x) { return 2 * x; }
int (*const table[])(int) = { twice };
__attribute__((constructor)) static void init(void) { counter = 1; }
int helper(int x);
int main(int argc, char **argv) { jmp_buf b; if (setjmp(b)) return 1; if (jitmem_fuzz_weak_hook) jitmem_fuzz_weak_hook(); printf("%d %s\\n", table[0](counter) + helper(argc) + tunable + shared_common, argv[0]); return 0; }
`;

test('1500 damaged copies of real objects and archives give only typed errors, and relocate only inside their allocation', async (t) => {
  const dir = tempDir(t);
  const main = compile(dir, 'main.c', SOURCE, ['-O2', '-fPIC', '-fcommon']);
  const helper = compile(dir, 'helper.c', 'int helper(int x) { return x + 1; }', ['-O0']);
  const lib = archive(dir, 'libhelper.a', [helper]);
  const originals = [readFileSync(main), readFileSync(lib)];
  const target = new InProcessTarget();
  const memory = new SlabMemoryManager(new InProcessMemoryMapper());
  t.teardown(() => memory.close());
  // FUZZ_SEED=N explores other damage; the suite runs the fixed seed.
  const random = seeded(Number(process.env.FUZZ_SEED ?? 0x5eed));
  const codes = new Map<string, number>();
  let linked = 0;
  for (let i = 0; i < 1500; i++) {
    const which = i % 2;
    const copy = Buffer.from(originals[which]!);
    const damage = 1 + Math.floor(random() * 8);
    for (let d = 0; d < damage; d++) {
      const at = Math.floor(random() * copy.length);
      copy[at] = random() < 0.5 ? Math.floor(random() * 256) : copy[at]! ^ (1 << Math.floor(random() * 8));
    }
    const inputs =
      which === 0
        ? [
            { path: 'main.o', bytes: copy },
            { path: 'libhelper.a', bytes: originals[1]! },
          ]
        : [
            { path: 'main.o', bytes: originals[0]! },
            { path: 'libhelper.a', bytes: copy },
          ];
    try {
      const program = await linkObjects(inputs, {
        pageSize: target.pageSize,
        lookup: (names) => target.lookup(names),
        runtimeSymbols: target.runtimeSymbols(),
      });
      const allocation = await memory.allocate(program.graph);
      try {
        allocation.writeContent();
        program.relocate(
          allocation.base,
          allocation.segments.map((s) => s.workingMemory),
          allocation.layout,
        );
        linked++;
      } finally {
        await allocation.abandon();
      }
    } catch (err) {
      if (!(err instanceof JitmemError)) {
        t.fail(`copy ${i} (${damage} damaged bytes in ${inputs[which]!.path}) threw ${(err as Error).stack}`);
        return;
      }
      codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
    }
  }
  t.true(linked > 0);
  t.true(codes.size > 3);
  t.log(
    `${linked} copies linked; errors ${JSON.stringify(Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])))}`,
  );
});
