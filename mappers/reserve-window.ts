import { JitmemError, hex } from '../core/errors.js';
import { HEADER_SIZE } from '../protocol/frame.js';
import { RESERVE_WINDOW_SYMBOL } from '../protocol/run-program.js';
import { SpsWriter } from '../protocol/sps.js';
import { expectSuccess, type ExecutorSession } from '../session/executor-session.js';
import type { ExecutorAddrRange } from './memory-mapper.js';

/**
 * reserveWithin for the remote mappers: the executor is told the window, makes the usual
 * reservation inside it, and is told to lift it again. Null when the executor has no such
 * service (LLVM's): the caller reserves anywhere.
 */
export async function reserveInWindow(
  session: ExecutorSession,
  window: ExecutorAddrRange,
  reserve: () => Promise<ExecutorAddrRange>,
): Promise<ExecutorAddrRange | null> {
  if (!session.hasSymbol(RESERVE_WINDOW_SYMBOL)) return null;
  if (!(window.end > window.start)) {
    throw new JitmemError(
      'ERR_INVALID_WINDOW',
      `reserveWithin: the window [${hex(window.start)}, ${hex(window.end)}) is empty`,
      { ...window },
    );
  }
  const set = async (start: number, end: number) =>
    expectSuccess(
      await session.call(RESERVE_WINDOW_SYMBOL, new SpsWriter(16, HEADER_SIZE).addr(start).addr(end)),
      'set_reserve_window',
    );
  await set(window.start, window.end);
  try {
    return await reserve();
  } finally {
    await set(0, 0);
  }
}
