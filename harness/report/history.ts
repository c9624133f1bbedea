import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../../core/errors.js';
import { readReport, type RatioRow, type Report } from './report.js';
import { mean, median, meanInterval } from '../statistics.js';

/**
 * A history of bench reports: a directory of report files, one or more per commit, read back
 * in the order they were made. `jitmem history` draws the trend of the headline ratios over
 * it; `jitmem compare --history DIR` judges a new run against the last N stored runs.
 */

export interface HistoryEntry {
  readonly file: string;
  readonly report: Report;
}

/** The file name a report is stored under: its time and commit, so that a listing reads in order. */
export function historyFileName(report: Report): string {
  const when = report.createdAt.replace(/[:.]/g, '-');
  return `${when}-${report.env.commit ? report.env.commit.slice(0, 12) : 'nocommit'}.json`;
}

/** Copies a report file into the history directory (made if missing); returns where it went. */
export function storeReport(dir: string, file: string): string {
  const report = readReport(file);
  mkdirSync(dir, { recursive: true });
  const target = path.join(dir, historyFileName(report));
  copyFileSync(file, target);
  return target;
}

/** Every report in `dir`, oldest first (by createdAt). Files that are not reports are an error naming them. */
export function readHistory(dir: string): HistoryEntry[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    throw new JitmemError(
      'ERR_HISTORY_UNREADABLE',
      `cannot read history directory ${dir}: ${(err as Error).message}`,
      { dir },
      { cause: err },
    );
  }
  const entries = names.map((n) => ({ file: path.join(dir, n), report: readReport(path.join(dir, n)) }));
  return entries.sort((a, b) => a.report.createdAt.localeCompare(b.report.createdAt) || a.file.localeCompare(b.file));
}

/** The last `n` stored runs made from a commit other than `exclude` (HEAD's own runs are not its baseline). */
export function lastRuns(entries: readonly HistoryEntry[], n: number, exclude: string | null): HistoryEntry[] {
  return entries.filter((e) => exclude === null || e.report.env.commit !== exclude).slice(-n);
}

export function shortCommit(commit: string | null, dirty: boolean | null = null): string {
  return commit ? `${commit.slice(0, 7)}${dirty ? '+' : ''}` : 'no commit';
}

/**
 * A headline ratio: shared memory over RPC copy, per workload, pattern, policy and executor (what the
 * bench summary leads with).
 */
export function isHeadline(row: RatioRow): boolean {
  return row.mapper === 'shared' && row.baseline === 'rpc';
}

export function ratioLabel(row: RatioRow): string {
  return `${row.workload}/${row.pattern}/${row.mapper}/${row.executor}/${row.policy}/speedup-vs-${row.baseline}`;
}

export interface TrendPoint {
  /** Short commit hash (with + when the tree was dirty), the x axis. */
  readonly commit: string;
  readonly createdAt: string;
  /** Runs of this commit. */
  readonly runs: number;
  readonly speedup: number;
  readonly ci95: readonly [number, number];
}

export interface Trend {
  readonly label: string;
  readonly points: readonly TrendPoint[];
}

/**
 * One trend per ratio row the filter keeps, one point per commit in the order first stored:
 * with one run, the run's speedup and interval; with several, the geometric mean of their
 * speedups and a Student-t interval over the runs.
 */
export function trends(entries: readonly HistoryEntry[], keep: (row: RatioRow) => boolean = isHeadline): Trend[] {
  const byLabel = new Map<string, Map<string, { createdAt: string; rows: RatioRow[] }>>();
  for (const { report } of entries) {
    const commit = shortCommit(report.env.commit, report.env.dirty);
    for (const row of report.ratios) {
      if (!keep(row)) continue;
      const label = ratioLabel(row);
      const commits = byLabel.get(label) ?? byLabel.set(label, new Map()).get(label)!;
      const point = commits.get(commit) ?? commits.set(commit, { createdAt: report.createdAt, rows: [] }).get(commit)!;
      point.rows.push(row);
    }
  }
  return [...byLabel].map(([label, commits]) => ({
    label,
    points: [...commits].map(([commit, { createdAt, rows }]) => {
      if (rows.length === 1) return { commit, createdAt, runs: 1, speedup: rows[0]!.speedup, ci95: rows[0]!.ci95 };
      const logs = rows.map((r) => Math.log(r.speedup));
      const est = meanInterval(logs);
      return {
        commit,
        createdAt,
        runs: rows.length,
        speedup: Math.exp(est.mean),
        ci95: [Math.exp(est.low), Math.exp(est.high)] as const,
      };
    }),
  }));
}

/** A one-line trend in text: ▁▂▃ blocks scaled to the trend's own range. */
export function sparkline(values: readonly number[]): string {
  const blocks = '▁▂▃▄▅▆▇█';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return values.map((v) => blocks[hi > lo ? Math.round(((v - lo) / (hi - lo)) * 7) : 3]).join('');
}

/** The change of the last point against the median of the points before it (null with one point). */
export function lastChange(points: readonly TrendPoint[]): number | null {
  if (points.length < 2) return null;
  const before = points.slice(0, -1).map((p) => p.speedup);
  return points[points.length - 1]!.speedup / median(before) - 1;
}

export { mean };
