/**
 * One error class for everything a user can cause. `code` is stable and documented; the
 * message names the offending value and what was expected. Callers switch on `code`, never
 * on the message.
 */
export class JitmemError extends Error {
  readonly code: string;
  /** Structured details (addresses, sizes, offsets) for programs; the message has them for people. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JitmemError';
    this.code = code;
    this.details = details;
  }
}

/** Formats an executor address the way every message shows it. */
export function hex(value: number | bigint): string {
  return '0x' + value.toString(16);
}

/** True when `err` is an Error carrying the given `code` (JitmemError or a native/Node error). */
export function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/**
 * For operations that go on past a failure (tearing down several regions): throws the one
 * error, or one JitmemError that names them all; does nothing when there were none.
 */
export function throwCollected(errors: readonly unknown[], op: string): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new JitmemError('ERR_MULTIPLE', `${op}: ${errors.length} failures: ${errors.map((e) => (e as Error).message).join('; ')}`, {
      errors,
    });
  }
}

/** Runs `each` on every item even when some fail, then throws what failed as throwCollected does. */
export function eachCollected<T>(items: Iterable<T>, op: string, each: (item: T) => void): void {
  const errors: unknown[] = [];
  for (const item of items) {
    try {
      each(item);
    } catch (err) {
      errors.push(err);
    }
  }
  throwCollected(errors, op);
}
