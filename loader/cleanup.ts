import { joinErrors, runAll } from '../core/cleanup.js';

/**
 * Cleaning up after a failure without losing either error (core/cleanup.ts does the joining):
 * the failure is what the caller must see, but a cleanup that fails too (an executor that
 * cannot deallocate, a slab that cannot close) leaves something behind, and that is reported.
 */

/**
 * Runs `cleanups` in order after `failure`, each even when an earlier one failed; throws the
 * failure joined with theirs.
 */
export async function failAfterCleanup(
  failure: unknown,
  ...cleanups: ReadonlyArray<() => Promise<unknown>>
): Promise<never> {
  throw joinErrors(failure, await runAll(cleanups));
}

/** Runs `cleanups` in order, each even when an earlier one failed; throws their failures joined. */
export async function cleanUp(...cleanups: ReadonlyArray<() => Promise<unknown>>): Promise<void> {
  const errors = await runAll(cleanups);
  if (errors.length > 0) throw joinErrors(errors[0], errors.slice(1));
}
