import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../../core/errors.js';
import { buildOutputsOnce } from '../build-cache.js';
import { craySourceDir } from '../cray/cray-build.js';

/**
 * The `llvm` workload: LLVM itself as a program. A small C++ driver of ours
 * (workloads/llvm/llvm-driver.cpp) parses a fixed IR module, runs the O2 pipeline and prints
 * the module; it is built against Debian's llvm-22-dev static archives
 * (`llvm-config-22 --link-static --libs passes asmparser core support`: 52 archives, about
 * 155 MB, which a static link turns into a 55 MB executable). The workload is the driver's
 * object and those archives; the native program linked from the same files prints the
 * reference output. Outputs are cached under build/workloads/llvm/<key>/ (the key hashes the
 * source, the flags, the compiler and LLVM's version), so only the first use pays the build
 * (about 20 s: compiling the driver, then the native link).
 */

/** Shared libraries LLVM's Support library calls (compression); the executor opens them first. */
export const LLVM_PRELOAD = ['libz.so.1', 'libzstd.so.1'] as const;
/** The components the driver uses. */
const COMPONENTS = ['passes', 'asmparser', 'core', 'support'] as const;

export interface LlvmBuild {
  /** The native link of the driver: compiler and arguments, before `-o FILE`. */
  readonly nativeLink: readonly string[];
  readonly object: string;
  /** The static archives, in link order. */
  readonly archives: readonly string[];
  /** The native program, linked from `object` and `archives`. */
  readonly program: string;
  /** What the native program prints. */
  readonly output: string;
}

function run(command: string, args: readonly string[], what: string): string {
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (e.code === 'ENOENT') {
      throw new JitmemError(
        'ERR_LLVM_WORKLOAD_TOOLS',
        `the llvm workload needs ${command} (${what}); install Debian's llvm-22-dev and g++, or set LLVM_CONFIG / CXX`,
        { command },
      );
    }
    throw new JitmemError(
      'ERR_LLVM_WORKLOAD_BUILD',
      `'${command} ${args.join(' ')}' failed (status ${e.status ?? e.code}): ${(e.stderr ?? '').trim().slice(0, 2000) || e.message}`,
      { command, status: e.status },
    );
  }
}

/**
 * The system libraries of llvm-config's list, as files the linker can open (Debian ships some
 * without their -dev symlink).
 */
function systemLibraries(llvmConfig: string): string[] {
  return run(llvmConfig, ['--link-static', '--system-libs'], "LLVM's configuration")
    .trim()
    .split(/\s+/)
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^-l(z3|zstd|xml2)$/.exec(l);
      if (!m) return l;
      for (const dir of ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu']) {
        const so = ['', '.1', '.2', '.4'].map((v) => path.join(dir, `lib${m[1]}.so${v}`)).find((f) => existsSync(f));
        if (so) return so;
      }
      return l;
    });
}

/** A driver of ours, built against static archives: how to build it and what its native build prints. */
interface DriverSpec {
  readonly name: string;
  readonly source: string;
  readonly archives: readonly string[];
  readonly linkArgs: (archives: readonly string[]) => string[];
  /** The arguments the native program runs with (the reference run). */
  readonly args: readonly string[];
  /** Extra inputs of the reference run, in the cache key. */
  readonly inputs: readonly string[];
}

interface BuiltDriver {
  readonly nativeLink: readonly string[];
  readonly object: string;
  readonly program: string;
  readonly output: Buffer;
}

function llvmConfigOf(env: NodeJS.ProcessEnv): string {
  return env.LLVM_CONFIG?.trim() || 'llvm-config-22';
}

/** Builds a driver and its native program, and runs it once, if the cached outputs are missing or stale. */
function buildDriver(spec: DriverSpec, env: NodeJS.ProcessEnv): BuiltDriver {
  const llvmConfig = llvmConfigOf(env);
  const compiler = env.CXX?.trim() || 'g++';
  const version = run(llvmConfig, ['--version'], "LLVM's configuration").trim();
  const cxxflags = run(llvmConfig, ['--cxxflags'], "LLVM's configuration").trim().split(/\s+/);
  const flags = [...cxxflags, '-O2', '-fPIC'];
  const identity = run(compiler, ['--version'], 'a C++ compiler').split('\n')[0] ?? compiler;
  const hash = createHash('sha256').update(readFileSync(spec.source));
  for (const input of spec.inputs) hash.update(readFileSync(input));
  const key = hash
    .update(['', flags.join(' '), compiler, identity, version, spec.archives.join(' '), spec.args.join(' ')].join('\0'))
    .digest('hex')
    .slice(0, 16);
  const outDir = path.join(craySourceDir(), '..', '..', 'build', 'workloads', spec.name, key);
  const object = path.join(outDir, `${spec.name}-driver.o`);
  const program = path.join(outDir, `${spec.name}-driver`);
  const output = path.join(outDir, 'output');
  const nativeLink = [compiler, object, ...spec.linkArgs(spec.archives), ...systemLibraries(llvmConfig)];
  // Parallel test files build it at once: each writes its own, the first in place is kept.
  buildOutputsOnce([object, program, output], ([objectTmp, programTmp, outputTmp]) => {
    run(compiler, [...flags, '-c', spec.source, '-o', objectTmp!], 'a C++ compiler');
    run(compiler, [objectTmp!, ...nativeLink.slice(2), '-o', programTmp!], 'a C++ compiler');
    writeFileSync(
      outputTmp!,
      execFileSync(programTmp!, [...spec.args], {
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 300_000,
        maxBuffer: 64 << 20,
      }),
    );
  });
  return { nativeLink, object, program, output: readFileSync(output) };
}

/** Builds the llvm driver and its native program if the cached ones are missing or stale. */
export function buildLlvmDriver(env: NodeJS.ProcessEnv = process.env): LlvmBuild {
  const archives = run(
    llvmConfigOf(env),
    ['--link-static', '--libfiles', ...COMPONENTS],
    "LLVM's static archives (llvm-22-dev)",
  )
    .trim()
    .split(/\s+/);
  const source = path.join(craySourceDir(), '..', 'llvm', 'llvm-driver.cpp');
  const built = buildDriver({ name: 'llvm', source, archives, linkArgs: (a) => [...a], args: [], inputs: [] }, env);
  return { ...built, archives, output: built.output.toString('utf8') };
}

/**
 * The stretch workload, clang: a driver of ours (workloads/llvm/clang-driver.cpp) that compiles
 * cray.c to an object with a CompilerInstance running EmitObjAction, built against the static
 * archives of Debian's libclang-22-dev and all of LLVM's (llvm-22-dev, and libpolly-22-dev,
 * which LLVM's archives reference): about 300 archives, 630 MB; natively a 124 MB program.
 */
export interface ClangBuild {
  readonly nativeLink: readonly string[];
  readonly object: string;
  readonly archives: readonly string[];
  readonly program: string;
  /** The driver's arguments: clang's resource directory and the C file. */
  readonly args: readonly string[];
  /** The object the native driver writes for cray.c. */
  readonly output: Buffer;
}

export function buildClangDriver(env: NodeJS.ProcessEnv = process.env): ClangBuild {
  const llvmConfig = llvmConfigOf(env);
  const libdir = run(llvmConfig, ['--libdir'], "LLVM's configuration").trim();
  const major = run(llvmConfig, ['--version'], "LLVM's configuration").trim().split('.')[0]!;
  // Every clang library but the shared libclang-cpp's and the fuzzer handlers'.
  const clang = readdirSync(libdir)
    .filter((f) => /^libclang[A-Z]\w*\.a$/.test(f) && !/^libclangHandle/.test(f))
    .sort()
    .map((f) => path.join(libdir, f));
  const llvm = run(llvmConfig, ['--link-static', '--libfiles', 'all'], "LLVM's static archives (llvm-22-dev)")
    .trim()
    .split(/\s+/);
  const archives = [...clang, ...llvm];
  const missing = archives.filter((a) => !existsSync(a));
  if (clang.length === 0 || missing.length > 0) {
    throw new JitmemError(
      'ERR_LLVM_WORKLOAD_TOOLS',
      `the clang workload needs the static archives of libclang-22-dev, llvm-22-dev and libpolly-22-dev; missing: ${clang.length === 0 ? 'every libclang*.a' : missing.slice(0, 5).join(', ')}`,
      { missing },
    );
  }
  const cray = path.join(craySourceDir(), 'cray.c');
  const args = [path.join(libdir, 'clang', major), cray];
  const source = path.join(craySourceDir(), '..', 'llvm', 'clang-driver.cpp');
  // Natively the archives depend on each other in circles: one group. jitmem's linker pulls members in any order.
  const built = buildDriver(
    {
      name: 'clang',
      source,
      archives,
      linkArgs: (a) => ['-Wl,--start-group', ...a, '-Wl,--end-group', '-lpthread'],
      args,
      inputs: [cray],
    },
    env,
  );
  return { ...built, archives, args };
}
