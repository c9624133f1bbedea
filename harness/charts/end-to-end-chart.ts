import type { Report, ResultRow } from '../report/report.js';
import { median } from '../statistics.js';
import { linkerLabel, phaseGroups } from '../bench/end-to-end.js';
import { CHART_CONFIG, VEGA_LITE_SCHEMA_URL, type ChartSpec, type SkippedChart } from './chart-types.js';

/**
 * "end to end: time to exit by transport and linker": for every program of the `run` pattern,
 * one bar per linker and transport, its median phases stacked (read, link, transport, run,
 * free for jitmem; llvm-jitlink's read, link (+ transport out of process), run, and the rest
 * of its process's life), each program in a panel of its own scale.
 */

export const END_TO_END_CHART = 'end-to-end' as const;

const PHASE_ORDER = [
  'read',
  'link',
  'link + transport',
  'transport',
  'run',
  'free',
  'process start and exit',
  'executor start (apart)',
];

function transportLabel(r: ResultRow): string {
  const linker = r.linker ?? 'jitmem';
  const label = linkerLabel(r);
  if (r.mapper === 'inprocess') return `${label}: in-process`;
  const how = linker === 'llvm-jitlink' ? (r.memmgr ?? r.mapper) : r.mapper === 'rpc' ? 'RPC copy' : 'shared memory';
  const ownExecutor = linker === 'jitmem' ? 'jitmem' : 'llvm';
  return `${label}: ${how}${r.executor !== ownExecutor ? ` → ${r.executor} executor` : ''}`;
}

/** Per-iteration sums of a group's phases, then the median. */
function groupMedian(r: ResultRow, phases: readonly string[]): number {
  const sums = new Array<number>(r.latency.samples.length).fill(0);
  for (const p of phases)
    (r.phases as Record<string, { samples: number[] } | undefined>)[p]?.samples.forEach((x, i) => (sums[i]! += x));
  return median(sums);
}

export function endToEndChart(report: Report): ChartSpec | SkippedChart {
  const rows = report.results.filter((r) => r.pattern === 'run');
  if (rows.length === 0) return { name: END_TO_END_CHART, reason: 'the report has no run rows (bench --pattern run)' };
  const values = rows.flatMap((r) => {
    const bars = phaseGroups(r).map(({ group, phases }) => ({ group, ms: groupMedian(r, phases) }));
    // jitmem's executor starts before the iteration's clock; llvm-jitlink's is inside its process time. Shown, apart,
    // where every run pays it (a process per run); a warm controller starts its executor once for all its runs.
    if (r.startup && r.controller !== 'warm')
      bars.push({ group: 'executor start (apart)', ms: median(r.startup.samples) });
    return bars.map(({ group, ms }) => ({
      program: r.workload,
      bar: transportLabel(r),
      phase: group,
      order: PHASE_ORDER.indexOf(group),
      ms,
      exit: r.latency.p50,
    }));
  });
  const xTitle = 'median time (ms)';
  return {
    name: END_TO_END_CHART,
    title: 'End to end: time to exit by transport and linker',
    caption:
      "Each program linked, moved into the executor, run to exit and freed, by jitmem and by llvm-jitlink, every iteration verified. Bars stack the median of each phase group; jitmem's bars are the timed phases of an iteration, twice: in its warm controller (one long-lived process per cell over one executor session) and in a process per run (cold JS, a fresh executor every iteration); llvm-jitlink's are its whole process, its --show-times phases and the rest of its life (process and executor start, exit). jitmem's executor start-up is drawn at the end of its process-per-run bars, apart: it is not in jitmem's time to exit (a warm controller pays it once, before all its runs). Out of process llvm-jitlink's link includes moving the program. Medians of parts need not add up to the median of the whole.",
    axisTitles: [xTitle, 'phase'],
    marks: ['rect'],
    spec: {
      $schema: VEGA_LITE_SCHEMA_URL,
      title: 'end to end: time to exit by transport and linker',
      config: CHART_CONFIG,
      data: { values },
      facet: { row: { field: 'program', type: 'nominal', title: 'program' } },
      // cray and CPython differ tenfold: each panel gets its own scale.
      resolve: { scale: { x: 'independent', y: 'independent' } },
      spec: {
        width: 480,
        mark: 'bar',
        encoding: {
          // No axis title: each label says "linker: transport" itself, and a title would crowd them.
          y: { field: 'bar', type: 'nominal', title: null, sort: null, axis: { labelLimit: 480 } },
          x: { field: 'ms', type: 'quantitative', title: xTitle, stack: 'zero' },
          // One colour per phase in every report: the whole domain, in order.
          color: {
            field: 'phase',
            type: 'nominal',
            title: 'phase',
            scale: { domain: PHASE_ORDER },
            legend: { labelLimit: 260 },
          },
          order: { field: 'order', type: 'quantitative' },
          tooltip: [
            { field: 'bar', type: 'nominal', title: 'linker: transport' },
            { field: 'phase', type: 'nominal' },
            { field: 'ms', type: 'quantitative', format: '.2f', title: 'median ms' },
            { field: 'exit', type: 'quantitative', format: '.2f', title: 'time to exit, median ms' },
          ],
        },
      },
    },
  };
}
