import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';
import { buildCray, renderNativeCray } from './cray/cray-build.js';
import { buildLlvmDriver, LLVM_PRELOAD } from './llvm/llvm-build.js';
import { findPythonObjects } from './python-objects.js';
import type { WorkloadOptions } from './workload-sources.js';

/**
 * The programs the `run` pattern links and runs to exit, with what each must print. The same
 * files, libraries and arguments go to jitmem's linker and to llvm-jitlink, so that the two
 * tools are timed on the same work.
 */

export interface RunProgram {
  /** Row name in a report: cray, python, python-script, objects. */
  readonly name: string;
  /** The workload whose files these are. */
  readonly workload: string;
  /** What the program is asked to do, for people. */
  readonly description: string;
  readonly files: readonly string[];
  /** Shared libraries opened in the executor before the link (llvm-jitlink's --preload). */
  readonly preload: readonly string[];
  /** argv[0] and the arguments. */
  readonly argv: readonly string[];
  /** What a correct run ends with: its exit status and the sha256 of its stdout. */
  readonly expected: { readonly exitStatus: number; readonly stdoutSha256: string };
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * cray's image size in the run pattern: small, so that the link and the transport stay visible
 * beside the rendering.
 */
export const CRAY_RUN_SIZE = '80x60';

/** The short script of the python-script program, and what it prints. */
export const PYTHON_SCRIPT =
  'import json, re; d = json.loads(\'{"a": [1, 2, 3]}\'); print(sum(d["a"]) * 7, re.sub(r"\\d", "#", "a1b22"))';
export const PYTHON_SCRIPT_OUTPUT = '42 a#b##\n';

/**
 * libpython's pyexpat and zlib modules are linked against the system's expat and zlib: the executor
 * must have them open.
 */
export const PYTHON_PRELOAD = ['libexpat.so.1', 'libz.so.1'] as const;

let crayExpected: { key: string; sha: string } | undefined;

/** The run programs of a workload: cray renders its scene; python runs `-c pass` and a short script. */
export function runPrograms(
  workload: string,
  options: WorkloadOptions & { objectsArgv?: readonly string[] } = {},
): RunProgram[] {
  switch (workload) {
    case 'cray': {
      const build = buildCray(options.env);
      const args = ['-s', CRAY_RUN_SIZE, build.scene];
      // The native build of the same object renders the reference image.
      if (!crayExpected || crayExpected.key !== build.program) {
        const image = renderNativeCray(build, build.scene, ['-s', CRAY_RUN_SIZE]);
        crayExpected = { key: build.program, sha: sha256Hex(image) };
      }
      return [
        {
          name: 'cray',
          workload,
          description: `cray renders its scene at ${CRAY_RUN_SIZE}`,
          files: [build.object],
          preload: [],
          argv: ['cray', ...args],
          expected: { exitStatus: 0, stdoutSha256: crayExpected.sha },
        },
      ];
    }
    case 'python': {
      const { files } = findPythonObjects({ configDir: options.pythonDir, env: options.env });
      return [
        {
          name: 'python',
          workload,
          description: 'CPython 3.11 runs -c pass',
          files,
          preload: [...PYTHON_PRELOAD],
          argv: ['python3', '-c', 'pass'],
          expected: { exitStatus: 0, stdoutSha256: sha256Hex('') },
        },
        {
          name: 'python-script',
          workload,
          description: 'CPython 3.11 runs a short script (json, re)',
          files,
          preload: [...PYTHON_PRELOAD],
          argv: ['python3', '-c', PYTHON_SCRIPT],
          expected: { exitStatus: 0, stdoutSha256: sha256Hex(PYTHON_SCRIPT_OUTPUT) },
        },
      ];
    }
    case 'llvm': {
      const build = buildLlvmDriver(options.env);
      return [
        {
          name: 'llvm',
          workload,
          description: "LLVM 22's O2 pipeline on a small IR module, printed",
          files: [build.object, ...build.archives],
          preload: [...LLVM_PRELOAD],
          argv: ['llvm-driver'],
          expected: { exitStatus: 0, stdoutSha256: sha256Hex(build.output) },
        },
      ];
    }
    case 'objects':
      return [objectsProgram(options.objects ?? [], options.objectsArgv, options.env ?? process.env)];
    default:
      throw new JitmemError(
        'ERR_UNKNOWN_WORKLOAD',
        `the run pattern runs cray, python, llvm and objects (it needs to know what a correct run prints); got ${JSON.stringify(workload)}`,
        { workload },
      );
  }
}

/**
 * A user's objects: what a correct run prints is what the same objects print when the system C
 * compiler links them into a native program, which is built and run once here.
 */
function objectsProgram(
  files: readonly string[],
  argvIn: readonly string[] | undefined,
  env: NodeJS.ProcessEnv,
): RunProgram {
  if (files.length === 0)
    throw new JitmemError(
      'ERR_NO_OBJECTS',
      'the objects workload needs at least one object file or archive (--objects FILE...)',
      {},
    );
  const argv = argvIn && argvIn.length > 0 ? argvIn : [path.basename(files[0]!).replace(/\.[^.]*$/, '')];
  const dir = mkdtempSync(path.join(tmpdir(), 'jitmem-run-'));
  try {
    const program = path.join(dir, 'program');
    const compiler = env.CC?.trim() || 'cc';
    const built = spawnSync(compiler, [...files, '-o', program, '-lm'], { encoding: 'utf8', timeout: 120_000 });
    if (built.error || built.status !== 0) {
      throw new JitmemError(
        'ERR_RUN_REFERENCE',
        `the run pattern checks a user's objects against their native build, and '${compiler} ${files.join(' ')} -o program -lm' failed: ${(built.stderr || built.error?.message || '').trim()}`,
        { files },
      );
    }
    const ran = spawnSync(program, argv.slice(1), { argv0: argv[0], timeout: 120_000, maxBuffer: 256 << 20 });
    if (ran.error || ran.status === null) {
      throw new JitmemError(
        'ERR_RUN_REFERENCE',
        `the native build of ${files.join(' ')} did not exit normally (${ran.error?.message ?? `signal ${ran.signal}`})`,
        { files },
      );
    }
    return {
      name: 'objects',
      workload: 'objects',
      description: `${files.map((f) => path.basename(f)).join(' ')} run as ${argv.join(' ')}`,
      files: [...files],
      preload: [],
      argv: [...argv],
      expected: { exitStatus: ran.status, stdoutSha256: sha256Hex(ran.stdout) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
