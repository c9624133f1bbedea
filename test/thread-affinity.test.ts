import test from 'ava';
import * as native from '../native/index.js';
import { pinAllThreads, threadIds } from '../harness/bench/thread-affinity.js';

test('every thread of this process is pinned, not only the main one, and each gets its own affinity back', (t) => {
  const tids = threadIds();
  // Node runs V8's and libuv's helper threads beside the main one.
  t.true(tids.length > 1, `threads: ${tids.join(', ')}`);
  t.true(tids.includes(process.pid));
  const before = new Map(tids.map((tid) => [tid, native.getAffinity(tid)]));
  const cpu = native.getAffinity(0).at(-1)!;
  const unpin = pinAllThreads([cpu]);
  try {
    for (const tid of threadIds()) t.deepEqual(native.getAffinity(tid), [cpu], `thread ${tid}`);
  } finally {
    unpin();
  }
  for (const [tid, cpus] of before) if (threadIds().includes(tid)) t.deepEqual(native.getAffinity(tid), cpus);
});

test("a process's threads are read from /proc; a process that does not exist has none", (t) => {
  t.deepEqual(threadIds(2 ** 22 + 1), []);
  t.notThrows(() => pinAllThreads([0], 2 ** 22 + 1)());
});
