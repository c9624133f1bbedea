import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RUN_BUNDLE, RUN_BUNDLE_INPUTS } from './run-bundle.js';

/**
 * Bundles the compiled `jitmem run` command (dist/harness/commands/run.js and every module it
 * loads, dynamic imports included) into dist/harness/run-bundle.mjs with esbuild, and lists the
 * modules it holds beside it (run-bundle.ts uses the bundle only while none is newer). The
 * bundle sits in dist/harness/, as deep as dist/native/, so the addon's paths relative to
 * import.meta.url resolve the same; the addon itself (.node) stays outside. Without esbuild (an
 * install without dev dependencies) it says so and leaves the CLI on its modules.
 */

interface EsbuildResult {
  metafile?: { inputs: Record<string, unknown> };
}
interface Esbuild {
  build(options: Record<string, unknown>): Promise<EsbuildResult>;
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
  // Written aside and renamed into place: a jitmem run starting meanwhile sees the old bundle or the new, whole.
  const temporary = `${RUN_BUNDLE}.${process.pid}.tmp.mjs`;
  const result = await esbuild.build({
    entryPoints: [path.join(here, 'commands', 'run.js')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: temporary,
    external: ['*.node'],
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: here,
  });
  const inputs = Object.keys(result.metafile?.inputs ?? {}).map((p) => path.relative(here, path.resolve(here, p)));
  writeFileSync(`${RUN_BUNDLE_INPUTS}.${process.pid}.tmp`, inputs.join('\n') + '\n');
  renameSync(`${RUN_BUNDLE_INPUTS}.${process.pid}.tmp`, RUN_BUNDLE_INPUTS);
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
