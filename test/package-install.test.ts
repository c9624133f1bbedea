import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './helpers/object-fixtures.js';
import { processExists, shmObjects } from './helpers/executor-process.js';
import { OPTIONAL_PACKAGES } from '../harness/optional-dependency.js';

/**
 * The package as a user gets it: `npm pack`, then `npm install` of the tarball into an empty
 * folder (the addon built there from the shipped sources by the install script, no TypeScript
 * at hand), then plain programs that `import ... from 'jitmem'`.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const INSTALL_TIMEOUT_MS = 5 * 60_000;

/** The environment of a user's shell: none of the npm_* variables of a surrounding `npm test`. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
}

function run(
  command: string,
  args: readonly string[],
  cwd: string,
  timeout = INSTALL_TIMEOUT_MS,
): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env: userEnv(), encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

function described(r: SpawnSyncReturns<string>): string {
  return `status ${r.status}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

interface Installed {
  /** The consumer's folder: package.json, node_modules/jitmem, the programs. */
  readonly app: string;
  readonly tarballFiles: readonly string[];
  readonly installLog: string;
}

const temp = makeTempDir('jitmem-package-');
/** Executors the programs below started, by pid: none may outlive the test. */
const executorPids: number[] = [];
let installation: Promise<Installed> | undefined;

function install(): Promise<Installed> {
  installation ??= (async () => {
    const packDir = path.join(temp.dir, 'pack');
    const app = path.join(temp.dir, 'app');
    mkdirSync(packDir);
    mkdirSync(app);
    // --ignore-scripts: the tree is already built, and prepack's clean rebuild would pull
    // dist/ from under the other test files running beside this one.
    const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], root);
    if (pack.status !== 0) throw new Error(`npm pack failed: ${described(pack)}`);
    const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = path.join(packDir, packed!.filename);
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'jitmem-consumer', private: true, type: 'module' }, null, 2),
    );
    // The dependencies come from npm's cache when it has them (`npm ci` filled it), else the registry.
    const npmInstall = run(
      'npm',
      [
        'install',
        tarball,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        '--foreground-scripts',
      ],
      app,
    );
    if (npmInstall.status !== 0) throw new Error(`npm install of the tarball failed: ${described(npmInstall)}`);
    return { app, tarballFiles: packed!.files.map((f) => f.path), installLog: npmInstall.stdout + npmInstall.stderr };
  })();
  return installation;
}

test.after.always('the temp folders go, and no executor is left', () => {
  for (const pid of executorPids) if (processExists(pid)) process.kill(pid, 'SIGKILL');
  temp.remove();
});

async function installed(t: ExecutionContext): Promise<Installed> {
  t.timeout(INSTALL_TIMEOUT_MS + 60_000, 'npm pack, npm install (which compiles the addon) and the program');
  return install();
}

const ANSWER_PROGRAM = `import { SlabMemoryManager, SharedMemoryMapper, ExecutorSession, allocGroup, R, X } from 'jitmem';

const session = await ExecutorSession.spawn();
console.log('executor ' + session.pid);
try {
  const manager = new SlabMemoryManager(new SharedMemoryMapper(session), { granularity: 1 << 20 });
  // mov eax, 42; ret
  const code = Uint8Array.of(0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3);
  const graph = { name: 'answer', sections: [{ name: '.text', group: allocGroup(R | X), alignment: 16, size: code.length, content: code }] };
  const alloc = await manager.allocate(graph);
  alloc.writeContent();
  const live = await alloc.finalize();
  console.log(await session.runAsVoid(live.sectionAddress('.text')));
  await manager.deallocate([live]);
  await manager.close();
} finally {
  await session.close();
}
`;

/** The same names, typed: a mistake must be a type error, so the types are really seen (not \`any\`). */
const TYPED_PROGRAM = `import {
  SlabMemoryManager,
  SharedMemoryMapper,
  InProcessMemoryMapper,
  RpcCopyMapper,
  ExecutorSession,
  JitmemError,
  readObjectFile,
  layoutGraph,
  allocGroup,
  R,
  X,
  type LinkGraph,
  type MemoryMapper,
  type SlabStats,
  type ElfObject,
  type Report,
} from 'jitmem';

export async function answer(): Promise<number> {
  const session: ExecutorSession = await ExecutorSession.spawn();
  const mapper: MemoryMapper = new SharedMemoryMapper(session);
  const manager = new SlabMemoryManager(mapper, { granularity: 1 << 20, policy: 'best-fit' });
  const code = Uint8Array.of(0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3);
  const graph: LinkGraph = { name: 'answer', sections: [{ name: '.text', group: allocGroup(R | X), alignment: 16, size: code.length, content: code }] };
  const pages: number = layoutGraph(graph, mapper.pageSize).size;
  const alloc = await manager.allocate(graph);
  alloc.writeContent();
  const live = await alloc.finalize();
  const result: number = await session.runAsVoid(live.sectionAddress('.text'));
  const stats: SlabStats = manager.stats();
  // @ts-expect-error: allocate takes a LinkGraph
  await manager.allocate('not a graph');
  // @ts-expect-error: the fit policies are 'first-fit' and 'best-fit'
  new SlabMemoryManager(new InProcessMemoryMapper(), { policy: 'worst-fit' });
  await manager.deallocate([live]);
  await session.close();
  return result + pages * 0 + stats.liveBytes * 0;
}

export function objects(file: string): ElfObject[] {
  return readObjectFile(file);
}

export function codeOf(err: unknown): string | undefined {
  return err instanceof JitmemError ? err.code : undefined;
}

export type Mappers = [InProcessMemoryMapper, SharedMemoryMapper, RpcCopyMapper];
export type Schema = Report['schema'];
`;

test.serial(
  'the tarball ships dist/ without tests or source maps, the addon sources and the licence; no build, tests, CI files or baseline',
  async (t) => {
    const { tarballFiles: files } = await installed(t);
    for (const f of [
      'package.json',
      'LICENSE',
      'README.md',
      'binding.gyp',
      'dist/index.js',
      'dist/index.d.ts',
      'executor/src/main.cc',
      'dist/harness/cli.js',
      'reports/schema-v1.json',
      'harness/charts/fonts/DejaVuSans.ttf',
    ]) {
      t.true(files.includes(f), `${f} is in the tarball`);
    }
    t.true(
      files.some((f) => /^native\/src\/.+\.(cc|h)$/.test(f)),
      'the addon sources are in the tarball',
    );
    const unwanted = files.filter(
      (f) =>
        /^dist\/test\//.test(f) ||
        f.endsWith('.map') ||
        f.startsWith('build/') ||
        f.startsWith('test/') ||
        f.startsWith('.') ||
        f === 'reports/baseline.json' ||
        f === 'package-lock.json' ||
        /\.ts$/.test(f.replace(/\.d\.ts$/, '')),
    );
    t.deepEqual(unwanted, []);
  },
);

test.serial(
  'installing the tarball builds the addon from the shipped sources and pulls none of the optional packages',
  async (t) => {
    const { app, installLog } = await installed(t);
    const pkg = path.join(app, 'node_modules', 'jitmem');
    t.true(
      existsSync(path.join(pkg, 'build', 'Release', 'jitmem_native.node')),
      `the install script built the addon:\n${installLog}`,
    );
    t.true(
      existsSync(path.join(pkg, 'build', 'Release', 'jitmem-executor')),
      `the install script built the native executor:\n${installLog}`,
    );
    const bin = path.join(app, 'node_modules', '.bin', 'jitmem-executor');
    t.true(existsSync(bin), 'the package ships the jitmem-executor bin');
    t.regex(
      execFileSync(bin, ['--help'], { encoding: 'utf8' }),
      /^usage: jitmem executor/,
      'the bin starts the native executor',
    );
    t.regex(installLog, /node-gyp|gyp info/, 'node-gyp ran at install');
    t.false(existsSync(path.join(pkg, 'dist', 'test')));
    t.false(existsSync(path.join(app, 'node_modules', 'typescript')), 'an installed package needs no TypeScript');
    t.deepEqual(
      OPTIONAL_PACKAGES.filter((name) => existsSync(path.join(app, 'node_modules', name))),
      [],
    );
  },
);

test.serial(
  'a plain .mjs imports jitmem, spawns an executor, allocates b8 2a 00 00 00 c3 through the shared-memory mapper, runs it and gets 42; no executor or shm object is left',
  async (t) => {
    const { app } = await installed(t);
    writeFileSync(path.join(app, 'answer.mjs'), ANSWER_PROGRAM);
    const r = run(process.execPath, ['answer.mjs'], app, 60_000);
    const pid = Number(/^executor (\d+)$/m.exec(r.stdout)?.[1]);
    if (Number.isSafeInteger(pid)) executorPids.push(pid);
    t.is(r.status, 0, described(r));
    t.is(r.stderr, '');
    t.deepEqual(r.stdout.split('\n'), [`executor ${pid}`, '42', '']);
    t.false(processExists(pid), `executor ${pid} has exited`);
    t.deepEqual(shmObjects(`jitmem_${pid}_`), []);
  },
);

test.serial(
  "TypeScript sees the types: a .ts file importing the same names, and the README's example, type-check against the installed package; deliberate mistakes are type errors",
  async (t) => {
    const { app } = await installed(t);
    writeFileSync(path.join(app, 'answer.ts'), TYPED_PROGRAM);
    writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          strict: true,
          noEmit: true,
          // Our declarations are checked too, not skipped.
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [path.join(root, 'node_modules', '@types')],
        },
        files: ['answer.ts', 'readme.ts'],
      }),
    );
    // The README's example is checked the same way, so that it shows the real names.
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const example = /## Using the allocator[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    t.truthy(example, "README.md has a ```ts example under 'Using the allocator'");
    t.regex(example!, /from 'jitmem';/);
    writeFileSync(path.join(app, 'readme.ts'), example!);
    const tsc = path.join(root, 'node_modules', '@typescript', 'native', 'bin', 'tsc');
    const checked = run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 120_000);
    t.is(checked.status, 0, described(checked));
    // Without the @ts-expect-error lines, the same file fails: the names are typed, not `any`.
    writeFileSync(path.join(app, 'answer.ts'), TYPED_PROGRAM.replaceAll('// @ts-expect-error', '//'));
    const unchecked = run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 120_000);
    t.not(unchecked.status, 0);
    t.regex(
      unchecked.stdout,
      /answer\.ts\(\d+,\d+\): error TS2345: Argument of type 'string' is not assignable to parameter of type 'LinkGraph'/,
    );
    t.regex(
      unchecked.stdout,
      /answer\.ts\(\d+,\d+\): error TS2322: Type '"worst-fit"' is not assignable to type 'FitPolicy/,
    );
  },
);

test.serial(
  'the installed CLI writes reports under ./jitmem-reports/ of the current folder, and charts and profile name the optional packages they need',
  async (t) => {
    const { app } = await installed(t);
    const pkg = path.join(app, 'node_modules', 'jitmem');
    const cli = path.join(app, 'node_modules', '.bin', 'jitmem');
    // Our own workload: the object file the install just compiled.
    const objDir = path.join(pkg, 'build', 'Release', 'obj.target');
    const objects: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name));
        else if (e.name.endsWith('.o')) objects.push(path.join(dir, e.name));
      }
    };
    walk(objDir);
    t.true(objects.length > 0);
    const work = path.join(temp.dir, 'work');
    mkdirSync(work);
    // The user's project is a git repository of its own: its commit is not jitmem's to report.
    for (const args of [
      ['init', '-q'],
      ['-c', 'user.name=user', '-c', 'user.email=user@example.org', 'commit', '-q', '--allow-empty', '-m', 'project'],
    ]) {
      const git = run('git', args, app, 30_000);
      t.is(git.status, 0, described(git));
    }
    const bench = run(
      process.execPath,
      [
        cli,
        'bench',
        '--objects',
        objects[0]!,
        '--pattern',
        'load',
        '--mapper',
        'inprocess',
        '--time',
        '50',
        '--iterations',
        '2',
        '--rounds',
        '1',
        '--no-charts',
      ],
      work,
      120_000,
    );
    t.is(bench.status, 0, described(bench));
    const reports = readdirSync(path.join(work, 'jitmem-reports'));
    t.is(reports.length, 1);
    t.regex(reports[0]!, /^bench-.*\.json$/);
    t.regex(bench.stdout, /report: jitmem-reports\/bench-.*\.json/);
    t.false(existsSync(path.join(pkg, 'reports', 'out')), 'nothing is written inside the installed package');
    const report = JSON.parse(readFileSync(path.join(work, 'jitmem-reports', reports[0]!), 'utf8')) as {
      env: { commit: string | null; dirty: boolean | null };
    };
    t.deepEqual([report.env.commit, report.env.dirty], [null, null]);

    const charts = run(process.execPath, [cli, 'charts', path.join(work, 'jitmem-reports', reports[0]!)], work, 60_000);
    t.is(charts.status, 2, described(charts));
    t.is(
      charts.stderr,
      'jitmem charts: writing charts needs the packages vega, vega-lite and @resvg/resvg-js, which are not installed (optional, so that using jitmem as a library does not pull them); install with: npm install vega vega-lite @resvg/resvg-js [ERR_OPTIONAL_DEPENDENCY_MISSING]\n',
    );
    t.false(existsSync(path.join(work, 'jitmem-reports', 'charts')));

    const profile = run(process.execPath, [cli, 'profile', '--tool', 'flame', '--', '--quick'], work, 60_000);
    t.is(profile.status, 2, described(profile));
    t.is(
      profile.stderr,
      'jitmem profile: jitmem profile --tool flame needs the package @clinic/flame, which is not installed (optional, so that using jitmem as a library does not pull it); install with: npm install @clinic/flame [ERR_OPTIONAL_DEPENDENCY_MISSING]\n',
    );
    t.false(existsSync(path.join(work, 'jitmem-reports', 'profile')), 'it says so before making anything');
  },
);
