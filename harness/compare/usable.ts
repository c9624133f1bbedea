import { JitmemError } from '../../core/errors.js';
import type { Report } from '../report/report.js';
import { pairedRoundRatios } from '../bench/ratios.js';

/**
 * Whether a report can be compared at all: it has results, and its speedups are those of its
 * results. A report whose results are empty, or whose ratios name rows it does not hold or
 * carry per-round speedups its rows' rounds do not give (ratios left from another run), would
 * make every row "unmatched" or judge numbers nothing measured: unusable input, not a pass.
 */
export function checkComparable(report: Report, source: string): void {
  if (report.results.length === 0) {
    throw new JitmemError(
      'ERR_REPORT_UNUSABLE',
      `${source} has no results (an empty results array): there is nothing to compare`,
      { source },
    );
  }
  for (const [i, ratio] of report.ratios.entries()) {
    const same = (r: Report['results'][number]) =>
      r.workload === ratio.workload && r.pattern === ratio.pattern && r.policy === ratio.policy;
    const baseline = report.results.find(
      (r) =>
        same(r) &&
        r.mapper === ratio.baseline &&
        (ratio.baseline === 'inprocess' ? r.executor === 'none' : r.executor === ratio.executor),
    );
    const candidate = report.results.find(
      (r) => same(r) && r.mapper === ratio.mapper && (r.executor === ratio.executor || r.executor === 'none'),
    );
    const where = `${source}: ratios[${i}] (${ratio.workload}/${ratio.pattern}/${ratio.mapper} over ${ratio.baseline}, ${ratio.policy})`;
    if (!baseline || !candidate) {
      throw new JitmemError(
        'ERR_REPORT_UNUSABLE',
        `${where} names a ${!baseline ? `baseline row (${ratio.baseline})` : `mapper row (${ratio.mapper})`} that results does not hold: the ratios do not match the results`,
        { source, index: i },
      );
    }
    if (!ratio.rounds) continue;
    const paired = pairedRoundRatios(baseline, candidate);
    const agrees =
      paired !== null &&
      paired.length === ratio.rounds.length &&
      paired.every((x, k) => Math.abs(x - ratio.rounds![k]!) <= 1e-9 * Math.max(1, Math.abs(x)));
    if (!agrees) {
      throw new JitmemError(
        'ERR_REPORT_UNUSABLE',
        `${where} holds per-round speedups that its results' rounds do not give (${paired ? `${paired.length} rounds from results, ${ratio.rounds.length} in the ratio` : 'the rows have no paired rounds'}): the ratios do not match the results`,
        { source, index: i },
      );
    }
  }
}
