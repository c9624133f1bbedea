import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../../core/errors.js';
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
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number };
    if (e.code === 'ENOENT') {
      throw new JitmemError('ERR_LLVM_WORKLOAD_TOOLS', `the llvm workload needs ${command} (${what}); install Debian's llvm-22-dev and g++, or set LLVM_CONFIG / CXX`, { command });
    }
    throw new JitmemError('ERR_LLVM_WORKLOAD_BUILD', `'${command} ${args.join(' ')}' failed (status ${e.status ?? e.code}): ${(e.stderr ?? '').trim().slice(0, 2000) || e.message}`, { command, status: e.status });
  }
}

/** The system libraries of llvm-config's list, as files the linker can open (Debian ships some without their -dev symlink). */
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

/** Builds the driver and its native program if the cached ones are missing or stale. */
export function buildLlvmDriver(env: NodeJS.ProcessEnv = process.env): LlvmBuild {
  const llvmConfig = env.LLVM_CONFIG?.trim() || 'llvm-config-22';
  const compiler = env.CXX?.trim() || 'g++';
  const source = path.join(craySourceDir(), '..', 'llvm', 'llvm-driver.cpp');
  const version = run(llvmConfig, ['--version'], "LLVM's configuration").trim();
  const cxxflags = run(llvmConfig, ['--cxxflags'], "LLVM's configuration").trim().split(/\s+/);
  const archives = run(llvmConfig, ['--link-static', '--libfiles', ...COMPONENTS], "LLVM's static archives (llvm-22-dev)").trim().split(/\s+/);
  const flags = [...cxxflags, '-O2', '-fPIC'];
  const identity = run(compiler, ['--version'], 'a C++ compiler').split('\n')[0] ?? compiler;
  const key = createHash('sha256')
    .update(readFileSync(source))
    .update(['', flags.join(' '), compiler, identity, version, archives.join(' ')].join('\0'))
    .digest('hex')
    .slice(0, 16);
  const outDir = path.join(craySourceDir(), '..', '..', 'build', 'workloads', 'llvm', key);
  const object = path.join(outDir, 'llvm-driver.o');
  const program = path.join(outDir, 'llvm-driver');
  const output = path.join(outDir, 'output.ll');
  const nativeLink = [compiler, object, ...archives, ...systemLibraries(llvmConfig)];
  if (!existsSync(object) || !existsSync(program) || !existsSync(output)) {
    mkdirSync(outDir, { recursive: true });
    // Built under names of our own and renamed into place: parallel test files never see half-written outputs.
    const tag = `.${process.pid}.tmp`;
    try {
      run(compiler, [...flags, '-c', source, '-o', object + tag], 'a C++ compiler');
      run(compiler, [object + tag, ...nativeLink.slice(2), '-o', program + tag], 'a C++ compiler');
      writeFileSync(output + tag, run(program + tag, [], 'the native llvm driver'));
      renameSync(object + tag, object);
      renameSync(program + tag, program);
      renameSync(output + tag, output);
    } finally {
      for (const f of [object, program, output]) rmSync(f + tag, { force: true });
    }
  }
  return { nativeLink, object, archives, program, output: readFileSync(output, 'utf8') };
}
