/**
 * Cleaning up after a failure without losing either error: the failure is what the caller
 * must see, but a cleanup that fails too (an executor that cannot deallocate, a slab that
 * cannot close) leaves something behind, and that must be reported, not dropped.
 */

/**
 * Runs `cleanups` in order after `failure`, each even when an earlier one failed; rethrows
 * `failure` itself when they all succeed, else an AggregateError holding the failure first
 * and every cleanup error after it, with the failure as `cause` and its `code`.
 */
export async function failAfterCleanup(failure: unknown, ...cleanups: ReadonlyArray<() => Promise<unknown>>): Promise<never> {
  const errors = await runAll(cleanups);
  if (errors.length === 0) throw failure;
  throw aggregate(failure, errors);
}

/**
 * Runs `cleanups` in order, each even when an earlier one failed; throws the only error, or an
 * AggregateError of all of them.
 */
export async function cleanUp(...cleanups: ReadonlyArray<() => Promise<unknown>>): Promise<void> {
  const errors = await runAll(cleanups);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed: ${errors.map(messageOf).join('; ')}`);
}

async function runAll(cleanups: ReadonlyArray<() => Promise<unknown>>): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const cleanup of cleanups) {
    try {
      await cleanup();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function aggregate(failure: unknown, cleanupErrors: readonly unknown[]): AggregateError {
  const e = new AggregateError([failure, ...cleanupErrors], `${messageOf(failure)} (and cleaning up after it failed: ${cleanupErrors.map(messageOf).join('; ')})`, { cause: failure });
  const code = (failure as { code?: unknown } | null)?.code;
  if (typeof code === 'string') Object.assign(e, { code });
  return e;
}
