import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The jitmem executor's V8 startup snapshot: its modules already loaded and evaluated in a heap
 * image that Node deserializes at start, instead of resolving, reading, compiling and running
 * seventeen ES modules. executor/build-snapshot.ts makes it under build/executor-snapshot/;
 * this file only says whether it may be used: a blob is tied to the Node binary that made it
 * and holds the code as it was then, so it is used only when the stamp written beside it names
 * this Node and every bundled file is unchanged. Otherwise the executor starts from its entry
 * file, as it always can.
 */

export const SNAPSHOT_DIR = fileURLToPath(new URL('../../build/executor-snapshot/', import.meta.url));
export const SNAPSHOT_BLOB = SNAPSHOT_DIR + 'executor.blob';
export const SNAPSHOT_STAMP = SNAPSHOT_DIR + 'stamp.json';
/** Set to 0 to start the executor from its entry file even when a fresh snapshot exists. */
export const SNAPSHOT_ENV = 'JITMEM_EXECUTOR_SNAPSHOT';

export interface SnapshotStamp {
  /** process.version and process.execPath of the Node that built the blob. */
  readonly node: string;
  readonly execPath: string;
  /**
   * NODE_OPTIONS when it was built: V8 flags change the heap's configuration, and Node refuses
   * (and the executor dies) when a blob is loaded under other flags than it was built with.
   */
  readonly nodeOptions: string;
  /** Every bundled file, as it was when the blob was built. */
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number; readonly mtimeMs: number; readonly sha256: string }>;
}

/** Files found unchanged by content although rewritten (tsc writes every output again): path -> mtime checked. */
const sameContent = new Map<string, number>();

/** Why the snapshot cannot be used, or undefined when it can. */
export function snapshotStaleness(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env[SNAPSHOT_ENV] === '0') return `${SNAPSHOT_ENV}=0`;
  if (!existsSync(SNAPSHOT_BLOB) || !existsSync(SNAPSHOT_STAMP)) return 'no snapshot built (node dist/executor/build-snapshot.js)';
  let stamp: SnapshotStamp;
  try {
    stamp = JSON.parse(readFileSync(SNAPSHOT_STAMP, 'utf8')) as SnapshotStamp;
  } catch {
    return 'the snapshot stamp is unreadable';
  }
  if (stamp.node !== process.version || stamp.execPath !== process.execPath) return `the snapshot was built by Node ${stamp.node} at ${stamp.execPath}`;
  if ((stamp.nodeOptions ?? '') !== (env.NODE_OPTIONS ?? '')) return `the snapshot was built with NODE_OPTIONS=${JSON.stringify(stamp.nodeOptions ?? '')}`;
  for (const f of stamp.files) {
    let s;
    try {
      s = statSync(f.path);
    } catch {
      return `${f.path} is gone`;
    }
    if (s.size !== f.size) return `${f.path} changed since the snapshot was built`;
    if (s.mtimeMs === f.mtimeMs || sameContent.get(f.path) === s.mtimeMs) continue;
    // Rewritten: compare the bytes, once per rewrite.
    if (createHash('sha256').update(readFileSync(f.path)).digest('hex') !== f.sha256) return `${f.path} changed since the snapshot was built`;
    sameContent.set(f.path, s.mtimeMs);
  }
  return undefined;
}

/**
 * Node's arguments that start the executor from the snapshot (the executor's own arguments
 * follow), or undefined when it must start from its entry file.
 */
export function executorSnapshotArgs(env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  return snapshotStaleness(env) === undefined ? ['--snapshot-blob', SNAPSHOT_BLOB, '--'] : undefined;
}
