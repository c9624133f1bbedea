import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The house rule, as code: every import in the non-test sources points down the layers of
 * docs/design.md §1. Imports are read with a small lexer (comments, strings, template literals and
 * regular expressions skipped), not by regular expression over the text, so a specifier inside a
 * comment or a string is not taken for an import and a multi-line import is.
 */

/** The floors, lowest first. Folders on one floor may not import each other (but see SIDEWAYS_ALLOWED). */
export const LAYERS: Readonly<Record<string, number>> = {
  core: 0,
  native: 1,
  protocol: 2,
  graph: 3,
  objects: 3,
  session: 3,
  mappers: 4,
  executor: 4,
  jitlink: 5,
  loader: 5,
  workloads: 6,
  harness: 7,
};

/**
 * Sideways arrows the design allows: `objects/` may use `graph/`'s model; `loader/` runs what
 * `jitlink/` links (the linker proper never imports the loader).
 */
const SIDEWAYS_ALLOWED = new Set(['objects->graph', 'loader->jitlink']);

/**
 * Process entries other layers may reach by file: spawning a process is not using its code.
 * None is a module now: the controller meets the executor only on the wire, and the session
 * starts it as the native program `jitmem-executor` (build/Release/, from executor/src/), which
 * no module reaches by file. The harness CLI is not among them: a library that spawns the CLI
 * depends on the top floor.
 */
const PROCESS_ENTRIES = new Set<string>();

/** The public entry may import anything; nothing imports it. */
export const ENTRY = 'index.ts';

/** Folders that are not sources of the package (tests may import anything). */
const NOT_SOURCES = new Set(['node_modules', 'dist', 'build', 'test', 'reports']);

/** `url`: `new URL('./module.js', import.meta.url)`, a module reached by its file (to spawn it, for instance). */
export type ImportKind = 'import' | 'export' | 'dynamic' | 'url';

export interface ImportSite {
  readonly specifier: string;
  /** 1-based line of the specifier. */
  readonly line: number;
  readonly kind: ImportKind;
}

export interface SourceFile {
  /** Path relative to the package root, with forward slashes. */
  readonly path: string;
  readonly text: string;
}

export interface LayerViolation {
  readonly file: string;
  readonly line: number;
  readonly specifier: string;
  /** The imported file relative to the root, or the specifier when it leaves the sources. */
  readonly target: string;
  readonly reason: string;
}

type Token =
  | { readonly type: 'word'; readonly value: string; readonly pos: number }
  | { readonly type: 'string'; readonly value: string; readonly pos: number }
  | { readonly type: 'punct'; readonly value: string; readonly pos: number };

const WORD_START = /[A-Za-z_$]/;
const WORD_PART = /[A-Za-z0-9_$]/;
/** After these words a `/` opens a regular expression; after any other word or a number it divides. */
const KEYWORDS_BEFORE_EXPRESSION = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

/** Tokens of TypeScript source, enough to find imports: words, string literals, punctuation. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  // Each open `${` of a template literal, so the `}` that closes it resumes the template.
  const braces: Array<'code' | 'template'> = [];
  let i = 0;
  const n = text.length;

  const skipString = (quote: string): string => {
    let value = '';
    i++;
    while (i < n && text[i] !== quote) {
      if (text[i] === '\\') {
        value += text[i + 1] ?? '';
        i += 2;
      } else {
        if (text[i] === '\n') break; // unterminated: stop at the line's end
        value += text[i++];
      }
    }
    i++;
    return value;
  };
  /** Skips template text up to the closing backquote or the next `${`. */
  const skipTemplate = (): void => {
    while (i < n) {
      if (text[i] === '\\') i += 2;
      else if (text[i] === '`') {
        i++;
        return;
      } else if (text[i] === '$' && text[i + 1] === '{') {
        i += 2;
        braces.push('template');
        tokens.push({ type: 'punct', value: '(', pos: i });
        return;
      } else i++;
    }
  };
  const regexAllowed = (): boolean => {
    const prev = tokens[tokens.length - 1];
    if (!prev) return true;
    if (prev.type === 'string') return false;
    if (prev.type === 'word') return KEYWORDS_BEFORE_EXPRESSION.has(prev.value);
    return !(prev.value === ')' || prev.value === ']' || prev.value === '}');
  };

  while (i < n) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"') {
      const pos = i;
      tokens.push({ type: 'string', value: skipString(c), pos });
    } else if (c === '`') {
      i++;
      // A template literal is an expression: a `/` after it divides.
      tokens.push({ type: 'punct', value: ')', pos: i });
      skipTemplate();
    } else if (c === '/' && regexAllowed()) {
      i++;
      let inClass = false;
      while (i < n && text[i] !== '\n') {
        if (text[i] === '\\') i += 2;
        else if (text[i] === '[' || text[i] === ']') {
          inClass = text[i] === '[';
          i++;
        } else if (text[i] === '/' && !inClass) {
          i++;
          break;
        } else i++;
      }
      while (i < n && WORD_PART.test(text[i]!)) i++;
      tokens.push({ type: 'punct', value: ')', pos: i });
    } else if (WORD_START.test(c) || /[0-9]/.test(c)) {
      const start = i;
      while (i < n && WORD_PART.test(text[i]!)) i++;
      tokens.push({ type: 'word', value: text.slice(start, i), pos: start });
    } else if (c === '{') {
      braces.push('code');
      tokens.push({ type: 'punct', value: c, pos: i++ });
    } else if (c === '}') {
      i++;
      if (braces.pop() === 'template') {
        tokens.push({ type: 'punct', value: ')', pos: i });
        skipTemplate();
      } else tokens.push({ type: 'punct', value: c, pos: i - 1 });
    } else if (/\s/.test(c)) {
      i++;
    } else {
      tokens.push({ type: 'punct', value: c, pos: i++ });
    }
  }
  return tokens;
}

/** Words and punctuation that may stand between `import`/`export` and `from`. */
function isImportClausePart(t: Token): boolean {
  if (t.type === 'word') return true;
  return t.value === '{' || t.value === '}' || t.value === ',' || t.value === '*';
}

/**
 * Every module specifier the file names: `import ... from`, `export ... from`, `import '...'`,
 * `import('...')` with a literal, and `new URL('....js', import.meta.url)` (a module file the
 * code reaches by path: to spawn it, say; data files named that way are not modules and are left out).
 */
export function readImports(text: string): ImportSite[] {
  const tokens = tokenize(text);
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const lineOf = (pos: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const sites: ImportSite[] = [];
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    const next = tokens[k + 1];
    const prev = tokens[k - 1];
    // `x.import(...)` or `obj.from 'x'` are not module syntax.
    if (prev?.type === 'punct' && prev.value === '.') continue;
    if (t.type === 'word' && t.value === 'import' && next?.type === 'string') {
      sites.push({ specifier: next.value, line: lineOf(next.pos), kind: 'import' });
    } else if (t.type === 'word' && t.value === 'import' && next?.type === 'punct' && next.value === '(') {
      const arg = tokens[k + 2];
      const close = tokens[k + 3];
      if (arg?.type === 'string' && close?.type === 'punct' && (close.value === ')' || close.value === ',')) {
        sites.push({ specifier: arg.value, line: lineOf(arg.pos), kind: 'dynamic' });
      }
    } else if (t.type === 'word' && t.value === 'new' && next?.type === 'word' && next.value === 'URL') {
      const shape = tokens
        .slice(k + 2, k + 10)
        .map((x) => (x.type === 'string' ? '<string>' : x.value))
        .join(' ');
      const arg = tokens[k + 3];
      if (shape === '( <string> , import . meta . url' && arg?.type === 'string' && /\.m?js$/.test(arg.value)) {
        sites.push({ specifier: arg.value, line: lineOf(arg.pos), kind: 'url' });
      }
    } else if (t.type === 'word' && t.value === 'from' && next?.type === 'string') {
      // Walk back over the import clause to the keyword that opens the statement.
      let j = k - 1;
      while (
        j >= 0 &&
        isImportClausePart(tokens[j]!) &&
        !(tokens[j]!.type === 'word' && (tokens[j]!.value === 'import' || tokens[j]!.value === 'export'))
      )
        j--;
      const opener = tokens[j];
      if (opener?.type === 'word' && (opener.value === 'import' || opener.value === 'export')) {
        sites.push({ specifier: next.value, line: lineOf(next.pos), kind: opener.value });
      }
    }
  }
  return sites;
}

/** The floor of a source file: its top folder's layer, 'entry' for index.ts, null when it has none. */
export function layerOf(file: string): { name: string; layer: number } | null {
  if (file === ENTRY) return { name: 'index.ts', layer: Number.POSITIVE_INFINITY };
  const top = file.split('/')[0]!;
  if (!file.includes('/') || !(top in LAYERS)) return null;
  return { name: top, layer: LAYERS[top]! };
}

function describe(l: { name: string; layer: number }): string {
  return Number.isFinite(l.layer) ? `${l.name} (${l.layer})` : `${l.name} (the public entry)`;
}

/** A relative specifier of `file` as a path from the root: `.js` names its `.ts` source, `.cjs` its `.cts`. */
function resolveSpecifier(file: string, specifier: string): string {
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return joined.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts').replace(/\.cjs$/, '.cts');
}

/** Every arrow of `files` that points up or sideways against the layers. */
export function checkLayers(files: readonly SourceFile[]): LayerViolation[] {
  const violations: LayerViolation[] = [];
  for (const file of files) {
    const from = layerOf(file.path);
    for (const site of readImports(file.text)) {
      const { specifier, line } = site;
      if (!specifier.startsWith('.')) continue; // a package or node: builtin
      const target = resolveSpecifier(file.path, specifier);
      const add = (reason: string): void => {
        violations.push({ file: file.path, line, specifier, target, reason });
      };
      if (!from) {
        add(`${file.path} is in no layer (top folders: ${Object.keys(LAYERS).join(', ')}; or the entry ${ENTRY})`);
        continue;
      }
      if (target.startsWith('../')) {
        add(`leaves the package sources`);
        continue;
      }
      const top = target.split('/')[0]!;
      if (NOT_SOURCES.has(top)) {
        add(`${describe(from)} imports from ${top}/, which is not a package source`);
        continue;
      }
      const to = layerOf(target);
      if (!to) {
        add(`${describe(from)} imports ${target}, which is in no layer`);
        continue;
      }
      if (from.name === to.name) continue;
      if (site.kind === 'url' && PROCESS_ENTRIES.has(target)) continue;
      if (target === ENTRY) {
        add(`${describe(from)} imports the public entry; import the module itself`);
      } else if (to.layer > from.layer) {
        add(`up: ${describe(from)} → ${describe(to)}`);
      } else if (to.layer === from.layer && !SIDEWAYS_ALLOWED.has(`${from.name}->${to.name}`)) {
        add(`sideways: ${describe(from)} → ${describe(to)}`);
      }
    }
  }
  return violations;
}

/**
 * Relative references (imports and module URLs) that name no file of `files`: tsc catches a
 * static import of a missing module, but not a module reached by URL, which fails only when
 * the code runs.
 */
export function danglingReferences(files: readonly SourceFile[]): LayerViolation[] {
  const known = new Set(files.map((f) => f.path));
  const dangling: LayerViolation[] = [];
  for (const file of files) {
    for (const { specifier, line } of readImports(file.text)) {
      if (!specifier.startsWith('.')) continue;
      const target = resolveSpecifier(file.path, specifier);
      if (!known.has(target))
        dangling.push({ file: file.path, line, specifier, target, reason: 'names a module that does not exist' });
    }
  }
  return dangling;
}

/** The package's TypeScript sources under `root`: the non-test ones, or with `test/` too. */
export function listSources(root: string, options: { includeTests?: boolean } = {}): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (
          !dir &&
          (NOT_SOURCES.has(entry.name) || entry.name.startsWith('.')) &&
          !(options.includeTests && entry.name === 'test')
        )
          continue;
        if (entry.name === 'node_modules') continue;
        walk(rel);
      } else if (/\.([mc]?ts|tsx)$/.test(entry.name) && !/\.d\.[mc]?ts$/.test(entry.name)) {
        files.push({ path: rel, text: readFileSync(path.join(root, rel), 'utf8') });
      }
    }
  };
  walk('');
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** One line per violation: `file:line → target — reason`. */
export function formatViolations(violations: readonly LayerViolation[]): string {
  return violations.map((v) => `${v.file}:${v.line} → ${v.target} (${v.specifier}): ${v.reason}`).join('\n');
}
