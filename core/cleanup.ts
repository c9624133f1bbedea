import { JitmemError } from './errors.js';

/**
 * Cleanup that never drops an error. A step that fails does not stop the ones after it, and
 * its failure is kept: joined to the error that made the cleanup necessary (as LLVM's
 * joinErrors joins them), or thrown when there was none.
 */

/** Runs every step in order, each even when an earlier one failed; returns the failures. */
export async function runAll(steps: ReadonlyArray<() => unknown>): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * `primary` with the failures of the cleanup after it: `primary` itself when there were none;
 * otherwise one error whose message is primary's and then what cleanup said, whose `cause` is an
 * AggregateError holding them all, and which keeps primary's kind (a JitmemError stays one, with
 * its code; anything else becomes an AggregateError carrying primary's `code`, if it had one).
 */
export function joinErrors(primary: unknown, cleanupErrors: readonly unknown[]): unknown {
  if (cleanupErrors.length === 0) return primary;
  const message = `${messageOf(primary)} (and cleaning up failed: ${cleanupErrors.map(messageOf).join('; ')})`;
  const all = new AggregateError([primary, ...cleanupErrors], message);
  if (primary instanceof JitmemError) return new JitmemError(primary.code, message, primary.details, { cause: all });
  const code = (primary as { code?: unknown } | null)?.code;
  return code === undefined ? all : Object.assign(all, { code });
}

/** Runs `body`, then every cleanup step whatever happened; a failure of either is thrown, none is lost. */
export async function withCleanup<T>(body: () => Promise<T>, steps: ReadonlyArray<() => unknown>): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (err) {
    throw joinErrors(err, await runAll(steps));
  }
  const errors = await runAll(steps);
  if (errors.length > 0) throw joinErrors(errors[0], errors.slice(1));
  return result;
}

/** Closes a process-backed resource; when closing fails, kills it, and the close failure is thrown. */
export async function closeOrKill(resource: { close(): Promise<void>; kill(): void }): Promise<void> {
  try {
    await resource.close();
  } catch (err) {
    resource.kill();
    throw err;
  }
}
