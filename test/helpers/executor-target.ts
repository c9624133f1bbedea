import type { ExecutionContext } from 'ava';
import type { MemoryMapper } from '../../mappers/memory-mapper.js';
import { ExecutorSession, type SpawnOptions } from '../../session/executor-session.js';
import { SessionTarget } from '../../loader/program-target.js';

/**
 * A real executor process with a mapper over it and a program target, closed when the test
 * ends (the mapper first, whatever state a failing test left it in, then the session).
 */
export async function openExecutorTarget(
  t: ExecutionContext,
  makeMapper: (session: ExecutorSession) => MemoryMapper,
  spawnOptions: SpawnOptions = {},
): Promise<{ session: ExecutorSession; mapper: MemoryMapper; target: SessionTarget }> {
  const session = await ExecutorSession.spawn(spawnOptions);
  const mapper = makeMapper(session);
  t.teardown(async () => {
    await mapper.close().catch(() => undefined);
    await session.close().catch(() => undefined);
  });
  return { session, mapper, target: new SessionTarget(session) };
}
