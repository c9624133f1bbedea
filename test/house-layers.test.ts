import test from 'ava';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkLayers,
  danglingReferences,
  formatViolations,
  listSources,
  readImports,
  type SourceFile,
} from './helpers/import-layers.js';

/** The package root: this file runs from dist/test/. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('every import in the package sources points down the layers (core ← native ← protocol ← graph, objects, session ← mappers ∥ executor ← jitlink ← loader ← workloads ← harness)', (t) => {
  const sources = listSources(root);
  // The checker must be reading the real tree, not an empty or misplaced one.
  const paths = sources.map((s) => s.path);
  for (const expected of [
    'index.ts',
    'core/errors.ts',
    'graph/link-graph.ts',
    'mappers/slab/slab-memory-manager.ts',
    'harness/main.ts',
  ]) {
    t.true(paths.includes(expected), `${expected} is among the sources read`);
  }
  t.false(paths.some((p) => p.startsWith('test/') || p.startsWith('dist/') || p.startsWith('node_modules/')));
  const imports = sources.reduce((n, s) => n + readImports(s.text).length, 0);
  t.true(imports > 200, `${imports} imports read`);
  const violations = checkLayers(sources);
  t.deepEqual(violations, [], `imports against the layers:\n${formatViolations(violations)}`);
});

test('the linker proper (jitlink/) depends only on core/, graph/ and objects/: running a program is loader/', (t) => {
  const sources = listSources(root).filter((s) => s.path.startsWith('jitlink/'));
  t.true(sources.some((s) => s.path === 'jitlink/link.ts'));
  const outside = new Set<string>();
  for (const s of sources) {
    for (const i of readImports(s.text)) {
      if (!i.specifier.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(s.path), i.specifier));
      const top = target.split('/')[0]!;
      if (!['core', 'graph', 'objects', 'jitlink'].includes(top)) outside.add(`${s.path}:${i.line} → ${target}`);
    }
  }
  t.deepEqual([...outside], []);
});

test('every relative import and module URL, in the sources and the tests, names a file that exists', (t) => {
  const files = listSources(root, { includeTests: true });
  t.true(files.some((f) => f.path === 'test/house-layers.test.ts'));
  const dangling = danglingReferences(files);
  t.deepEqual(dangling, [], `references to missing modules:\n${formatViolations(dangling)}`);
  // And the check can fail: a URL to a module that moved away.
  t.deepEqual(
    formatViolations(
      danglingReferences([
        ...files,
        { path: 'test/moved.test.ts', text: "const m = new URL('../mappers/executor-session.js', import.meta.url);" },
      ]),
    ),
    'test/moved.test.ts:1 → mappers/executor-session.ts (../mappers/executor-session.js): names a module that does not exist',
  );
});

test('the import reader finds static, re-export, side-effect and literal dynamic imports, across lines, and nothing in comments or strings', (t) => {
  const text = [
    "import { a } from './a.js';", // 1
    'import type {', // 2
    '  B,', // 3
    "} from './b.js';", // 4
    "export * from './c.js';", // 5
    "export { d as e } from './d.js';", // 6
    "import './side-effect.js';", // 7
    "// import { z } from './comment.js';", // 8
    "/* export * from './block.js' */", // 9
    'const s = "import { q } from \'./string.js\'";', // 10
    "const tpl = `${x} from './template.js'`;", // 11
    "const r = /from '.\\/regex.js'/;", // 12
    "const m = await import('./dynamic.js');", // 13
    'const n = await import(name);', // 14
    "const ratio = a / b; const c2 = Array.from('xy');", // 15
    "export const later = () => import('./lazy.js').then((m) => m.x);", // 16
    "type T = typeof import('./typed.js');", // 17
    "const entry = fileURLToPath(new URL('../executor/main.js', import.meta.url));", // 18
    "const schema = new URL('../../reports/schema-v1.json', import.meta.url);", // 19
    "const site = new URL('./not-a-module.js', 'https://example.org/');", // 20
  ].join('\n');
  t.deepEqual(readImports(text), [
    { specifier: './a.js', line: 1, kind: 'import' },
    { specifier: './b.js', line: 4, kind: 'import' },
    { specifier: './c.js', line: 5, kind: 'export' },
    { specifier: './d.js', line: 6, kind: 'export' },
    { specifier: './side-effect.js', line: 7, kind: 'import' },
    { specifier: './dynamic.js', line: 13, kind: 'dynamic' },
    { specifier: './lazy.js', line: 16, kind: 'dynamic' },
    { specifier: './typed.js', line: 17, kind: 'dynamic' },
    { specifier: '../executor/main.js', line: 18, kind: 'url' },
  ]);
});

const file = (p: string, ...specifiers: string[]): SourceFile => ({
  path: p,
  text: specifiers.map((s) => `import { x } from '${s}';`).join('\n'),
});

test('arrows down pass; up, sideways, mappers ↔ executor, into tests and from folders with no layer fail, each with file:line and both layers', (t) => {
  const violations = checkLayers([
    file(
      'harness/main.ts',
      '../core/errors.js',
      '../workloads/w.js',
      '../mappers/m.js',
      './report.js',
      'node:fs',
      'vega',
    ),
    file('objects/elf.ts', '../graph/link-graph.js'), // allowed: objects may use graph
    file('index.ts', './harness/report.js', './mappers/m.js'), // the entry imports anything
    file('graph/link-graph.ts', '../objects/elf.js', '../protocol/p.js'),
    file('mappers/shared.ts', '../executor/e.js', '../session/s.js'),
    file('executor/e.ts', '../mappers/m.js'),
    file('protocol/p.ts', '../core/c.js', '../session/s.js'),
    file('workloads/w.ts', '../harness/report.js', '../test/helpers/graphs.js', '../index.js'),
    file('stray/x.ts', '../core/c.js'),
    // A module reached by file counts: spawning the harness CLI from a library floor points up,
    // and so does a session reaching executor code (it starts the native program, no module).
    {
      path: 'session/s.ts',
      text: "const cli = new URL('../harness/cli.js', import.meta.url);\nconst exe = new URL('../executor/cli.js', import.meta.url);",
    },
  ]);
  t.deepEqual(
    violations.map((v) => `${v.file}:${v.line} → ${v.target}: ${v.reason}`),
    [
      'graph/link-graph.ts:1 → objects/elf.ts: sideways: graph (3) → objects (3)',
      'mappers/shared.ts:1 → executor/e.ts: sideways: mappers (4) → executor (4)',
      'executor/e.ts:1 → mappers/m.ts: sideways: executor (4) → mappers (4)',
      'protocol/p.ts:2 → session/s.ts: up: protocol (2) → session (3)',
      'workloads/w.ts:1 → harness/report.ts: up: workloads (6) → harness (7)',
      'workloads/w.ts:2 → test/helpers/graphs.ts: workloads (6) imports from test/, which is not a package source',
      'workloads/w.ts:3 → index.ts: workloads (6) imports the public entry; import the module itself',
      'stray/x.ts:1 → core/c.ts: stray/x.ts is in no layer (top folders: core, native, protocol, graph, objects, session, mappers, executor, jitlink, loader, workloads, harness; or the entry index.ts)',
      'session/s.ts:1 → harness/cli.ts: up: session (3) → harness (7)',
      'session/s.ts:2 → executor/cli.ts: up: session (3) → executor (4)',
    ],
  );
  t.regex(
    formatViolations(violations).split('\n')[0]!,
    /^graph\/link-graph\.ts:1 → objects\/elf\.ts \(\.\.\/objects\/elf\.js\): sideways: graph \(3\) → objects \(3\)$/,
  );
});
