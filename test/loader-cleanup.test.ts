import test from 'ava';
import { JitmemError } from '../core/errors.js';
import { cleanUp, failAfterCleanup } from '../loader/cleanup.js';

/**
 * The run path's cleanup after a failure: every step runs, the failure is what the caller
 * sees (its code kept), and a step that fails too is reported beside it, never dropped.
 */

test('a failure whose cleanup succeeds is rethrown as it was, after every step ran', async (t) => {
  const ran: string[] = [];
  const failure = new JitmemError('ERR_LINK_RELOCATION_OVERFLOW', 'the value does not fit', {});
  const err = await t.throwsAsync(
    failAfterCleanup(
      failure,
      async () => void ran.push('abandon'),
      async () => void ran.push('close'),
    ),
  );
  t.is(err, failure);
  t.deepEqual(ran, ['abandon', 'close']);
});

test('a cleanup step that fails too is reported with the failure, whose code stays, and the later steps still run', async (t) => {
  const ran: string[] = [];
  const failure = new JitmemError('ERR_LINK_RELOCATION_OVERFLOW', 'the value does not fit', {});
  const err = (await t.throwsAsync(
    failAfterCleanup(
      failure,
      async () => {
        throw new Error('deallocate: the executor is gone');
      },
      async () => void ran.push('close'),
    ),
  )) as Error & { code?: string; cause?: unknown };
  t.deepEqual(ran, ['close']);
  t.is(err.code, 'ERR_LINK_RELOCATION_OVERFLOW');
  t.regex(err.message, /the value does not fit/);
  t.regex(err.message, /deallocate: the executor is gone/);
  const all = err instanceof AggregateError ? err : (err.cause as AggregateError);
  t.true(all instanceof AggregateError);
  t.is(all.errors[0], failure);
});

test('cleanUp runs every step and throws what failed', async (t) => {
  const ran: string[] = [];
  await cleanUp(
    async () => void ran.push('retire'),
    async () => void ran.push('close'),
  );
  t.deepEqual(ran, ['retire', 'close']);
  const err = await t.throwsAsync(
    cleanUp(
      async () => {
        throw new Error('retire failed');
      },
      async () => {
        throw new Error('close failed');
      },
    ),
  );
  t.regex(err!.message, /retire failed/);
  t.regex(err!.message, /close failed/);
});
