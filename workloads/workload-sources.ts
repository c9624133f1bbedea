import { JitmemError } from '../core/errors.js';
import type { LinkGraph } from '../graph/link-graph.js';
import { buildCray } from './cray/cray-build.js';
import { objectsOfLink } from '../jitlink/link.js';
import { buildLlvmDriver } from './llvm/llvm-build.js';
import { linkGraphFromObject, linkGraphsFromFiles } from './object-files.js';
import { findPythonObjects } from './python-objects.js';

/**
 * The workloads jitmem knows by name, and `objects` for the files a user names. Each is a list
 * of object files and archives; its graphs are read from them on demand.
 */

export interface WorkloadOptions {
  /** --python-dir: CPython's config directory. */
  readonly pythonDir?: string;
  /** --objects: the files of the `objects` workload. */
  readonly objects?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

export interface Workload {
  readonly name: string;
  readonly files: readonly string[];
  readonly graphs: readonly LinkGraph[];
}

export const BUILTIN_WORKLOADS = {
  cray: 'the C-ray-style raytracer in workloads/cray, built with the system C compiler (one object)',
  python: "CPython 3.11's python.o and libpython3.11-pic.a (Debian's libpython3.11-dev)",
  llvm: "a C++ driver of LLVM 22's O2 pipeline (workloads/llvm) and the 52 static archives it links (Debian's llvm-22-dev); the graphs are the objects the link takes",
} as const;

export type BuiltinWorkloadName = keyof typeof BUILTIN_WORKLOADS;
export const OBJECTS_WORKLOAD = 'objects';

/** The object files and archives a workload is made of. */
export function workloadFiles(name: string, options: WorkloadOptions = {}): readonly string[] {
  switch (name) {
    case 'cray':
      return [buildCray(options.env).object];
    case 'python':
      return findPythonObjects({ configDir: options.pythonDir, env: options.env }).files;
    case 'llvm': {
      const build = buildLlvmDriver(options.env);
      return [build.object, ...build.archives];
    }
    case OBJECTS_WORKLOAD:
      if (!options.objects || options.objects.length === 0) {
        throw new JitmemError(
          'ERR_NO_OBJECTS',
          'the objects workload needs at least one object file or archive (--objects FILE...)',
          {},
        );
      }
      return options.objects;
    default:
      throw new JitmemError(
        'ERR_UNKNOWN_WORKLOAD',
        `unknown workload ${JSON.stringify(name)}; expected one of ${[...Object.keys(BUILTIN_WORKLOADS), OBJECTS_WORKLOAD].join(', ')}`,
        { name },
      );
  }
}

export function loadWorkload(name: string, options: WorkloadOptions = {}): Workload {
  const files = workloadFiles(name, options);
  if (name === 'llvm') {
    // Its archives hold all of LLVM's libraries; the program is the part a link takes.
    const graphs = objectsOfLink(files).flatMap((o) => linkGraphFromObject(o) ?? []);
    return { name, files, graphs };
  }
  return { name, files, graphs: linkGraphsFromFiles(files) };
}
