import test from 'ava';
import { closeOrKill, joinErrors, runAll, withCleanup } from '../core/cleanup.js';
import { JitmemError } from '../core/errors.js';

/** Cleanup never drops an error: every step runs, and each failure reaches the caller. */

test('runAll runs every step after a failure and returns the failures in order', async (t) => {
  const ran: number[] = [];
  const failures = await runAll([
    () => ran.push(1),
    () => Promise.reject(new Error('second')),
    () => {
      ran.push(3);
      throw new Error('third');
    },
    async () => {
      ran.push(4);
    },
  ]);
  t.deepEqual(ran, [1, 3, 4]);
  t.deepEqual(
    failures.map((e) => (e as Error).message),
    ['second', 'third'],
  );
});

test('joinErrors keeps the first error and its code, with every cleanup failure in an AggregateError cause', (t) => {
  const primary = new JitmemError('ERR_LINK_UNDEFINED', 'undefined symbol foo', { symbol: 'foo' });
  t.is(joinErrors(primary, []), primary);
  const joined = joinErrors(primary, [new Error('munmap failed'), new Error('executor gone')]);
  t.true(joined instanceof JitmemError);
  t.is((joined as JitmemError).code, 'ERR_LINK_UNDEFINED');
  t.deepEqual((joined as JitmemError).details, { symbol: 'foo' });
  t.is((joined as Error).message, 'undefined symbol foo (and cleaning up failed: munmap failed; executor gone)');
  const cause = (joined as Error).cause as AggregateError;
  t.true(cause instanceof AggregateError);
  t.deepEqual(
    cause.errors.map((e: Error) => e.message),
    ['undefined symbol foo', 'munmap failed', 'executor gone'],
  );
  // Not a JitmemError (a Node error with a code, say): an AggregateError that keeps the code.
  const nodeError = Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
  const joinedNode = joinErrors(nodeError, ['a string thrown']);
  t.true(joinedNode instanceof AggregateError);
  t.is((joinedNode as { code?: string }).code, 'EPIPE');
  t.is((joinedNode as Error).message, 'EPIPE (and cleaning up failed: a string thrown)');
});

test('withCleanup runs the steps after success and failure alike; a cleanup failure alone is thrown', async (t) => {
  const ran: string[] = [];
  const step =
    (name: string, fail = false) =>
    () => {
      ran.push(name);
      if (fail) throw new Error(`${name} failed`);
    };
  t.is(await withCleanup(async () => 42, [step('a'), step('b')]), 42);
  t.deepEqual(ran.splice(0), ['a', 'b']);
  await t.throwsAsync(
    withCleanup(async () => 42, [step('a', true), step('b', true)]),
    { instanceOf: AggregateError, message: 'a failed (and cleaning up failed: b failed)' },
  );
  t.deepEqual(ran.splice(0), ['a', 'b']);
  await t.throwsAsync(
    withCleanup(() => Promise.reject(new JitmemError('ERR_X', 'body failed')), [step('a', true), step('b')]),
    { instanceOf: JitmemError, code: 'ERR_X', message: 'body failed (and cleaning up failed: a failed)' },
  );
  t.deepEqual(ran.splice(0), ['a', 'b']);
});

test('closeOrKill kills what does not close, and still throws why it did not', async (t) => {
  let killed = 0;
  const stuck = { close: () => Promise.reject(new Error('close timed out')), kill: () => void killed++ };
  await t.throwsAsync(closeOrKill(stuck), { message: 'close timed out' });
  t.is(killed, 1);
  await closeOrKill({ close: async () => undefined, kill: () => void killed++ });
  t.is(killed, 1);
});
