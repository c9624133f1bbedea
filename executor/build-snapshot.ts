import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JitmemError } from '../core/errors.js';

/**
 * Builds the executor's V8 startup snapshot (see session/executor-snapshot.ts for when it is
 * used). Node 20 builds a snapshot from one CommonJS script, so the executor's compiled ES
 * modules are first joined into one: each module becomes a function scope evaluated in
 * dependency order, its imports read from the modules before it, its exports returned as an
 * object. That is enough for this code as tsc emits it (named and namespace imports, exported
 * declarations, no live rebinding of exports, no import cycles) and refuses anything else. The
 * entry's own body runs after deserialization, where process.argv and the descriptors are the
 * new process's; the native addon is loaded there too, as addons cannot be in a snapshot.
 *
 *   node dist/executor/build-snapshot.js [--if-possible]
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const ENTRY = path.join(here, 'main.js');
/** Beside the addon: build/executor-snapshot/ of the package (dist/executor/../../build). */
const OUT_DIR = path.resolve(here, '../../build/executor-snapshot');

const IMPORT = /^import\s+([\s\S]*?)\s+from\s+['"]([^'"]+)['"];?[ \t]*$/gm;
const EXPORT_DECLARATION = /^export\s+((?:async\s+)?function\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*)/gm;

function fail(message: string, details: Record<string, unknown> = {}): JitmemError {
  return new JitmemError('ERR_SNAPSHOT_BUILD', `cannot build the executor snapshot: ${message}`, details);
}

/** The entry's module graph, dependencies first. */
function moduleOrder(entry: string): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (file: string, from: string | undefined) => {
    const s = state.get(file);
    if (s === 'done') return;
    if (s === 'visiting') throw fail(`${from} and ${file} import each other`, { file });
    state.set(file, 'visiting');
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (err) {
      throw fail(`${file} is missing (run tsc first)`, { file, cause: (err as Error).message });
    }
    for (const m of source.matchAll(IMPORT)) if (m[2]!.startsWith('.')) visit(path.resolve(path.dirname(file), m[2]!), file);
    if (/^import\s*\(|[^.\w]import\s*\(/m.test(source)) throw fail(`${file} has a dynamic import()`, { file });
    state.set(file, 'done');
    order.push(file);
  };
  visit(entry, undefined);
  return order;
}

/** `import <spec> from <source>` as constant bindings to the source module's exports object. */
function bindings(spec: string, source: string, file: string): string {
  spec = spec.trim();
  if (spec.startsWith('* as ')) return `const ${spec.slice(5).trim()} = ${source};`;
  const m = /^([A-Za-z_$][\w$]*)?\s*,?\s*(\{[\s\S]*\})?$/.exec(spec);
  if (!m || (!m[1] && !m[2])) throw fail(`${file}: cannot read the import ${JSON.stringify(spec)}`, { file });
  const out: string[] = [];
  if (m[1]) out.push(`const ${m[1]} = ${source}.default ?? ${source};`);
  if (m[2]) out.push(`const ${m[2].replace(/\s+as\s+/g, ': ')} = ${source};`);
  return out.join(' ');
}

/** The one CommonJS script a snapshot is built from. */
export function bundleExecutor(entry = ENTRY): { script: string; files: string[] } {
  const files = moduleOrder(entry);
  const names = new Map(files.map((f, i) => [f, `__module${i}`]));
  const parts = ["'use strict';"];
  for (const file of files) {
    let source = readFileSync(file, 'utf8')
      .replace(/^#!.*\n/, '')
      .replace(/^\/\/# sourceMappingURL=.*$/m, '');
    source = source.replace(IMPORT, (_m, spec: string, from: string) =>
      bindings(spec, from.startsWith('.') ? names.get(path.resolve(path.dirname(file), from))! : `require(${JSON.stringify(from)})`, file),
    );
    source = source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(file).href));
    const exported: string[] = [];
    source = source.replace(EXPORT_DECLARATION, (_m, kind: string, name: string) => {
      exported.push(name);
      return `${kind} ${name}`;
    });
    const left = /^export\b.*$/m.exec(source);
    if (left) throw fail(`${file}: this bundler knows exported declarations only, not ${JSON.stringify(left[0].slice(0, 60))}`, { file });
    if (/\bimport\.meta\b/.test(source)) throw fail(`${file} uses import.meta beyond import.meta.url`, { file });
    if (file === entry) parts.push(`function __main() {\n${source}\n}`);
    else parts.push(`const ${names.get(file)} = (() => {\n${source}\nreturn { ${exported.join(', ')} };\n})();`);
  }
  // After deserialization: the entry reads its arguments from process.argv[2], as when started from its file.
  parts.push(`require('v8').startupSnapshot.setDeserializeMainFunction(() => {\n  process.argv.splice(1, 0, ${JSON.stringify(entry)});\n  __main();\n});`);
  return { script: parts.join('\n'), files };
}

export interface BuiltSnapshot {
  readonly blob: string;
  readonly files: readonly string[];
  readonly ms: number;
}

/** Bundles the executor, has this Node build the snapshot, and writes the stamp that lets sessions use it. */
export function buildExecutorSnapshot(outDir = OUT_DIR): BuiltSnapshot {
  const t0 = performance.now();
  mkdirSync(outDir, { recursive: true });
  const { script, files } = bundleExecutor();
  // Taken before bundling's result is used: a file changed meanwhile makes the stamp stale, not wrong.
  const stampFiles = files.map((f) => {
    const s = statSync(f);
    return { path: f, size: s.size, mtimeMs: s.mtimeMs, sha256: createHash('sha256').update(readFileSync(f)).digest('hex') };
  });
  const tag = `.${process.pid}.tmp`;
  const bundle = path.join(outDir, 'executor.cjs');
  const blob = path.join(outDir, 'executor.blob');
  const stamp = path.join(outDir, 'stamp.json');
  try {
    writeFileSync(bundle + tag, script);
    const built = spawnSync(process.execPath, ['--snapshot-blob', blob + tag, '--build-snapshot', bundle + tag], { encoding: 'utf8', timeout: 120_000, cwd: outDir });
    if (built.status !== 0) throw fail(`node --build-snapshot ended with ${built.signal ?? `status ${built.status}`}: ${(built.stderr || built.error?.message || '').trim().slice(-2000)}`);
    rmSync(stamp, { force: true });
    renameSync(bundle + tag, bundle);
    renameSync(blob + tag, blob);
    writeFileSync(stamp + tag, JSON.stringify({ node: process.version, execPath: process.execPath, nodeOptions: process.env.NODE_OPTIONS ?? '', files: stampFiles }, null, 1) + '\n');
    renameSync(stamp + tag, stamp);
  } finally {
    rmSync(bundle + tag, { force: true });
    rmSync(blob + tag, { force: true });
    rmSync(stamp + tag, { force: true });
  }
  return { blob, files, ms: performance.now() - t0 };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // --if-possible (the build scripts): a snapshot that cannot be built is a slower start, not a failed build.
  const optional = process.argv.includes('--if-possible');
  try {
    const built = buildExecutorSnapshot();
    process.stdout.write(`executor snapshot: ${built.blob} (${built.files.length} modules, ${built.ms.toFixed(0)} ms)\n`);
  } catch (err) {
    process.stderr.write(`build-snapshot: ${(err as Error).message}${optional ? "; jitmem's executor will start from its entry file" : ''}\n`);
    process.exit(optional ? 0 : 1);
  }
}
