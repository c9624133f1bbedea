import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import type { Command } from './commands/command.js';

/**
 * `jitmem run` from one file, compiled from V8's code cache. Node 20 loads an ES module graph
 * file by file (resolve, read, compile, link each of ~80 modules), which was most of what
 * `jitmem run` added to Node's own start; one bundled script of the same compiled modules,
 * compiled with the code cache made when it was built, loads in a fraction of that
 * (bench-remote's start-up lines measure it). build-run-bundle.ts makes the bundle after tsc
 * (npm run build:ts, prepare, prepack); it is used only while no module it was made from is
 * newer than it, so a tsc run alone never leaves the CLI on stale code. A code cache V8 rejects
 * (another Node) only costs the compile it would have saved.
 *
 * This module is CommonJS, as is the CLI's entry (cli.cts): an ES module entry starts Node's ES
 * module loader (a dozen internal modules, fs/promises and streams with it), a few ms of every
 * `jitmem run` that the bundle, a script, does not need.
 */

export const RUN_BUNDLE = path.join(__dirname, 'run-bundle.cjs');
/** V8's code cache for RUN_BUNDLE, made when it was built. */
export const RUN_BUNDLE_CACHE = path.join(__dirname, 'run-bundle.cache');
/**
 * The compiled modules the bundle holds, one a line: the SHA-1 of its content, a space, its path
 * relative to this folder.
 */
export const RUN_BUNDLE_INPUTS = path.join(__dirname, 'run-bundle.inputs');

/**
 * The bundle as a function of CommonJS's arguments plus the URL its import.meta.url stood for
 * (the addon's paths are relative to it; the bundle sits as deep as dist/native/). Build and use
 * must wrap it identically for V8 to take the cache.
 */
export function wrapRunBundle(source: string): string {
  return `(function (exports, require, module, jitmemBundleUrl) {${source}\n})`;
}

/**
 * What the bundle exports: the run command, and the linker's parts, so that bench-link can time
 * a fresh process's first link from the code `jitmem run` runs (component-benches/first-link-probe.ts).
 */
export interface RunBundleExports {
  readonly runCommand: Command;
  readonly linkObjects?: unknown;
  readonly MappedInputs?: unknown;
  readonly loadTls?: unknown;
  readonly InProcessTarget?: unknown;
  readonly InProcessMemoryMapper?: unknown;
  readonly SlabMemoryManager?: unknown;
}

/** Compiles and runs the bundle; returns the script (for its code cache), the run command and every export. */
export function evaluateRunBundle(
  source: string,
  cachedData?: Buffer,
): { script: vm.Script; runCommand: Command; exports: RunBundleExports } {
  const script = new vm.Script(wrapRunBundle(source), { filename: RUN_BUNDLE, ...(cachedData ? { cachedData } : {}) });
  const init = script.runInThisContext() as (e: object, r: NodeJS.Require, m: { exports: object }, url: string) => void;
  const module = { exports: {} as Partial<RunBundleExports> };
  init(module.exports, createRequire(RUN_BUNDLE), module, pathToFileURL(RUN_BUNDLE).href);
  // (not named `exports`: this module's own CommonJS exports hold RUN_BUNDLE)
  const bundleExports = module.exports;
  if (!bundleExports.runCommand) throw new Error(`${RUN_BUNDLE} does not export runCommand`);
  return { script, runCommand: bundleExports.runCommand, exports: bundleExports as RunBundleExports };
}

/** The SHA-1 of a file's content, hex. */
export function contentDigest(file: string): string {
  // Loaded here, not at the top: node:crypto costs ~2 ms to load, and a fresh bundle after a
  // build never needs it (every module is older than the bundle).
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  return createHash('sha1').update(readFileSync(file)).digest('hex');
}

/**
 * True when the bundle exists and holds every module as it is now: each is older than the
 * bundle (the usual case after a build), or has the content it had when the bundle was made
 * (an installed package, whose files all get the time they were unpacked; or tsc rewriting
 * the same output).
 */
export function runBundleIsFresh(): boolean {
  if (process.env.JITMEM_RUN_BUNDLE === '0') return false;
  try {
    const made = statSync(RUN_BUNDLE).mtimeMs;
    const lines = readFileSync(RUN_BUNDLE_INPUTS, 'utf8').split('\n').filter(Boolean);
    for (const line of lines) {
      const space = line.indexOf(' ');
      const file = path.join(__dirname, line.slice(space + 1));
      if (statSync(file).mtimeMs > made && contentDigest(file) !== line.slice(0, space)) return false;
    }
    return lines.length > 0;
  } catch {
    // No bundle (esbuild was not installed when it was built), or a module it held is gone.
    return false;
  }
}

/** How the bundle was compiled: from its code cache, or from source (no cache, or V8 rejected it). */
export type CodeCacheUse = 'used' | 'rejected' | 'absent';

/**
 * The fresh bundle's exports and whether its code cache was taken, or undefined (no fresh bundle,
 * or one that does not evaluate: then the caller imports the modules).
 */
export function loadRunBundleExports(): { exports: RunBundleExports; codeCache: CodeCacheUse } | undefined {
  if (!runBundleIsFresh()) return undefined;
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(RUN_BUNDLE_CACHE);
  } catch {
    // No cache: the bundle compiles as any script does.
  }
  try {
    const bundle = evaluateRunBundle(readFileSync(RUN_BUNDLE, 'utf8'), cachedData);
    return {
      exports: bundle.exports,
      codeCache: cachedData === undefined ? 'absent' : bundle.script.cachedDataRejected ? 'rejected' : 'used',
    };
  } catch {
    // A bundle that does not evaluate (cut short, made for another Node) is only a lost speed-up:
    // the modules it was made from are there.
    return undefined;
  }
}

/** The run command from the fresh bundle, or undefined (then the caller imports its modules). */
export function loadRunBundle(): Command | undefined {
  return loadRunBundleExports()?.exports.runCommand;
}
