import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { PhaseClock, ReserveTimingMapper } from '../harness/bench/phase-clock.js';
import { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
import { PHASES } from '../harness/report/report.js';

const sumOfShares = (clock: PhaseClock) => PHASES.reduce((a, p) => a + clock.totals[p], 0);

test('overlapping operations: the phases split each instant and sum to the busy wall time', async (t) => {
  const clock = new PhaseClock();
  clock.reset();
  // 16 finalizes in flight at once, a free beside them, and a write while they are out.
  const inits = Array.from({ length: 16 }, (_, i) => clock.timeAsync('initialize', () => sleep(2 + (i % 3))));
  const free = clock.timeAsync('deinitialize', () => sleep(3));
  clock.time('write', () => {
    let x = 0;
    for (let i = 0; i < 200_000; i++) x += i;
    return x;
  });
  await Promise.all([...inits, free]);
  const total = clock.total();
  t.true(total > 0);
  t.true(
    Math.abs(sumOfShares(clock) - total) < 1e-9 * Math.max(1, total),
    `shares ${sumOfShares(clock)} vs total ${total}`,
  );
  // Every operation's own duration is kept apart, per phase: 16 overlapping finalizes sum to more than the iteration.
  t.is(clock.operations.initialize.length, 16);
  t.is(clock.operations.deinitialize.length, 1);
  t.is(clock.operations.write.length, 1);
  t.true(clock.operations.initialize.reduce((a, b) => a + b, 0) > clock.totals.initialize);
  clock.reset();
  t.is(clock.total(), 0);
  t.is(sumOfShares(clock), 0);
  t.is(clock.operations.initialize.length, 0);
});

test('a reservation inside an allocate takes its place: prepare and reserve share nothing and still sum to the whole', async (t) => {
  const clock = new PhaseClock();
  const mapper = new ReserveTimingMapper(new InProcessMemoryMapper(), clock);
  t.teardown(() => mapper.close());
  clock.reset();
  const range = await clock.timeEnclosing('prepare', async () => {
    await sleep(1);
    const r = await mapper.reserve(1 << 20);
    await sleep(1);
    return r;
  });
  t.true(range.end - range.start >= 1 << 20);
  t.is(clock.operations.reserve.length, 1);
  t.is(clock.operations.prepare.length, 1);
  // The enclosing operation's own duration leaves the nested one out; the shares add up to the wall time.
  t.true(Math.abs(sumOfShares(clock) - clock.total()) < 1e-9 * Math.max(1, clock.total()));
  t.true(
    Math.abs(clock.operations.prepare[0]! + clock.operations.reserve[0]! - clock.total()) <
      1e-6 * Math.max(1, clock.total()),
  );
  t.true(Math.abs(clock.totals.reserve - clock.operations.reserve[0]!) < 1e-9 * Math.max(1, clock.total()));
  await mapper.release([range.start]);
});

test('ReserveTimingMapper forwards every call, and the optional ones only when the inner mapper has them', async (t) => {
  const clock = new PhaseClock();
  const inner = new InProcessMemoryMapper();
  const mapper = new ReserveTimingMapper(inner, clock);
  t.teardown(() => mapper.close());
  t.is(mapper.pageSize, inner.pageSize);
  t.is(typeof mapper.patchCode, typeof inner.patchCode);
  t.is(typeof mapper.reserveWithin, typeof inner.reserveWithin);
  const range = await mapper.reserve(inner.pageSize);
  const view = mapper.prepare(range.start, inner.pageSize);
  view[0] = 0xc3;
  const key = await mapper.initialize({
    mappingBase: range.start,
    segments: [
      {
        offset: 0,
        contentSize: 1,
        zeroFillSize: inner.pageSize - 1,
        group: { prot: 5, lifetime: 'standard' },
        workingMemory: view,
      },
    ],
    actions: [],
  } as never);
  t.is(key, range.start);
  await mapper.deinitialize([key]);
  await mapper.release([range.start]);
});
