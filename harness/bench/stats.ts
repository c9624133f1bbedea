import type { OperationLatency, Stats } from '../report/report.js';
import { mean, quantileSorted, studentTQuantile } from '../statistics.js';

/** Milliseconds to the nanosecond: finer digits are below what the clock resolves. */
export function roundToNs(ms: number): number {
  return Math.round(ms * 1e6) / 1e6;
}

/**
 * A report's statistics of one sample set (milliseconds), with the 95% margin of error of the mean as tinybench reports
 * it.
 */
export function toStats(raw: readonly number[]): Stats {
  const samples = raw.map(roundToNs);
  const s = Float64Array.from(samples).sort();
  const n = s.length;
  const m = mean(samples);
  let sq = 0;
  for (const x of s) sq += (x - m) ** 2;
  const sd = n > 1 ? Math.sqrt(sq / (n - 1)) : 0;
  const t = n > 1 ? studentTQuantile(0.975, n - 1) : 0;
  const rme = m > 0 ? ((t * sd) / Math.sqrt(n) / m) * 100 : 0;
  const q = (p: number) => roundToNs(quantileSorted(s, p));
  return {
    mean: roundToNs(m),
    p50: q(0.5),
    p75: q(0.75),
    p99: q(0.99),
    min: s[0]!,
    max: s[n - 1]!,
    rme,
    samplesCount: n,
    samples,
  };
}

/** The per-operation latency of a phase: its operations' durations over `iterations` measured iterations. */
export function operationLatencyOf(durations: readonly number[], iterations: number): OperationLatency {
  const s = Float64Array.from(durations).sort();
  const q = (p: number) => roundToNs(quantileSorted(s, p));
  return {
    perIteration: s.length / iterations,
    mean: roundToNs(mean(durations)),
    p50: q(0.5),
    p99: q(0.99),
    max: roundToNs(s[s.length - 1]!),
    count: s.length,
  };
}
