import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitmemError } from '../../core/errors.js';
import { buildOutputsOnce } from '../build-cache.js';

/**
 * Builds cray (workloads/cray/cray.c) with the system C compiler: a position-independent
 * object, the `cray` workload, and a native program linked from that same object, whose
 * output is the reference a JIT-linked cray must reproduce. Outputs are cached under
 * build/workloads/cray/<key>/, where the key hashes the source, the flags and the compiler's
 * identity, so a changed source or compiler builds afresh and an unchanged one costs nothing.
 */

/** -ffp-contract=off: no fused multiply-add, so the image is the same on every machine. */
export const CRAY_CFLAGS = ['-O2', '-fPIC', '-ffp-contract=off'] as const;

export interface CrayBuild {
  readonly source: string;
  readonly scene: string;
  /** The relocatable object: the workload. */
  readonly object: string;
  /** The native program linked from `object`. */
  readonly program: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled code runs from dist/workloads/cray/, sources from workloads/cray/.
const packageRoot = [path.resolve(here, '../../..'), path.resolve(here, '../..')].find((root) =>
  existsSync(path.join(root, 'workloads', 'cray', 'cray.c')),
);

export function craySourceDir(): string {
  if (!packageRoot) {
    throw new JitmemError(
      'ERR_CRAY_SOURCE_MISSING',
      `cray's source (workloads/cray/cray.c) is not beside jitmem's code (looked from ${here})`,
      { from: here },
    );
  }
  return path.join(packageRoot, 'workloads', 'cray');
}

function compilerCommand(env: NodeJS.ProcessEnv): string {
  return env.CC?.trim() || 'cc';
}

function runCompiler(compiler: string, args: string[]): string {
  try {
    return execFileSync(compiler, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (e.code === 'ENOENT') {
      throw new JitmemError(
        'ERR_CC_NOT_FOUND',
        `building cray needs a C compiler; '${compiler}' is not on PATH (set CC, or install gcc or clang)`,
        { compiler },
      );
    }
    throw new JitmemError(
      'ERR_CC_FAILED',
      `'${compiler} ${args.join(' ')}' failed (status ${e.status ?? e.code}): ${(e.stderr ?? '').trim() || e.message}`,
      {
        compiler,
        args,
        status: e.status,
      },
    );
  }
}

/** Builds cray if its cached outputs are missing or stale, and returns where they are. */
export function buildCray(env: NodeJS.ProcessEnv = process.env): CrayBuild {
  const sourceDir = craySourceDir();
  const source = path.join(sourceDir, 'cray.c');
  const scene = path.join(sourceDir, 'scene.txt');
  const compiler = compilerCommand(env);
  const identity = runCompiler(compiler, ['--version']).split('\n')[0] ?? compiler;
  const key = createHash('sha256')
    .update(readFileSync(source))
    .update('\0' + CRAY_CFLAGS.join(' ') + '\0' + compiler + '\0' + identity)
    .digest('hex')
    .slice(0, 16);
  const outDir = path.join(packageRoot!, 'build', 'workloads', 'cray', key);
  const object = path.join(outDir, 'cray.o');
  const program = path.join(outDir, 'cray');
  // Parallel test files build it at once: each writes its own, the first in place is kept.
  buildOutputsOnce([object, program], ([objectTmp, programTmp]) => {
    runCompiler(compiler, [...CRAY_CFLAGS, '-c', source, '-o', objectTmp!]);
    runCompiler(compiler, [objectTmp!, '-o', programTmp!, '-lm']);
  });
  return { source, scene, object, program };
}

/**
 * Runs the native cray on a scene (the committed one by default), with options such as `-s WxH`
 * before it, and returns the PPM it writes.
 */
export function renderNativeCray(build: CrayBuild, scene = build.scene, options: readonly string[] = []): Buffer {
  return execFileSync(build.program, [...options, scene], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
}
