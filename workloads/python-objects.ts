import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';

/**
 * Finds CPython's `python.o` and static PIC archive (`libpython3.X-pic.a`), the `python`
 * workload. They live in CPython's config directory, which Debian's libpython3.X-dev ships as
 * /usr/lib/python3.X/config-3.X-<multiarch>/. Looked for, in order: the --python-dir flag, the
 * JITMEM_PYTHON_CONFIG_DIR environment variable (each used alone when given: a user who names
 * a directory means that one), then `python3-config --configdir`, then Debian's paths.
 */

export const PYTHON_PACKAGE = 'libpython3.11-dev';
export const PYTHON_CONFIG_DIR_ENV = 'JITMEM_PYTHON_CONFIG_DIR';

export interface PythonObjects {
  readonly configDir: string;
  /** python.o, then the archive. */
  readonly files: readonly [string, string];
}

/** python.o and the PIC archive in `dir`, or undefined when either is missing. */
function objectsIn(dir: string): PythonObjects | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const archive = names.filter((n) => /^libpython3\.\d+-pic\.a$/.test(n)).sort()[0];
  if (!archive || !names.includes('python.o')) return undefined;
  return { configDir: dir, files: [path.join(dir, 'python.o'), path.join(dir, archive)] };
}

function python3ConfigDir(): string | undefined {
  try {
    const out = execFileSync('python3-config', ['--configdir'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out || undefined;
  } catch {
    return undefined;
  }
}

const MULTIARCH: Record<string, string> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
};

/** Debian's config directories for this machine's multiarch triple, 3.11 first, then newest first. */
export function debianConfigDirs(libDir = '/usr/lib'): string[] {
  const multiarch = MULTIARCH[process.arch] ?? `${process.arch}-linux-gnu`;
  let versions: string[];
  try {
    versions = readdirSync(libDir).filter((n) => /^python3\.\d+$/.test(n));
  } catch {
    return [];
  }
  const minor = (v: string) => Number(v.slice('python3.'.length));
  versions.sort((a, b) => (minor(a) === 11 ? -1 : minor(b) === 11 ? 1 : minor(b) - minor(a)));
  return versions.map((v) => path.join(libDir, v, `config-3.${minor(v)}-${multiarch}`)).filter((d) => existsSync(d));
}

export interface FindPythonOptions {
  /** --python-dir */
  readonly configDir?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function findPythonObjects(options: FindPythonOptions = {}): PythonObjects {
  const env = options.env ?? process.env;
  const explicit = options.configDir ?? (env[PYTHON_CONFIG_DIR_ENV] || undefined);
  const tried: string[] = [];
  if (explicit !== undefined) {
    const how = options.configDir !== undefined ? '--python-dir' : PYTHON_CONFIG_DIR_ENV;
    const found = objectsIn(explicit);
    if (found) return found;
    throw notFound([`${explicit} (from ${how})`]);
  }
  const fromConfig = python3ConfigDir();
  if (fromConfig) {
    const found = objectsIn(fromConfig);
    if (found) return found;
    tried.push(`${fromConfig} (from python3-config --configdir)`);
  }
  const debian = debianConfigDirs();
  for (const dir of debian) {
    const found = objectsIn(dir);
    if (found) return found;
    tried.push(dir);
  }
  if (debian.length === 0)
    tried.push(
      `/usr/lib/python3.*/config-3.*-${MULTIARCH[process.arch] ?? process.arch + '-linux-gnu'}/ (none exists)`,
    );
  throw notFound(tried);
}

function notFound(tried: string[]): JitmemError {
  return new JitmemError(
    'ERR_PYTHON_NOT_FOUND',
    `the python workload needs CPython's python.o and libpython3.X-pic.a; looked in ${tried.join(', ')} and found no directory holding both. ` +
      `On Debian or Ubuntu install them with 'apt-get install ${PYTHON_PACKAGE}', or name a config directory with --python-dir or ${PYTHON_CONFIG_DIR_ENV}.`,
    { tried },
  );
}
