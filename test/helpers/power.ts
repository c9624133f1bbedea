import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ForwardingMapper } from '../../mappers/forwarding-mapper.js';
import type { AllocInfo, MemoryMapper } from '../../mappers/memory-mapper.js';
import type { Report } from '../../harness/report/report.js';
import { runCli } from './run-cli.js';

/**
 * The power check of the CI gate: a shared-memory mapper, wrapped through the library API, whose
 * initialize does real extra work (SHA-256 passes over the working memory it is about to make
 * executable), sized to cost 30% of the initialize phase; five quick benches with it and five
 * without, then `compare` as the gate runs it. Used by test/power.test.ts (one try) and by
 * test/tools/detection-rate.ts (ten tries, for the rate).
 */

/**
 * Milliseconds SHA-256 takes per byte here, on a warm 1 MiB buffer: the fastest of 32 passes,
 * the cost without other work on the machine, as extraInitializeMs takes initialize's.
 */
export function hashMsPerByte(): number {
  const buffer = new Uint8Array(1 << 20).fill(7);
  for (let i = 0; i < 8; i++) createHash('sha256').update(buffer).digest();
  let best = Infinity;
  for (let i = 0; i < 32; i++) {
    const t0 = performance.now();
    createHash('sha256').update(buffer).digest();
    best = Math.min(best, performance.now() - t0);
  }
  return best / buffer.length;
}

/**
 * A mapper whose initialize first hashes `passes` times the content of every segment (whole
 * passes, then a prefix for the fraction): work proportional to the bytes the transport moves.
 */
export class ChecksumOnInitializeMapper extends ForwardingMapper {
  /** Bytes hashed so far (so a test can see the work was done). */
  hashed = 0;

  constructor(
    inner: MemoryMapper,
    private readonly passes: number,
  ) {
    super(inner);
  }

  override initialize(info: AllocInfo): Promise<number> {
    for (const seg of info.segments) {
      const memory = seg.workingMemory ?? this.inner.prepare(info.mappingBase + seg.offset, seg.contentSize);
      const bytes = memory.subarray(0, seg.contentSize);
      let left = this.passes * bytes.length;
      const hash = createHash('sha256');
      while (left >= bytes.length && bytes.length > 0) {
        hash.update(bytes);
        left -= bytes.length;
      }
      if (left > 0) hash.update(bytes.subarray(0, Math.round(left)));
      hash.digest();
      this.hashed += this.passes * bytes.length;
    }
    return this.inner.initialize(info);
  }
}

const benchEntry = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../tools/bench-slow-initialize.js');

/** Per workload: extra milliseconds per iteration for the shared mapper, and the content bytes one iteration moves. */
export type ExtraWork = Record<string, { readonly extraMs: number; readonly contentBytes: number }>;

/**
 * 30% (`fraction`) of the time the shared mapper's fastest iteration spent in initialize, per
 * workload. The fastest iteration is the cost without other work on the machine (on a loaded
 * machine the median can be several times that). Its initialize share is the initialize phase's
 * mean share of the iteration (the bench splits the time of overlapping operations among the
 * phases under way, so the shares sum to the iteration).
 */
export function extraInitializeMs(report: Report, fraction = 0.3): ExtraWork {
  const out: Record<string, { extraMs: number; contentBytes: number }> = {};
  for (const row of report.results) {
    const initialize = row.phases.initialize;
    if (row.mapper !== 'shared' || row.executor !== 'jitmem' || row.pattern !== 'load' || !initialize) continue;
    const phaseSum = Object.values(row.phases).reduce((a, s) => a + (s?.mean ?? 0), 0);
    const share = phaseSum > 0 ? Math.min(1, initialize.mean / phaseSum) : 0;
    out[row.workload] = { extraMs: fraction * row.latency.min * share, contentBytes: row.bytes.content };
  }
  return out;
}

/**
 * One quick bench in a fresh process; with `extraMs`, the shared mapper's initialize does that much more hashing per
 * iteration.
 */
export function quickBench(out: string, extraMs?: ExtraWork): void {
  const r = spawnSync(process.execPath, [benchEntry, out, JSON.stringify(extraMs ?? {})], {
    encoding: 'utf8',
    timeout: 10 * 60_000,
  });
  if (r.status !== 0) throw new Error(`quick bench failed (${r.status}): ${r.stderr}`);
}

/** The committed per-row thresholds the CI gate holds each speedup to (reports/gate-thresholds.json). */
export const GATE_THRESHOLDS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../reports/gate-thresholds.json',
);

/**
 * The gate's flags over runs: what .ci/gate passes besides the files (whole-iteration speedups,
 * each held to its calibrated threshold; `--phases` would add each phase's, which the change
 * shows at full size, but the gate does not judge them, so neither does its power check).
 */
export const GATE_FLAGS = ['--ratios-only', '--thresholds', GATE_THRESHOLDS] as const;

export interface DetectionTry {
  readonly status: number | null;
  /** The shared mapper's ratio rows: label, change and verdict. */
  readonly shared: ReadonlyArray<{ label: string; change: number; noise: number | null; p: number; verdict: string }>;
  readonly extraMs: ExtraWork;
}

/**
 * Five quick benches without the extra work and five with it, alternated (so a drift of the
 * machine falls on both alike), then the gate: BASE = the runs without (one as BASE, four as
 * --base-run), HEAD = the runs with (one as HEAD, four as --noise).
 */
export function detectionTry(dir: string, tag: string): DetectionTry {
  const without: string[] = [];
  const withExtra: string[] = [];
  const first = path.join(dir, `${tag}-without-0.json`);
  quickBench(first);
  without.push(first);
  const extraMs = extraInitializeMs(JSON.parse(readFileSync(first, 'utf8')) as Report);
  for (let i = 0; i < 5; i++) {
    const slow = path.join(dir, `${tag}-with-${i}.json`);
    quickBench(slow, extraMs);
    withExtra.push(slow);
    if (i < 4) {
      const plain = path.join(dir, `${tag}-without-${i + 1}.json`);
      quickBench(plain);
      without.push(plain);
    }
  }
  const r = runCli(
    [
      'compare',
      without[0]!,
      withExtra[0]!,
      ...GATE_FLAGS,
      ...without.slice(1).flatMap((f) => ['--base-run', f]),
      ...withExtra.slice(1).flatMap((f) => ['--noise', f]),
      '--format',
      'json',
    ],
    {
      ...process.env,
      GITHUB_STEP_SUMMARY: '',
    },
  );
  // 3 is INCONCLUSIVE (rows too noisy to judge): not a detection, and not an error of compare.
  if (r.status !== 0 && r.status !== 1 && r.status !== 3) throw new Error(`compare failed (${r.status}): ${r.stderr}`);
  const json = JSON.parse(r.stdout) as {
    ratios: Array<{
      label: string;
      key: { mapper: string };
      change: number;
      noise: number | null;
      p: number;
      verdict: string;
    }>;
  };
  return {
    status: r.status,
    shared: json.ratios
      .filter((x) => x.key.mapper === 'shared')
      .map(({ label, change, noise, p, verdict }) => ({ label, change, noise, p, verdict })),
    extraMs,
  };
}
