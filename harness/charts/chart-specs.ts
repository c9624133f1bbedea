import { PHASES, type Report, type ResultRow } from '../report/report.js';
import { mean, quantileSorted } from '../statistics.js';
import {
  fixedScale,
  mapperColourScale,
  mapperKey,
  mapperLabel,
  mapperOrder,
  PHASE_COLOURS,
  POLICY_COLOURS,
} from './palette.js';
import { endToEndChart } from './end-to-end-chart.js';
import { CHART_CONFIG, VEGA_LITE_SCHEMA_URL, type ChartSet, type ChartSpec, type SkippedChart } from './chart-types.js';

/**
 * The Vega-Lite specs of `jitmem charts`, built from reports. Pure: data goes inline into each
 * spec (the HTML page and the .vl.json files must work from file:// with no network), and a
 * chart whose data the reports do not hold is skipped with the reason.
 *
 * Every chart but the history is drawn from the last report given; the history takes them all,
 * in the order given.
 */

/**
 * Box plots are drawn from at most this many points per row: evenly spaced order statistics of the samples, which keep
 * their quantiles.
 */
export const MAX_BOX_POINTS = 1000;

function base(title: string): Record<string, unknown> {
  return { $schema: VEGA_LITE_SCHEMA_URL, title, config: CHART_CONFIG };
}

/** Bytes as a short size: 4096 → "4 KiB", 1048576 → "1 MiB". */
export function sizeText(bytes: number): string {
  if (bytes >= 1 << 20) return `${+(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

const PATTERN_ORDER = ['load', 'churn', 'update', 'patch', 'sweep'];

function patternText(pattern: string, contentBytes: number | undefined): string {
  return pattern === 'sweep' && contentBytes !== undefined ? `sweep ${sizeText(contentBytes)}` : pattern;
}

/**
 * A cell's group (what its ratios share) as a label that depends on the row alone, never on
 * what else the report holds: the same cell has the same label in a quick and a default
 * report, so its history line does not break. The policy is named when it is not first-fit
 * (the one every pattern runs).
 */
function groupLabel(r: { workload: string; pattern: string; policy: string; contentBytes?: number }): string {
  const workload = r.pattern === 'sweep' && r.workload.startsWith('synthetic-') ? 'synthetic' : r.workload;
  return `${workload}/${patternText(r.pattern, r.contentBytes)}${r.policy !== 'first-fit' ? ` ${r.policy}` : ''}`;
}

/** A result row's name on an axis: its group, mapper and (cold). */
function rowLabel(row: ResultRow): string {
  return `${groupLabel(row)} ${mapperLabel(row.mapper, row.executor)}${row.cold ? ' (cold)' : ''}`;
}

/**
 * Groups in reading order: workload as first seen, then pattern (load, churn, update, patch, sweep), then size, then
 * policy.
 */
function groupSort<T extends { workload: string; pattern: string; policy: string; contentBytes?: number }>(
  rows: readonly T[],
): string[] {
  const workloads = [...new Set(rows.map((r) => r.workload))];
  const sorted = [...rows].sort(
    (a, b) =>
      PATTERN_ORDER.indexOf(a.pattern) - PATTERN_ORDER.indexOf(b.pattern) ||
      (a.pattern === 'sweep'
        ? (a.contentBytes ?? 0) - (b.contentBytes ?? 0)
        : workloads.indexOf(a.workload) - workloads.indexOf(b.workload)) ||
      a.policy.localeCompare(b.policy) * -1,
  );
  return [...new Set(sorted.map(groupLabel))];
}

function times(x: number): string {
  return x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`;
}

function msText(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** The median and its distribution-free 95% interval (order statistics n/2 ± 1.96·√n/2) from a sample set. */
export function medianInterval(samples: readonly number[]): { median: number; low: number; high: number } {
  const s = Float64Array.from(samples).sort();
  const n = s.length;
  if (n === 0) return { median: NaN, low: NaN, high: NaN };
  const half = (1.96 * Math.sqrt(n)) / 2;
  const lo = Math.max(0, Math.floor(n / 2 - half));
  const hi = Math.min(n - 1, Math.ceil(n / 2 + half) - 1);
  return { median: quantileSorted(s, 0.5), low: s[lo]!, high: s[hi]! };
}

/** A log-scale domain that holds every value with a margin, for axes shared across facets. */
function logDomain(values: readonly number[], margin = 1.25): [number, number] {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.min(...pos) / margin;
  const hi = Math.max(...pos) * margin;
  return [lo, hi];
}

/** Ticks and grid lines of the speedup axis: 1-2-5 steps, sparse enough to read. */
const SPEEDUP_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

/** Ticks of the millisecond log axes: 1-2-5 steps from a microsecond to 100 s. */
const MS_TICKS = [-3, -2, -1, 0, 1, 2, 3, 4, 5].flatMap((e) => [1, 2, 5].map((m) => +(m * 10 ** e).toPrecision(1)));

/** The speedup chart's scales and axes, shared by every panel so that the panels read as one chart. */
interface SpeedupAxes {
  readonly domain: [number, number];
  readonly labelWidth: number;
  readonly xTitle: string;
  readonly y: object;
  readonly colour: object;
}

/** One workload and pattern's panel of the speedup chart; only the `last` one draws the x axis. */
function speedupPanel(group: string, last: boolean, axes: SpeedupAxes): object {
  const { domain, labelWidth, xTitle, y, colour } = axes;
  return {
    width: 560,
    height: { step: 15 },
    // Anchored to the plot and moved left by the label column, so every panel's title starts at the same x.
    title: {
      text: group,
      anchor: 'start',
      frame: 'group',
      dx: -labelWidth,
      fontSize: 11,
      fontWeight: 'bold',
      offset: 3,
    },
    transform: [{ filter: { field: 'group', equal: group } }],
    layer: [
      {
        mark: { type: 'rule', color: '#555', strokeDash: [4, 3] },
        encoding: { x: { datum: 1, type: 'quantitative', scale: { type: 'log', domain } } },
      },
      {
        mark: { type: 'rule', strokeWidth: 2 },
        encoding: {
          x: {
            field: 'low',
            type: 'quantitative',
            title: last ? xTitle : null,
            scale: { type: 'log', domain },
            axis: {
              grid: true,
              values: SPEEDUP_TICKS,
              format: '~g',
              ...(last ? {} : { labels: false, ticks: false, domain: false }),
            },
          },
          x2: { field: 'high' },
          y,
          color: colour,
          description: { field: 'tip' },
          tooltip: { field: 'tip' },
        },
      },
      {
        mark: { type: 'point', filled: true, size: 60, opacity: 1 },
        encoding: {
          x: { field: 'speedup', type: 'quantitative' },
          y,
          color: colour,
          description: { field: 'tip' },
          tooltip: { field: 'tip' },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 5, fontSize: 10, color: '#333' },
        encoding: { x: { field: 'high', type: 'quantitative' }, y, text: { field: 'label' } },
      },
    ],
  };
}

function speedupChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.ratios.filter((r) => r.baseline === 'rpc' && !(r.mapper === 'rpc'));
  if (rows.length === 0) return { name: 'speedup', reason: 'the report has no speedup ratios over RPC copy' };
  // Ratios carry no content size: a sweep ratio's size is its row's.
  const sizeOf = new Map(report.results.filter((r) => r.pattern === 'sweep').map((r) => [r.workload, r.contentBytes]));
  const keyed = rows.map((r) => ({ ...r, contentBytes: r.pattern === 'sweep' ? sizeOf.get(r.workload) : undefined }));
  const keys = keyed.map((r) => mapperKey(r.mapper, r.executor));
  const values = keyed.map((r) => {
    const low = Math.min(...r.ci95);
    const high = Math.max(...r.ci95);
    const mapper = mapperLabel(r.mapper, r.executor);
    const group = groupLabel(r);
    return {
      group,
      mapper,
      speedup: r.speedup,
      low,
      high,
      label: times(r.speedup),
      tip: `${group}, ${mapper}${r.executor === 'llvm' ? ' over RPC copy (LLVM executor)' : ''}: ${times(r.speedup)} the speed of RPC copy (95% CI ${times(low)}–${times(high)}${r.rounds ? `, ${r.rounds.length} rounds` : ''})`,
    };
  });
  const xTitle = 'speedup over RPC copy (×, log scale; right of the dashed rule is faster)';
  const domain = logDomain(
    values.flatMap((v) => [v.low, v.high, 1]),
    1.6,
  );
  // The same label width in every panel, so that the panels' titles and plots line up.
  const labelWidth = Math.ceil(Math.max(...values.map((v) => v.mapper.length)) * 7.2) + 6;
  const y = {
    field: 'mapper',
    type: 'nominal',
    title: null,
    sort: mapperOrder(keys),
    axis: { labelLimit: 0, ticks: false, domain: false, minExtent: labelWidth, maxExtent: labelWidth },
  };
  const colour = { field: 'mapper', type: 'nominal', title: 'mapper', scale: mapperColourScale(keys), legend: null };
  const groups = groupSort(keyed);
  return {
    name: 'speedup',
    title: 'Speedup over RPC copy',
    caption:
      'Each mapper against RPC copy over the same executor, per workload and pattern, measured in interleaved rounds: per round, median(RPC copy) / median(mapper); the dot is the geometric mean of those per-round speedups, the whiskers its 95% Student-t interval over rounds (log scale), as in the bench summary, compare and history; the dashed rule is 1× (as fast as RPC copy); one log axis for all rows. Reports without rounds: median(RPC copy) / median(mapper) with a bootstrap interval.',
    axisTitles: [xTitle],
    marks: ['symbol', 'rule', 'text'],
    spec: {
      ...base('Speedup over RPC copy (95% CI)'),
      data: { values },
      // One small layered chart per workload and pattern, stacked: each shows only the mappers
      // it has (no empty slots), and all share the explicit log domain, so they read as one axis.
      vconcat: groups.map((group, i) =>
        speedupPanel(group, i === groups.length - 1, { domain, labelWidth, xTitle, y, colour }),
      ),
      spacing: 6,
      resolve: { scale: { color: 'shared' } },
    },
  };
}

function phasesChart(report: Report): ChartSpec | SkippedChart {
  // Run rows (two linkers, phases of their own) are drawn in the end-to-end chart, here and below.
  const rows = report.results.filter(
    (r) => r.pattern !== 'sweep' && r.pattern !== 'run' && PHASES.some((p) => r.phases[p]),
  );
  if (rows.length === 0) return { name: 'phases', reason: 'no result row has phase timings' };
  const values = rows.flatMap((r) => {
    // Phase shares split overlapping operations' time, so their means sum to the iteration's mean.
    const total = r.latency.mean;
    const row = `${rowLabel(r)} · ${msText(total)} ms`;
    return PHASES.flatMap((phase, order) => {
      const share = r.phases[phase];
      if (!share) return [];
      const op = r.operationLatency?.[phase];
      const perOperation = op
        ? `; per-operation latency (not a share): p50 ${msText(op.p50)} ms, ${op.perIteration.toFixed(op.perIteration >= 10 ? 0 : 1)} operations per iteration`
        : '';
      return [
        {
          row,
          phase,
          order,
          ms: share.mean,
          tip: `${rowLabel(r)}: ${phase} ${msText(share.mean)} ms of the iteration's ${msText(total)} ms (means)${perOperation}`,
        },
      ];
    });
  });
  const xTitle = "share of the iteration's time (mean per phase)";
  return {
    name: 'phases',
    title: 'Phase breakdown',
    caption:
      "Where an iteration's time goes: each phase's (reserve, prepare, write, initialize, deinitialize, release) mean share of the iteration, per row; the row label ends with the iteration's mean time, which the shares sum to. Operations overlap (finalizes and frees are pipelined), so every instant is split equally among the phases with an operation under way then. The per-operation latency of a phase (how long one operation takes, start to end) is a different figure: it is in the tooltip, never drawn as a share.",
    axisTitles: [xTitle, 'phase'],
    marks: ['rect'],
    spec: {
      ...base('Where an iteration spends its time (mean share per phase)'),
      data: { values },
      width: 440,
      height: { step: 16 },
      mark: 'bar',
      encoding: {
        y: {
          field: 'row',
          type: 'nominal',
          title: null,
          sort: [...new Set(values.map((v) => v.row))],
          axis: { labelLimit: 0 },
        },
        x: { field: 'ms', type: 'quantitative', title: xTitle, stack: 'normalize', axis: { format: '.0%' } },
        color: {
          field: 'phase',
          type: 'nominal',
          title: 'phase',
          sort: [...PHASES],
          scale: fixedScale(PHASE_COLOURS, PHASES),
        },
        order: { field: 'order', type: 'quantitative' },
        description: { field: 'tip' },
        tooltip: { field: 'tip' },
      },
    },
  };
}

function sweepChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.results.filter(
    (r) => r.pattern === 'sweep' && r.contentBytes !== undefined && r.contentBytes > 0,
  );
  if (rows.length === 0)
    return { name: 'sweep', reason: 'the report has no sweep rows (pattern sweep with contentBytes)' };
  const keys = rows.map((r) => mapperKey(r.mapper, r.executor));
  const values = rows.map((r) => {
    const m = medianInterval(r.latency.samples.length ? r.latency.samples : [r.latency.p50]);
    const mapper = `${mapperLabel(r.mapper, r.executor)}${r.policy !== 'first-fit' ? ` ${r.policy}` : ''}${r.cold ? ' (cold)' : ''}`;
    return {
      mapper,
      contentBytes: r.contentBytes,
      ms: r.latency.p50,
      low: m.low,
      high: m.high,
      tip: `${mapper}, ${sizeText(r.contentBytes!)}: median ${msText(r.latency.p50)} ms (95% CI ${msText(m.low)}–${msText(m.high)} ms, ${r.latency.samplesCount} iterations)`,
    };
  });
  const sizes = [...new Set(values.map((v) => v.contentBytes!))].sort((a, b) => a - b);
  const xTitle = 'content bytes per iteration (log scale)';
  const yTitle = 'median latency (ms, log scale)';
  const colour = {
    field: 'mapper',
    type: 'nominal',
    title: 'mapper',
    scale: mapperColourScale(keys),
    legend: { labelLimit: 0, orient: 'right', symbolOpacity: 1, symbolType: 'circle' },
  };
  const x = {
    field: 'contentBytes',
    type: 'quantitative',
    title: xTitle,
    scale: { type: 'log', nice: false, domain: [sizes[0]! / 1.5, sizes.at(-1)! * 1.5] },
    axis: {
      values: sizes,
      labelExpr:
        "datum.value >= 1048576 ? format(datum.value / 1048576, '~r') + ' MiB' : format(datum.value / 1024, '~r') + ' KiB'",
    },
  };
  return {
    name: 'sweep',
    title: 'Content-size sweep',
    caption:
      "Median iteration latency of each mapper over the bytes an iteration moves, both axes logarithmic; the band is each median's 95% interval. Where the lines cross, the cheaper transport changes.",
    axisTitles: [xTitle, yTitle, 'mapper'],
    marks: ['line', 'symbol', 'area'],
    spec: {
      ...base('Latency over content size: where the transports cross over'),
      data: { values },
      width: 560,
      height: 320,
      encoding: { x, color: colour },
      layer: [
        {
          mark: { type: 'area', opacity: 0.18 },
          encoding: {
            y: {
              field: 'low',
              type: 'quantitative',
              scale: { type: 'log' },
              title: yTitle,
              axis: { values: MS_TICKS, format: '~g' },
            },
            y2: { field: 'high' },
          },
        },
        {
          mark: { type: 'line', point: { filled: true, size: 50 } },
          encoding: {
            y: { field: 'ms', type: 'quantitative', title: yTitle },
            description: { field: 'tip' },
            tooltip: { field: 'tip' },
          },
        },
      ],
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
  const rows = report.results.filter(
    (r) => r.pattern !== 'sweep' && r.pattern !== 'run' && r.latency.samples.length > 0,
  );
  if (rows.length === 0) return { name: 'latency', reason: 'no result row has latency samples' };
  const keys = rows.map((r) => mapperKey(r.mapper, r.executor));
  const values = rows.flatMap((r) =>
    boxPoints(r.latency.samples).map((ms) => ({ row: rowLabel(r), mapper: mapperLabel(r.mapper, r.executor), ms })),
  );
  const xTitle = 'iteration latency (ms, log scale)';
  return {
    name: 'latency',
    title: 'Latency distributions',
    caption: `Box plots of every row's iteration latencies (box: quartiles; whiskers: 1.5 IQR; dots: outliers), from the raw samples (at most ${MAX_BOX_POINTS} evenly spaced order statistics per row), coloured by mapper.`,
    axisTitles: [xTitle, 'mapper'],
    marks: ['rect', 'rule'],
    spec: {
      ...base('Iteration latency distributions'),
      data: { values },
      width: 520,
      height: { step: 18 },
      mark: { type: 'boxplot', extent: 1.5, size: 12, outliers: { size: 8, opacity: 0.5 } },
      encoding: {
        // An explicit order: the box and its outliers are separate marks, and the outliers alone would order rows by
        // first appearance.
        y: {
          field: 'row',
          type: 'nominal',
          title: null,
          sort: [...new Set(rows.map(rowLabel))],
          axis: { labelLimit: 0 },
        },
        x: {
          field: 'ms',
          type: 'quantitative',
          title: xTitle,
          scale: { type: 'log' },
          axis: { values: MS_TICKS, format: '~g' },
        },
        color: {
          field: 'mapper',
          type: 'nominal',
          title: 'mapper',
          scale: mapperColourScale(keys),
          legend: { labelLimit: 0, orient: 'bottom', direction: 'horizontal', symbolOpacity: 1, symbolType: 'circle' },
        },
      },
    },
  };
}

/** Points per line of the churn chart at most: longer runs are drawn in windows of steps. */
const CHURN_POINTS = 80;

/**
 * The churn chart's points: runs of one workload and policy replay the same seeded plan,
 * whatever the mapper: they overlap. Steps are taken in windows of at most CHURN_POINTS per line
 * (a series that flips between two values every step would otherwise fill its panel solid): the
 * line is the mean over the window and the runs, the band spans the lowest to the highest value in it.
 */
function churnWindows(rows: readonly ResultRow[]) {
  const maxSteps = Math.max(...rows.map((r) => r.slabSeries!.length));
  const window = Math.max(1, Math.ceil(maxSteps / CHURN_POINTS));
  const cells = new Map<
    string,
    { workload: string; policy: string; step: number; freeRanges: number[]; fragmentation: number[] }
  >();
  const runs = new Map<string, number>();
  for (const r of rows) {
    runs.set(`${r.workload}\0${r.policy}`, (runs.get(`${r.workload}\0${r.policy}`) ?? 0) + 1);
    for (const p of r.slabSeries!) {
      const step = Math.floor(p.step / window) * window;
      const key = `${r.workload}\0${r.policy}\0${step}`;
      let c = cells.get(key);
      if (!c) cells.set(key, (c = { workload: r.workload, policy: r.policy, step, freeRanges: [], fragmentation: [] }));
      c.freeRanges.push(p.freeRanges);
      c.fragmentation.push(p.fragmentation);
    }
  }
  return [...cells.values()].map((c) => {
    const n = runs.get(`${c.workload}\0${c.policy}`) ?? 1;
    return {
      workload: `${c.workload} (${n} run${n === 1 ? '' : 's'} per policy)`,
      policy: c.policy,
      step: c.step,
      freeRanges: mean(c.freeRanges),
      freeRangesLow: Math.min(...c.freeRanges),
      freeRangesHigh: Math.max(...c.freeRanges),
      fragmentation: mean(c.fragmentation),
      fragmentationLow: Math.min(...c.fragmentation),
      fragmentationHigh: Math.max(...c.fragmentation),
    };
  });
}

function churnChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.results.filter((r) => r.slabSeries && r.slabSeries.length > 0);
  if (rows.length === 0) return { name: 'churn', reason: 'no result row has a slabSeries (run the churn pattern)' };
  const values = churnWindows(rows);
  const policies = fixedScale(POLICY_COLOURS, new Set(values.map((v) => v.policy)));
  const workloads = [...new Set(values.map((v) => v.workload))];
  const maxStep = (workload: string) => Math.max(...values.filter((v) => v.workload === workload).map((v) => v.step));
  // Plain layered panels, a row per measure and a column per workload: each panel has its own
  // y scale (a few free ranges for cray, tens for python) without faceting layers of two fields.
  const panel = (workload: string, field: string, title: string, format: string, top: boolean) => ({
    width: 330,
    height: 150,
    ...(top ? { title: { text: workload, fontSize: 12, anchor: 'middle' } } : {}),
    transform: [{ filter: { field: 'workload', equal: workload } }],
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: 'churn step',
        scale: { domain: [0, maxStep(workload)], nice: false },
      },
      color: {
        field: 'policy',
        type: 'nominal',
        title: 'fit policy',
        scale: policies,
        legend: { symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 3 },
      },
    },
    layer: [
      {
        mark: { type: 'area', opacity: 0.2 },
        encoding: {
          y: { field: `${field}Low`, type: 'quantitative', title, axis: { format } },
          y2: { field: `${field}High` },
        },
      },
      {
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: {
          y: { field, type: 'quantitative', title },
          // Where the policies coincide, the dashed line shows the solid one under it.
          strokeDash: {
            field: 'policy',
            type: 'nominal',
            scale: { domain: policies.domain, range: policies.domain.map((_, i) => (i === 0 ? [1, 0] : [5, 3])) },
            title: 'fit policy',
          },
          tooltip: [
            { field: 'policy', type: 'nominal' },
            { field: 'step', type: 'quantitative' },
            { field, type: 'quantitative', format, title },
          ],
        },
      },
    ],
  });
  return {
    name: 'churn',
    title: 'Allocator under churn',
    caption: `Free ranges and fragmentation (1 - largest free range / free bytes) over a churn run, one line per fit policy and workload. Runs of one policy (one per mapper) replay the same seeded steps, so they coincide. Steps are grouped in windows (at most ${CHURN_POINTS} per line): the line is the mean over a window, the band its lowest to highest value.`,
    axisTitles: ['churn step', 'free ranges', 'fragmentation', 'fit policy'],
    marks: ['line'],
    spec: {
      ...base('Free ranges and fragmentation over a churn run, per fit policy'),
      data: { values },
      vconcat: [
        { hconcat: workloads.map((w) => panel(w, 'freeRanges', 'free ranges', 'd', true)) },
        { hconcat: workloads.map((w) => panel(w, 'fragmentation', 'fragmentation', '.1~%', false)) },
      ],
      resolve: { scale: { color: 'shared' } },
    },
  };
}

/** A report on the history's x axis: its commit, short, `+` when the tree was dirty; `#i` without one. */
function runLabel(report: Report, i: number): string {
  return report.env.commit ? `${report.env.commit.slice(0, 7)}${report.env.dirty ? '+' : ''}` : `#${i + 1}`;
}

function historyChart(reports: readonly Report[]): ChartSpec | SkippedChart {
  if (reports.length < 2) return { name: 'history', reason: 'one report given; the history needs two or more' };
  const used = new Map<string, number>();
  const labels = reports.map((r, i) => {
    const label = runLabel(r, i);
    const n = (used.get(label) ?? 0) + 1;
    used.set(label, n);
    return n === 1 ? label : `${label} (${n})`;
  });
  // Sweep rows have their own chart; here they would only bury the rows of the matrix.
  const rows = reports.flatMap((report, i) =>
    report.results.filter((r) => r.pattern !== 'sweep' && r.pattern !== 'run').map((r) => ({ r, i })),
  );
  const keys = rows.map(({ r }) => mapperKey(r.mapper, r.executor));
  const values = rows.map(({ r, i }) => {
    const mapper = `${mapperLabel(r.mapper, r.executor)}${r.cold ? ' (cold)' : ''}`;
    return {
      run: labels[i],
      order: i,
      group: groupLabel(r),
      mapper: mapperLabel(r.mapper, r.executor),
      ms: r.latency.p50,
      tip: `${groupLabel(r)} ${mapper} at ${labels[i]} (${reports[i]!.createdAt.slice(0, 16).replace('T', ' ')}, preset ${reports[i]!.options.preset}): median ${msText(r.latency.p50)} ms`,
    };
  });
  const groups = groupSort(rows.map(({ r }) => r));
  const xTitle = 'commit (reports in the order given)';
  return {
    name: 'history',
    title: 'History',
    caption:
      "Median latency of each cell (sweep rows aside) across the reports given, in the order given: one panel per workload and pattern, one line per mapper in the mapper's colour, each report named by its commit (+ when the tree was dirty). A cell has the same name in quick and default reports, so its line continues across presets.",
    axisTitles: [xTitle, 'mapper'],
    marks: ['line', 'symbol'],
    spec: {
      ...base('Median latency (ms, log scale) of each cell across reports'),
      data: { values },
      facet: {
        field: 'group',
        type: 'nominal',
        title: null,
        sort: groups,
        header: { labelFontSize: 12, labelLimit: 0 },
      },
      columns: 3,
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 260,
        height: 130,
        mark: { type: 'line', point: { filled: true, size: 40 } },
        encoding: {
          x: {
            field: 'run',
            type: 'ordinal',
            title: xTitle,
            sort: labels,
            scale: { domain: labels },
            axis: { labelAngle: 0, labelLimit: 0 },
          },
          // The title says what y is once; a title beside every panel would repeat it twelve times.
          y: {
            field: 'ms',
            type: 'quantitative',
            title: null,
            scale: { type: 'log' },
            axis: { values: MS_TICKS, format: '~g' },
          },
          color: {
            field: 'mapper',
            type: 'nominal',
            title: 'mapper',
            scale: mapperColourScale(keys),
            legend: { labelLimit: 0, orient: 'top' },
          },
          description: { field: 'tip' },
          tooltip: { field: 'tip' },
        },
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
  const all = [
    speedupChart(last),
    phasesChart(last),
    sweepChart(last),
    latencyChart(last),
    churnChart(last),
    historyChart(reports),
    endToEndChart(last),
  ];
  return { charts: all.filter((c): c is ChartSpec => !isSkipped(c)), skipped: all.filter(isSkipped) };
}
