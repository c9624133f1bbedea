import { renameSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RUN_BUNDLE, RUN_BUNDLE_CACHE, RUN_BUNDLE_INPUTS, contentDigest, evaluateRunBundle } from './run-bundle.js';

/**
 * Bundles the compiled `jitmem run` command (dist/harness/commands/run.js and every module it
 * loads, dynamic imports included) into dist/harness/run-bundle.cjs with esbuild, makes V8's
 * code cache for it, and lists the modules it holds (run-bundle.ts uses the bundle only while
 * none is newer). The addon itself (.node) stays outside. Without esbuild (an install without
 * dev dependencies) it says so and leaves the CLI on its modules.
 */

interface EsbuildResult {
  metafile?: { inputs: Record<string, unknown> };
}
interface Esbuild {
  build(options: Record<string, unknown>): Promise<EsbuildResult>;
}

/**
 * Writes `data` beside `file` and renames it into place: a jitmem run starting meanwhile sees
 * the old file or the new one, whole.
 */
function replaceFile(file: string, data: string | Uint8Array): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, data);
  renameSync(temporary, file);
}

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
    entryPoints: [path.join(here, 'commands', 'run.js')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: temporary,
    external: ['*.node'],
    // The addon's paths are relative to its module's URL: the bundle's own, passed in by run-bundle.ts.
    define: { 'import.meta.url': 'jitmemBundleUrl' },
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: here,
  });
  const source = readFileSync(temporary, 'utf8');
  // The cache of the compiled top level; functions compiled later are V8's lazy compile as usual.
  const { script } = evaluateRunBundle(source);
  replaceFile(RUN_BUNDLE_CACHE, script.createCachedData());
  const inputs = Object.keys(result.metafile?.inputs ?? {}).map((p) => path.relative(here, path.resolve(here, p)));
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
