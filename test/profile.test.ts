import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runProfile } from '../harness/profile/profile.js';
import { runCli } from './helpers/run-cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-profile-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** Frames of a clinic flame page that name a function in a compiled file under dist/mappers/. */
function mapperFrames(html: string): string[] {
  return [...new Set(html.match(/"name":"[\w$.<> ]+ file:\/\/[^"]*\/dist\/mappers\/[^"]+\.js:\d+:\d+"/g) ?? [])];
}

test.serial('clinic flame (through its API) writes an HTML flame graph whose frames include functions from mappers/', async (t) => {
  const result = await runProfile({ tool: 'flame', outDir: path.join(dir, 'flame-alloc'), subcommand: 'bench-alloc', args: ['--time', '200', '--sizes', '1000'] });
  t.is(result.fallbackReason, undefined);
  t.is(result.tool, 'flame');
  t.regex(result.file, /\.clinic-flame\.html$/);
  const frames = mapperFrames(readFileSync(result.file, 'utf8'));
  t.log(frames.slice(0, 5).join('\n'));
  t.true(frames.some((f) => /\/dist\/mappers\/slab\/free-range-index\.js/.test(f)), 'no FreeRangeIndex frame');
});

test('jitmem profile --tool flame -- BENCH-FLAGS profiles jitmem bench and prints where the flame graph is', (t) => {
  if (runCli(['bench', '--help']).status !== 0) {
    t.log('skipped: jitmem bench is not available yet');
    t.pass();
    return;
  }
  const out = path.join(dir, 'flame-bench');
  const report = path.join(dir, 'bench.json');
  const r = runCli(['profile', '--tool', 'flame', '--out', out, '--', '--workload', 'cray', '--pattern', 'load', '--mapper', 'inprocess', '--policy', 'first-fit', '--time', '300', '--out', report]);
  t.is(r.status, 0, r.stderr);
  const file = /^flame graph: (.+\.clinic-flame\.html)$/m.exec(r.stdout)?.[1];
  t.truthy(file, r.stdout);
  t.true(file!.startsWith(out));
  const frames = mapperFrames(readFileSync(file!, 'utf8'));
  t.true(frames.some((f) => /\/dist\/mappers\/(slab\/|in-process)/.test(f)), `no mappers/ frame among ${frames.length}`);
  t.true(existsSync(report), 'the profiled bench wrote its report');
});

test('--tool cpuprof writes a V8 .cpuprofile of the bench with frames from mappers/', (t) => {
  const out = path.join(dir, 'cpuprof');
  const useBench = runCli(['bench', '--help']).status === 0;
  if (!useBench) {
    t.log('skipped: jitmem bench is not available yet');
    t.pass();
    return;
  }
  const r = runCli(['profile', '--tool', 'cpuprof', '--out', out, '--', '--workload', 'cray', '--pattern', 'load', '--mapper', 'inprocess', '--policy', 'first-fit', '--time', '300', '--out', path.join(dir, 'bench2.json')]);
  t.is(r.status, 0, r.stderr);
  const file = /^CPU profile \(.*\): (.+\.cpuprofile)$/m.exec(r.stdout)?.[1];
  t.truthy(file, r.stdout);
  const profile = JSON.parse(readFileSync(file!, 'utf8')) as { nodes: Array<{ callFrame: { functionName: string; url: string } }> };
  t.true(profile.nodes.some((n) => n.callFrame.url.includes('/dist/mappers/')));
});

test.serial('clinic doctor writes its HTML report', async (t) => {
  const result = await runProfile({ tool: 'doctor', outDir: path.join(dir, 'doctor'), subcommand: 'bench-alloc', args: ['--time', '200', '--sizes', '1000'] });
  t.is(result.fallbackReason, undefined);
  t.regex(result.file, /\.clinic-doctor\.html$/);
  t.regex(readFileSync(result.file, 'utf8'), /<html/i);
});

test.serial('when clinic fails, the run is repeated under the V8 profiler and the result says why', async (t) => {
  const outDir = path.join(dir, 'fallback');
  // A clinic that gets as far as its data folder before it fails, as clinic doctor does.
  const failing = () => ({
    collect: (_args: string[], cb: (err: Error | null, dataPath: string) => void) => {
      mkdirSync(path.join(outDir, '4242.clinic-flame'), { recursive: true });
      writeFileSync(path.join(outDir, '4242.clinic-flame', '4242.clinic-flame-traceevent'), 'partial');
      cb(new Error('0x could not start'), '');
    },
    visualize: () => undefined,
  });
  const result = await runProfile({ tool: 'flame', outDir, subcommand: 'bench-alloc', args: ['--time', '100', '--sizes', '1000'], loadClinic: failing });
  t.is(result.requested, 'flame');
  t.is(result.tool, 'cpuprof');
  t.is(result.fallbackReason, 'clinic flame failed: 0x could not start');
  t.is(result.exitStatus, 0);
  t.regex(result.file, /\.cpuprofile$/);
  t.deepEqual(readdirSync(outDir), [path.basename(result.file)], 'the failed clinic run left its data folder behind');
  const profile = JSON.parse(readFileSync(result.file, 'utf8')) as { nodes: Array<{ callFrame: { url: string } }> };
  t.true(profile.nodes.some((n) => n.callFrame.url.includes('/dist/mappers/slab/free-range-index.js')));
});

test('bad flags exit 2 and say what was expected', (t) => {
  let r = runCli(['profile', '--tool', 'perf']);
  t.is(r.status, 2);
  t.regex(r.stderr, /--tool must be one of flame, doctor, cpuprof; got "perf" \[ERR_INVALID_OPTION_VALUE\]/);
  r = runCli(['profile', '--', '--quick']);
  t.is(r.status, 2);
  t.regex(r.stderr, /--tool is required: flame, doctor or cpuprof/);
  t.is(r.stderr.trim().split('\n').length, 1, 'one line, not the whole help');
  r = runCli(['profile', '--tool', 'flame', '--quick']);
  t.is(r.status, 2);
  t.regex(r.stderr, /unknown option "--quick" for jitmem profile; bench flags go after '--'.*\[ERR_UNKNOWN_OPTION\]/);
  r = runCli(['profile', '--help']);
  t.is(r.status, 0);
  t.regex(r.stdout, /usage: jitmem profile --tool flame\|doctor\|cpuprof/);
});

test('jitmem profile --target executor or both is refused, saying how to profile the native executor', (t) => {
  for (const target of ['executor', 'both']) {
    const r = runCli(['profile', '--tool', 'cpuprof', '--target', target, '--', '--workload', 'cray']);
    t.is(r.status, 2, target);
    t.regex(r.stderr, new RegExp(`--target ${target}: jitmem's executor is a native program.*perf record -g -p PID.*\\[ERR_PROFILE_TARGET_UNSUPPORTED\\]`));
    t.is(r.stderr.trim().split('\n').length, 1);
  }
  const wrong = runCli(['profile', '--tool', 'cpuprof', '--target', 'kernel']);
  t.is(wrong.status, 2);
  t.regex(wrong.stderr, /--target must be one of controller, executor, both; got "kernel"/);
});
