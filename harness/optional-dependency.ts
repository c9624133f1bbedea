import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JitmemError } from '../core/errors.js';

/**
 * The packages only some commands need (charts: vega, vega-lite, resvg; profile: clinic). They
 * are optional peer dependencies, so a program that uses jitmem as a library never downloads
 * them (they weigh about 150 MB); the repository installs them as development dependencies.
 * Each is loaded when a command first needs it.
 */
export const OPTIONAL_PACKAGES = ['@clinic/doctor', '@clinic/flame', '@resvg/resvg-js', 'vega', 'vega-lite'] as const;

/**
 * The error for optional packages that are not installed: names them, what needs them, and
 * the one command that installs them all.
 */
export function optionalDependencyMissing(names: readonly string[], neededFor: string, cause?: unknown): JitmemError {
  const one = names.length === 1;
  const list = one
    ? `the package ${names[0]}, which is`
    : `the packages ${names.slice(0, -1).join(', ')} and ${names.at(-1)}, which are`;
  return new JitmemError(
    'ERR_OPTIONAL_DEPENDENCY_MISSING',
    `${neededFor} needs ${list} not installed (optional, so that using jitmem as a library does not pull ${one ? 'it' : 'them'}); install with: npm install ${names.join(' ')}`,
    { packages: [...names], neededFor },
    { cause },
  );
}

/** Whether our modules can import `name`. */
function resolvable(name: string): boolean {
  try {
    import.meta.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** This package's root (compiled code runs from dist/harness/). */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Which of `names` a failed import says is missing: Node names the package it could not find
 * and the module that asked ("Cannot find package 'vega' imported from /…/render-chart.js").
 * Only our own modules asking counts: a package that is present but misses one of its own
 * dependencies is a broken install, not a missing optional package, and its error goes
 * through unchanged.
 */
export function missingPackage(err: unknown, names: readonly string[], root = packageRoot): string | null {
  if ((err as { code?: unknown } | null)?.code !== 'ERR_MODULE_NOT_FOUND') return null;
  const message = String((err as Error).message ?? '');
  const importer = /imported from (.+)$/m.exec(message)?.[1]?.trim() ?? '';
  const fromOurs =
    importer.startsWith(root + path.sep) && !importer.startsWith(path.join(root, 'node_modules') + path.sep);
  if (!fromOurs) return null;
  return names.find((name) => message.includes(`'${name}'`)) ?? null;
}

/**
 * Imports a module that needs optional packages (the package itself, or a module of ours that
 * imports it), turning "not installed" into one ERR_OPTIONAL_DEPENDENCY_MISSING.
 */
export async function importOptional<T>(
  load: () => Promise<T>,
  packages: readonly string[],
  neededFor: string,
): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const name = missingPackage(err, packages);
    if (name === null) throw err;
    // Name every missing one, so that one install command is enough.
    const missing = packages.filter((p) => p === name || !resolvable(p));
    throw optionalDependencyMissing(missing, neededFor, err);
  }
}
