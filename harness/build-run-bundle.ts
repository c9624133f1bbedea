import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { Command } from './commands/command.js';
import { linkOnceIn, type LinkerParts } from './component-benches/time-one-link.js';
import {
  RUN_BUNDLE,
  RUN_BUNDLE_CACHE,
  RUN_BUNDLE_INPUTS,
  contentDigest,
  evaluateRunBundle,
  type RunBundleExports,
} from './run-bundle-loader.cjs';
import { findPythonObjects } from '../workloads/python-objects.js';

/**
 * Bundles the compiled `jitmem run` command (dist/harness/commands/run.js and every module it
 * loads, dynamic imports included) into dist/harness/run-bundle.cjs with esbuild, makes V8's
 * code cache for it after a link of a real program has run in it, and lists the modules it
 * holds (run-bundle.ts uses the bundle only while none is newer). The addon itself (.node)
 * stays outside. Without esbuild (an install without dev dependencies) it says so and leaves
 * the CLI on its modules.
 */

interface EsbuildResult {
  metafile?: { inputs: Record<string, unknown> };
}
interface EsbuildPluginBuild {
  onResolve(
    options: { filter: RegExp },
    callback: (args: { path: string; namespace: string }) => { path: string; namespace?: string; external?: boolean },
  ): void;
  onLoad(
    options: { filter: RegExp; namespace: string },
    callback: (args: { path: string }) => { contents: string; loader: 'js' },
  ): void;
}
interface Esbuild {
  build(options: Record<string, unknown>): Promise<EsbuildResult>;
}

/**
 * Node modules the bundle loads when first used rather than when it starts: in process, `jitmem
 * run` never spawns an executor (child_process, net) and seldom makes a random name (crypto), and
 * loading them costs ~3.5 ms of its start. Each stands in for the module with the names listed,
 * functions that load it on their first call; its default export reads any member through. A
 * module in the bundle importing a name not listed fails the bundle's build (esbuild: no such
 * export), so a new use is added here rather than broken.
 */
const LAZY_BUILTINS: Record<string, readonly string[]> = {
  'node:crypto': ['createHash', 'createHmac', 'randomBytes', 'timingSafeEqual'],
  'node:child_process': ['execFileSync', 'spawn', 'spawnSync'],
  'node:net': ['connect', 'createConnection', 'createServer'],
  // Only a large link raises a V8 flag (young-generation.ts).
  'node:v8': ['setFlagsFromString'],
};
const LAZY_NAMESPACE = 'jitmem-lazy-builtin';

function lazyBuiltinSource(name: string, exports: readonly string[]): string {
  const load = `let loaded;\nconst load = () => (loaded ??= require(${JSON.stringify(name)}));\n`;
  const named = exports.map((e) => `export function ${e}(...args) { return load().${e}(...args); }\n`).join('');
  return `${load}${named}export default new Proxy({}, { get: (_, key) => load()[key] });\n`;
}

const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(build: EsbuildPluginBuild): void {
    const filter = new RegExp(`^(${Object.keys(LAZY_BUILTINS).join('|')})$`);
    build.onResolve({ filter }, (args) =>
      // The stand-in's own require is of the real module.
      args.namespace === LAZY_NAMESPACE
        ? { path: args.path, external: true }
        : { path: args.path, namespace: LAZY_NAMESPACE },
    );
    build.onLoad({ filter: /.*/, namespace: LAZY_NAMESPACE }, (args) => ({
      contents: lazyBuiltinSource(args.path, LAZY_BUILTINS[args.path] ?? []),
      loader: 'js',
    }));
  },
};

/**
 * Writes `data` beside `file` and renames it into place: a jitmem run starting meanwhile sees
 * the old file or the new one, whole.
 */
function replaceFile(file: string, data: string | Uint8Array): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, data);
  renameSync(temporary, file);
}

/**
 * Runs a trivial program (`int main(void) { return 7; }`, compiled with CC or cc) through the
 * bundle's run command in process and through shared memory, so that the code cache made next
 * holds what a run compiles. Without a C compiler or an executor, says so: the cache then holds
 * what ran (at least the top level), which only costs those compiles at run time.
 */
async function exerciseRunCommand(runCommand: Command): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-run-bundle-'));
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  try {
    const object = path.join(dir, 'trivial.o');
    execFileSync(process.env.CC?.trim() || 'cc', ['-O2', '-c', '-x', 'c', '-', '-o', object], {
      input: 'int main(void) { return 7; }\n',
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    for (const mapper of ['inprocess', 'shared']) {
      const status = await runCommand.run(['--mapper', mapper, object], { stdout: discard, stderr: discard });
      if (status !== 7) throw new Error(`the trivial program through ${mapper} exited ${status}, not 7`);
    }
  } catch (err) {
    process.stderr.write(`build-run-bundle: the code cache holds less than a run (${(err as Error).message})\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Links CPython (python.o and its PIC archive: 177 objects, 143k relocations) through the
 * bundle's linker, so that the code cache also holds what a link of many objects and an archive
 * compiles (archive members, symbol resolution at scale, most relocation types and their
 * relaxations), which the trivial program never reaches: a process's first link then compiles
 * nothing. Without CPython's objects (libpython3.11-dev, installed by .ci/run, not needed to
 * install jitmem), says so: the cache holds less, which only costs those compiles at run time.
 */
async function exerciseLinker(exports: RunBundleExports): Promise<void> {
  try {
    const parts = exports as unknown as LinkerParts;
    if (typeof parts.linkObjects !== 'function') throw new Error('the bundle does not export the linker');
    const { files } = findPythonObjects();
    await linkOnceIn(parts, files, ['libexpat.so.1']);
  } catch (err) {
    process.stderr.write(
      `build-run-bundle: the code cache holds the linker as far as a one-object program runs it (${(err as Error).message.slice(0, 200)})\n`,
    );
  }
}

/** The bundle's entry: the run command, and the linker's parts for bench-link's first-link probe. */
const BUNDLE_ENTRY = `export { runCommand } from './commands/run.js';
export { linkObjects } from '../jitlink/link.js';
export { loadTls } from '../loader/load-tls.js';
export { MappedInputs } from '../loader/mapped-inputs.js';
export { InProcessTarget } from '../loader/program-target.js';
export { InProcessMemoryMapper } from '../mappers/in-process-memory-mapper.js';
export { SlabMemoryManager } from '../mappers/slab/slab-memory-manager.js';
`;
const BUNDLE_ENTRY_NAME = 'run-bundle-entry.js';

export async function buildRunBundle(): Promise<boolean> {
  let esbuild: Esbuild;
  try {
    const name = 'esbuild';
    esbuild = (await import(name)) as Esbuild;
  } catch {
    process.stderr.write('build-run-bundle: esbuild is not installed; jitmem run will load its modules one by one\n');
    return false;
  }
  const here = path.dirname(RUN_BUNDLE);
  const temporary = `${RUN_BUNDLE}.${process.pid}.tmp.cjs`;
  const result = await esbuild.build({
    stdin: { contents: BUNDLE_ENTRY, resolveDir: here, sourcefile: BUNDLE_ENTRY_NAME, loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: temporary,
    external: ['*.node'],
    // The addon's paths are relative to its module's URL: the bundle's own, passed in by run-bundle-loader.cts.
    define: { 'import.meta.url': 'jitmemBundleUrl' },
    plugins: [lazyBuiltins],
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: here,
  });
  const source = readFileSync(temporary, 'utf8');
  const { script, runCommand, exports: bundleExports } = evaluateRunBundle(source);
  // Made after real runs, the cache holds every function they compiled, not only the top level:
  // V8 compiles a function when it is first called, and those compiles were the rest of the start.
  await exerciseLinker(bundleExports);
  await exerciseRunCommand(runCommand);
  replaceFile(RUN_BUNDLE_CACHE, script.createCachedData());
  const inputs = Object.keys(result.metafile?.inputs ?? {})
    .filter((p) => !p.startsWith(`${LAZY_NAMESPACE}:`) && p !== BUNDLE_ENTRY_NAME && p !== '<stdin>')
    .map((p) => path.relative(here, path.resolve(here, p)));
  const lines = inputs.map((input) => `${contentDigest(path.join(here, input))} ${input}`);
  replaceFile(RUN_BUNDLE_INPUTS, lines.join('\n') + '\n');
  renameSync(temporary, RUN_BUNDLE);
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildRunBundle().then(
    () => {},
    (err: unknown) => {
      process.stderr.write(`build-run-bundle: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
