import { readFileSync } from 'node:fs';
import { JitmemError } from '../../core/errors.js';
import { DEFAULT_THRESHOLD, type CompareOptions, type RowKey, type ThresholdRule } from './comparison.js';

/**
 * Parses a percentage as the CLI takes it: `5%`, `5` (both five percent) or `2.5%`.
 * Returns a fraction. Throws ERR_INVALID_OPTION_VALUE naming the flag and the text.
 */
export function parsePercent(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const value = m ? Number(m[1]) : Number.NaN;
  if (!Number.isFinite(value)) {
    throw new JitmemError(
      'ERR_INVALID_OPTION_VALUE',
      `${flag} must be a percentage such as 5% or 2.5; got ${JSON.stringify(text)}`,
      { option: flag, value: text },
    );
  }
  return value / 100;
}

/**
 * Parses one `--threshold-for PATTERN=PERCENT` rule. PATTERN is a row label
 * `workload/pattern/mapper/executor/policy/measure` in which `*` matches any text inside one
 * segment; a pattern with fewer segments matches every row those leading segments match.
 */
export function parseThresholdRule(text: string): ThresholdRule {
  const eq = text.lastIndexOf('=');
  const pattern = eq > 0 ? text.slice(0, eq).trim() : '';
  if (eq <= 0 || pattern === '') {
    throw new JitmemError(
      'ERR_INVALID_OPTION_VALUE',
      `--threshold-for expects PATTERN=PERCENT such as 'python/churn/*=10%'; got ${JSON.stringify(text)}`,
      { option: '--threshold-for', value: text },
    );
  }
  const segments = pattern.split('/');
  if (segments.length > 6 || segments.some((s) => s === '')) {
    throw new JitmemError(
      'ERR_INVALID_OPTION_VALUE',
      `--threshold-for pattern ${JSON.stringify(pattern)} must be 1 to 6 non-empty segments workload/pattern/mapper/executor/policy/measure separated by '/'`,
      { option: '--threshold-for', value: text },
    );
  }
  return { pattern, threshold: parsePercent(`--threshold-for ${pattern}`, text.slice(eq + 1)) };
}

function globSegment(glob: string, value: string): boolean {
  const re = new RegExp(
    '^' +
      glob
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
  );
  return re.test(value);
}

/**
 * Whether a threshold pattern matches a row. The pattern segment `sweep` matches
 * `sweep@65536` too, and `load` matches `load+cold`, unless the glob names them.
 */
export function patternMatches(pattern: string, key: RowKey): boolean {
  const values = [key.workload, key.pattern, key.mapper, key.executor, key.policy, key.measure];
  return pattern.split('/').every((glob, i) => {
    const value = values[i]!;
    if (globSegment(glob, value)) return true;
    if (i !== 1) return false;
    let bare = value;
    if (!glob.includes('+')) bare = bare.replace(/\+.*$/, '');
    if (!glob.includes('@')) bare = bare.replace(/@\d+/, '');
    return globSegment(glob, bare);
  });
}

/**
 * The least threshold of a row with an in-process side (the in-process cell's time, or a speedup
 * over or of it), unless a --threshold-for or --thresholds rule says otherwise. The in-process
 * cell runs in the bench's own process, with that process's JIT-compiled code and heap: between
 * processes of one commit its time moved up to 12% where its rounds within one process agreed to
 * 1% (one quick run in eight of the committed baseline, cray's in-process iteration 7% slower,
 * its dual mapping over in-process 8.5% higher; in CI, one run in five 10-12% off the other
 * four, which one run against one flagged as a regression in two pairs of ten).
 * The calibrated gate measures that spread and holds those rows to it; one run against one
 * cannot see it.
 */
export const IN_PROCESS_THRESHOLD_FLOOR = 0.15;

/** Whether a row's figure rests on the in-process cell's time. */
export function hasInProcessSide(key: RowKey): boolean {
  return key.mapper === 'inprocess' || key.measure.endsWith('speedup-vs-inprocess');
}

export function thresholdFor(key: RowKey, options: CompareOptions): number {
  let threshold = options.threshold ?? DEFAULT_THRESHOLD;
  if (hasInProcessSide(key)) threshold = Math.max(threshold, IN_PROCESS_THRESHOLD_FLOOR);
  for (const rule of options.thresholdRules ?? []) if (patternMatches(rule.pattern, key)) threshold = rule.threshold;
  return threshold;
}

/**
 * The per-row thresholds of a calibration file (the JSON `jitmem compare --calibrate RUN...
 * --head-runs N --format json` writes): one rule per row that has a gate threshold, each an
 * exact row label; a row it marks not gated gets an infinite threshold (shown, never judged
 * a regression or undecided). Throws ERR_INVALID_OPTION_VALUE naming the file when it cannot be read or
 * holds no such row.
 */
export function readThresholdFile(file: string): ThresholdRule[] {
  const bad = (why: string) =>
    new JitmemError('ERR_INVALID_OPTION_VALUE', `--thresholds ${file}: ${why}`, {
      option: '--thresholds',
      value: file,
    });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw bad(`not a readable JSON file (${(e as Error).message})`);
  }
  const rows = (json as { rows?: unknown }).rows;
  if (!Array.isArray(rows))
    throw bad('no "rows" array: expected the output of compare --calibrate --head-runs N --format json');
  const rules: ThresholdRule[] = [];
  for (const row of rows as Array<{ label?: unknown; gate?: { threshold?: unknown; gated?: unknown } }>) {
    const threshold = row.gate?.threshold;
    if (typeof row.label !== 'string' || typeof threshold !== 'number' || !(threshold > 0)) continue;
    // A row the calibration does not gate: shown with its change, never a verdict (an infinite threshold).
    rules.push({ pattern: row.label, threshold: row.gate?.gated === false ? Infinity : threshold });
  }
  if (!rules.length) throw bad('no row with a gate threshold: calibrate with --head-runs N');
  return rules;
}
