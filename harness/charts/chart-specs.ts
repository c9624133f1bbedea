import { PHASES, type Report, type ResultRow } from '../report.js';
import { quantileSorted } from '../statistics.js';

/**
 * The Vega-Lite specs of `jitmem charts`, built from reports. Pure: data goes inline into each
 * spec (the HTML page and the .vl.json files must work from file:// with no network), and a
 * chart whose data the reports do not hold is skipped with the reason.
 *
 * Every chart but the history is drawn from the last report given; the history takes them all,
 * in the order given.
 */

/** The font every chart is drawn in: shipped in harness/charts/fonts so PNGs are the same on every machine. */
export const CHART_FONT_FAMILY = 'DejaVu Sans';

export const VEGA_LITE_SCHEMA_URL = 'https://vega.github.io/schema/vega-lite/v6.json';

export type ChartName = 'speedup' | 'phases' | 'sweep' | 'latency' | 'churn' | 'history';

export interface ChartSpec {
  /** File stem: <name>.vl.json, <name>.svg, <name>.png. */
  readonly name: ChartName;
  readonly title: string;
  /** What the chart shows and how to read it, for the HTML page. */
  readonly caption: string;
  /** Axis and legend titles the rendered chart must show (tests check them in the SVG). */
  readonly axisTitles: readonly string[];
  /** Vega mark types the rendered chart must hold, as in the SVG's `mark-<type>` classes. */
  readonly marks: readonly string[];
  readonly spec: Record<string, unknown>;
}

export interface SkippedChart {
  readonly name: ChartName;
  readonly reason: string;
}

export interface ChartSet {
  readonly charts: readonly ChartSpec[];
  readonly skipped: readonly SkippedChart[];
}

/** Box plots are drawn from at most this many points per row: evenly spaced order statistics of the samples, which keep their quantiles. */
export const MAX_BOX_POINTS = 1000;

const config = {
  font: CHART_FONT_FAMILY,
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' },
};

function base(title: string): Record<string, unknown> {
  return { $schema: VEGA_LITE_SCHEMA_URL, title, config };
}

const MAPPER_LABELS: Record<string, string> = { inprocess: 'in-process', dualmap: 'in-process dual-mapped', shared: 'shared memory', rpc: 'RPC copy' };

/** A mapper as the charts name it: with the executor when it is not ours. */
function mapperLabel(mapper: string, executor: string): string {
  const name = MAPPER_LABELS[mapper] ?? mapper;
  return executor === 'llvm' ? `${name} (LLVM executor)` : name;
}

/** A result row's name on an axis: workload/pattern mapper [policy], the policy only where the report has more than one. */
function rowLabel(row: ResultRow, policies: number): string {
  const pattern = row.pattern === 'sweep' && row.contentBytes !== undefined ? `sweep@${row.contentBytes}` : row.pattern;
  return `${row.workload}/${pattern} ${mapperLabel(row.mapper, row.executor)}${policies > 1 ? ` ${row.policy}` : ''}${row.cold ? ' (cold)' : ''}`;
}

function policyCount(report: Report): number {
  return new Set(report.results.map((r) => r.policy)).size;
}

function speedupChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.ratios.filter((r) => r.baseline === 'rpc' && r.mapper !== 'rpc');
  if (rows.length === 0) return { name: 'speedup', reason: 'the report has no speedup ratios over RPC copy' };
  const policies = new Set(rows.map((r) => r.policy)).size;
  const values = rows.map((r) => ({
    group: `${r.workload}/${r.pattern}${policies > 1 ? ` ${r.policy}` : ''}`,
    mapper: mapperLabel(r.mapper, r.executor),
    speedup: r.speedup,
    low: Math.min(...r.ci95),
    high: Math.max(...r.ci95),
  }));
  const yTitle = 'speedup over RPC copy (x)';
  return {
    name: 'speedup',
    title: 'Speedup over RPC copy',
    caption:
      'Median RPC-copy latency divided by each mapper\'s median latency, per workload and pattern; whiskers are the 95% bootstrap confidence interval, the dashed rule is 1.0 (as fast as RPC copy).',
    axisTitles: [yTitle, 'mapper'],
    marks: ['rect', 'rule'],
    spec: {
      ...base('Speedup over RPC copy (95% CI)'),
      data: { values },
      // Wrapped: a run has a panel per workload and pattern, too many for one row.
      facet: { field: 'group', type: 'nominal', title: 'workload / pattern' },
      columns: 5,
      // Speedups differ by an order of magnitude between workloads: each panel gets its own axis.
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 160,
        height: 220,
        layer: [
          {
            mark: 'bar',
            encoding: {
              x: { field: 'mapper', type: 'nominal', title: 'mapper', axis: { labelAngle: -30 } },
              y: { field: 'speedup', type: 'quantitative', title: yTitle },
              color: { field: 'mapper', type: 'nominal', legend: null },
              tooltip: [
                { field: 'mapper', type: 'nominal' },
                { field: 'speedup', type: 'quantitative', format: '.2f' },
                { field: 'low', type: 'quantitative', format: '.2f', title: 'ci95 low' },
                { field: 'high', type: 'quantitative', format: '.2f', title: 'ci95 high' },
              ],
            },
          },
          {
            mark: { type: 'errorbar', ticks: false, color: 'black', thickness: 2 },
            encoding: {
              x: { field: 'mapper', type: 'nominal' },
              y: { field: 'low', type: 'quantitative', title: yTitle },
              y2: { field: 'high' },
            },
          },
          { mark: { type: 'rule', color: '#333', strokeDash: [4, 3] }, encoding: { y: { datum: 1 } } },
        ],
      },
    },
  };
}

function phasesChart(report: Report): ChartSpec | SkippedChart {
  const policies = policyCount(report);
  const values = report.results
    .filter((r) => r.pattern !== 'sweep')
    .flatMap((r) =>
      PHASES.flatMap((phase, order) => (r.phases[phase] ? [{ row: rowLabel(r, policies), phase, order, ms: r.phases[phase]!.p50 }] : [])),
    );
  if (values.length === 0) return { name: 'phases', reason: 'no result row has phase timings' };
  const xTitle = 'median time per iteration (ms)';
  return {
    name: 'phases',
    title: 'Phase breakdown',
    caption: 'Median time of each phase of an iteration (reserve, prepare, write, initialize, deinitialize, release), stacked, per row of the matrix.',
    axisTitles: [xTitle, 'row', 'phase'],
    marks: ['rect'],
    spec: {
      ...base('Where an iteration spends its time (median per phase)'),
      data: { values },
      width: 520,
      mark: 'bar',
      encoding: {
        y: { field: 'row', type: 'nominal', title: 'row', sort: null, axis: { labelLimit: 360 } },
        x: { field: 'ms', type: 'quantitative', title: xTitle, stack: 'zero' },
        color: { field: 'phase', type: 'nominal', title: 'phase', sort: [...PHASES] },
        order: { field: 'order', type: 'quantitative' },
        tooltip: [
          { field: 'row', type: 'nominal' },
          { field: 'phase', type: 'nominal' },
          { field: 'ms', type: 'quantitative', format: '.4f' },
        ],
      },
    },
  };
}

function sweepChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.results.filter((r) => r.pattern === 'sweep' && r.contentBytes !== undefined && r.contentBytes > 0);
  if (rows.length === 0) return { name: 'sweep', reason: 'the report has no sweep rows (pattern sweep with contentBytes)' };
  const policies = new Set(rows.map((r) => r.policy)).size;
  const values = rows.map((r) => ({
    mapper: `${mapperLabel(r.mapper, r.executor)}${policies > 1 ? ` ${r.policy}` : ''}`,
    workload: r.workload,
    contentBytes: r.contentBytes,
    ms: r.latency.p50,
  }));
  const xTitle = 'content bytes per iteration (log)';
  const yTitle = 'median latency (ms, log)';
  return {
    name: 'sweep',
    title: 'Content-size sweep',
    caption: 'Median iteration latency of each mapper over content size, both axes logarithmic: where the lines cross, the cheaper transport changes.',
    axisTitles: [xTitle, yTitle, 'mapper'],
    marks: ['line', 'symbol'],
    spec: {
      ...base('Latency over content size: where the transports cross over'),
      data: { values },
      width: 520,
      height: 320,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'contentBytes', type: 'quantitative', title: xTitle, scale: { type: 'log', nice: false } },
        y: { field: 'ms', type: 'quantitative', title: yTitle, scale: { type: 'log' } },
        color: { field: 'mapper', type: 'nominal', title: 'mapper', legend: { labelLimit: 360 } },
        detail: { field: 'workload', type: 'nominal' },
        tooltip: [
          { field: 'mapper', type: 'nominal' },
          { field: 'contentBytes', type: 'quantitative' },
          { field: 'ms', type: 'quantitative', format: '.4f' },
        ],
      },
    },
  };
}

/** At most MAX_BOX_POINTS evenly spaced order statistics of a sample set. */
function boxPoints(samples: readonly number[]): number[] {
  const sorted = Float64Array.from(samples).sort();
  if (sorted.length <= MAX_BOX_POINTS) return [...sorted];
  return Array.from({ length: MAX_BOX_POINTS }, (_, i) => quantileSorted(sorted, i / (MAX_BOX_POINTS - 1)));
}

function latencyChart(report: Report): ChartSpec | SkippedChart {
  const policies = policyCount(report);
  const rows = report.results.filter((r) => r.pattern !== 'sweep' && r.latency.samples.length > 0);
  if (rows.length === 0) return { name: 'latency', reason: 'no result row has latency samples' };
  const values = rows.flatMap((r) => boxPoints(r.latency.samples).map((ms) => ({ row: rowLabel(r, policies), ms })));
  const xTitle = 'iteration latency (ms, log)';
  return {
    name: 'latency',
    title: 'Latency distributions',
    caption: `Box plots of every row's iteration latencies (box: quartiles; whiskers: 1.5 IQR; dots: outliers), from the raw samples (at most ${MAX_BOX_POINTS} evenly spaced order statistics per row).`,
    axisTitles: [xTitle, 'row'],
    marks: ['rect', 'rule'],
    spec: {
      ...base('Iteration latency distributions'),
      data: { values },
      width: 520,
      mark: { type: 'boxplot', extent: 1.5, size: 14 },
      encoding: {
        y: { field: 'row', type: 'nominal', title: 'row', sort: null, axis: { labelLimit: 360 } },
        x: { field: 'ms', type: 'quantitative', title: xTitle, scale: { type: 'log' } },
        color: { field: 'row', type: 'nominal', legend: null },
      },
    },
  };
}

function churnChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.results.filter((r) => r.slabSeries && r.slabSeries.length > 0);
  if (rows.length === 0) return { name: 'churn', reason: 'no result row has a slabSeries (run the churn pattern)' };
  const values = rows.flatMap((r) =>
    r.slabSeries!.map((p) => ({ policy: r.policy, run: `${r.workload} ${mapperLabel(r.mapper, r.executor)}`, step: p.step, freeRanges: p.freeRanges, fragmentation: p.fragmentation })),
  );
  const line = (field: string, title: string) => ({
    width: 520,
    height: 180,
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'churn step' },
      y: { field, type: 'quantitative', title },
      color: { field: 'policy', type: 'nominal', title: 'fit policy' },
      strokeDash: { field: 'run', type: 'nominal', title: 'run' },
    },
  });
  return {
    name: 'churn',
    title: 'Allocator under churn',
    caption: 'Free ranges and fragmentation (1 - largest free range / free bytes) after each step of a churn run, for each fit policy.',
    axisTitles: ['churn step', 'free ranges', 'fragmentation', 'fit policy'],
    marks: ['line'],
    spec: {
      ...base('Free ranges and fragmentation over a churn run, per fit policy'),
      data: { values },
      vconcat: [line('freeRanges', 'free ranges'), line('fragmentation', 'fragmentation')],
    },
  };
}

function historyChart(reports: readonly Report[]): ChartSpec | SkippedChart {
  if (reports.length < 2) return { name: 'history', reason: 'one report given; the history needs two or more' };
  const values = reports.flatMap((report, i) => {
    const policies = policyCount(report);
    const run = `#${i + 1} ${report.createdAt.slice(0, 16).replace('T', ' ')}${report.env.commit ? ` ${report.env.commit.slice(0, 7)}` : ''}`;
    // Sweep rows have their own chart; here they would only bury the rows of the matrix.
    return report.results.filter((r) => r.pattern !== 'sweep').map((r) => ({ run, order: i, row: rowLabel(r, policies), ms: r.latency.p50 }));
  });
  const xTitle = 'report';
  const yTitle = 'median latency (ms, log)';
  return {
    name: 'history',
    title: 'History',
    caption: 'Median latency of each row (sweep rows aside) across the reports given, in the order given.',
    axisTitles: [xTitle, yTitle, 'row'],
    marks: ['line'],
    spec: {
      ...base('Median latency per row across reports'),
      data: { values },
      width: 520,
      height: 320,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'run', type: 'ordinal', title: xTitle, sort: { field: 'order' }, axis: { labelAngle: -30 } },
        y: { field: 'ms', type: 'quantitative', title: yTitle, scale: { type: 'log' } },
        color: { field: 'row', type: 'nominal', title: 'row', legend: { labelLimit: 360 } },
      },
    },
  };
}

function isSkipped(c: ChartSpec | SkippedChart): c is SkippedChart {
  return 'reason' in c;
}

/** Every chart the reports have data for, and the ones skipped with why. `reports` must not be empty. */
export function chartSpecs(reports: readonly Report[]): ChartSet {
  const last = reports[reports.length - 1]!;
  const all = [speedupChart(last), phasesChart(last), sweepChart(last), latencyChart(last), churnChart(last), historyChart(reports)];
  return { charts: all.filter((c): c is ChartSpec => !isSkipped(c)), skipped: all.filter(isSkipped) };
}
