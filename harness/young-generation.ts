import { statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

/**
 * The young generation `jitmem run` gives a large link. A link of CPython (11.8 MB of inputs)
 * allocates about 30 MB and keeps most of it to the end (symbol tables, sections, fixup lists).
 * V8's young generation starts at 1 MB and doubles only after a scavenge finds much of it
 * alive, so the same survivors were copied by five or more scavenges and then promoted, and the
 * promoted megabytes set off a mark-compact: about 7 ms of a 69 ms first link, inside it.
 * Let grow 16-fold at its first expansion, the young generation reaches its maximum (16 MB
 * semi-spaces) after one scavenge and the link runs without another.
 *
 * Raised at run time, around the run, and put back after, rather than given on Node's command
 * line: semi-spaces fixed large at start (`--min-semi-space-size`) cost every `jitmem run`, the
 * smallest too, about 3 ms of start (V8 commits each 256 KB page of them with system calls of its
 * own), and V8 hashes every flag into the code caches it makes and takes, so a flag left changed
 * would turn away the bundle's cache where it is made (build-run-bundle.ts, after a run).
 * Smaller inputs keep V8's default and do not load node:v8 (build-run-bundle.ts loads it lazily).
 */

/** Inputs of this many bytes or more (the files' sizes summed) get the fast-growing young generation. */
export const FAST_GROWTH_FROM_BYTES = 4 << 20;

const GROWTH_FLAG = '--semi-space-growth-factor';
/** V8's own default for the flag. */
const DEFAULT_GROWTH = 2;
const FAST_GROWTH = 16;

/** The files' sizes summed, bytes; a file that cannot be looked at counts 0 (reading it says why). */
export function inputBytes(files: readonly string[]): number {
  let bytes = 0;
  for (const file of files) {
    try {
      bytes += statSync(file).size;
    } catch {
      // Not there (or not reachable) any more: the link's own read gives the typed error.
    }
  }
  return bytes;
}

/**
 * Runs `work` with the young generation growing 16-fold at once when the inputs are large,
 * unless Node was started with a growth factor of its own (then it is the user's to keep).
 */
export async function withYoungGenerationFor<T>(bytes: number, work: () => Promise<T>): Promise<T> {
  if (bytes < FAST_GROWTH_FROM_BYTES || process.execArgv.some((arg) => arg.startsWith(GROWTH_FLAG))) return work();
  setFlagsFromString(`${GROWTH_FLAG}=${FAST_GROWTH}`);
  try {
    return await work();
  } finally {
    setFlagsFromString(`${GROWTH_FLAG}=${DEFAULT_GROWTH}`);
  }
}
