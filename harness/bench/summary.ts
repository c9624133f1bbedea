import { median } from '../statistics.js';
import { isInformationalBudget, type Report, type ResultRow } from '../report/report.js';
import { fitTable, tableLegend, wrapText, type Column } from '../report/format-table.js';
import { endToEndSummary } from './end-to-end.js';
import { samplingLines, verdictOf, type Verdict } from './sampling.js';
import { machineSpeedLine } from './machine-speed.js';

/**
 * What a person reads at the end of a bench run: one table of cells, the headline speedups
 * with their intervals, the budgets, and the fit policies side by side for churn.
 */

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(2);
}

function mapperLabel(r: { mapper: string; executor: string; cold?: boolean }): string {
  return (
    (r.executor === 'none' || r.executor === 'jitmem' ? r.mapper : `${r.mapper}@${r.executor}`) +
    (r.cold ? ' (cold)' : '')
  );
}

const kib = (bytes: number) => (bytes / 1024).toFixed(bytes >= 10 * 1024 ? 0 : 1);
const count = (x: number) => (x >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1));
/** controller/executor, or the controller's alone in-process. */
const bothSides = (
  c: NonNullable<ResultRow['counters']>,
  f: (p: NonNullable<ResultRow['counters']>['controller']) => number,
  fmt: (x: number) => string,
) => (c.executor ? `${fmt(f(c.controller))}/${fmt(f(c.executor))}` : fmt(f(c.controller)));

/**
 * One line per cell: its times, and beside them the counts that explain them (per iteration):
 * round trips, KiB on the wire (both directions), KiB copied, mprotect calls and minor page
 * faults, as controller/executor. Each column carries its priority (what goes first when the
 * table is too wide) and its definition (the legend under the table). A column added to a
 * table (CPU time, say) slots in by its priority.
 */
/** Mean CPU ms per iteration, controller/executor (the controller's alone in-process; '-' for reports without it). */
function cpuCell(r: ResultRow): string {
  if (!r.cpu) return '-';
  return r.cpu.executor ? `${ms(r.cpu.controller.mean)}/${ms(r.cpu.executor.mean)}` : ms(r.cpu.controller.mean);
}

export interface ResultColumn extends Column {
  readonly cell: (r: ResultRow) => string;
}

const TIME_COLUMNS: readonly ResultColumn[] = [
  { header: 'workload', priority: 0, align: 'left', cell: (r) => r.workload },
  { header: 'pattern', priority: 0, align: 'left', cell: (r) => r.pattern },
  {
    header: 'mapper',
    priority: 0,
    align: 'left',
    cell: mapperLabel,
    legend:
      "the transport; @llvm: through LLVM's executor; (cold): a fresh slab every iteration (RPC copy over LLVM's executor always: it cannot initialize a freed range again).",
  },
  { header: 'policy', priority: 6, align: 'left', cell: (r) => r.policy, legend: "the slab's fit policy." },
  {
    header: 'p50 ms',
    priority: 0,
    cell: (r) => ms(r.latency.p50),
    legend: "median time of one iteration (the pattern's whole plan), in milliseconds.",
  },
  { header: 'p99 ms', priority: 7, cell: (r) => ms(r.latency.p99), legend: '99th percentile of the same.' },
  {
    header: 'rme',
    priority: 2,
    cell: (r) => `±${r.latency.rme.toFixed(1)}%`,
    legend: 'relative margin of error of the mean latency, 95% confidence (Student t), in percent of the mean.',
  },
  { header: 'n', priority: 8, cell: (r) => String(r.latency.samplesCount), legend: 'iterations measured.' },
  {
    header: 'init ms',
    priority: 4,
    cell: (r) => ms(r.phases.initialize?.mean ?? 0),
    legend:
      "the initialize phase's mean share of an iteration, in milliseconds (overlapping operations split each instant among the phases under way; the phases sum to the iteration). Per-operation latency is in the report (operationLatency), not here.",
  },
  {
    header: 'cpu ms c/e',
    short: 'cpu c/e',
    priority: 4,
    cell: cpuCell,
    legend:
      "mean CPU time per iteration of the controller/executor, in milliseconds (process CPU clock; the executor's threads' run time from the kernel; one figure: in-process; - for reports without it), integrity checks left out; beside the wall time, it leaves out waits for a CPU another process had, but not a CPU that runs slower (see machine speed).",
  },
];

/** The results table without counters: the terminal's for older reports, and the HTML page's. */
export const PLAIN_RESULT_COLUMNS: readonly ResultColumn[] = [
  ...TIME_COLUMNS,
  {
    header: 'MiB moved',
    priority: 5,
    cell: (r) => mib(r.bytes.moved),
    legend: 'MiB sent to the executor per iteration (content over the wire for RPC copy, requests otherwise).',
  },
  {
    header: 'calls',
    priority: 3,
    cell: (r) => r.roundTrips.toFixed(0),
    legend: 'controller-to-executor calls per iteration, integrity checks left out (0 in-process).',
  },
];

type Counters = NonNullable<ResultRow['counters']>;
const withCounters =
  (f: (c: Counters) => string, fallback: (r: ResultRow) => string = () => '') =>
  (r: ResultRow) =>
    r.counters ? f(r.counters) : fallback(r);

export const COUNTER_RESULT_COLUMNS: readonly ResultColumn[] = [
  ...TIME_COLUMNS,
  {
    header: 'calls',
    priority: 3,
    cell: withCounters(
      (c) => count(c.controller.roundTrips),
      (r) => r.roundTrips.toFixed(0),
    ),
    legend: 'controller-to-executor calls per iteration, integrity checks left out (0 in-process).',
  },
  {
    header: 'wire KiB',
    priority: 5,
    cell: withCounters(
      (c) => kib(c.controller.wireBytesOut + c.controller.wireBytesIn),
      (r) => kib(r.bytes.moved),
    ),
    legend: 'KiB on the wire per iteration, both directions.',
  },
  {
    header: 'copied KiB c/e',
    short: 'copied c/e',
    priority: 9,
    cell: withCounters((c) => bothSides(c, (p) => p.bytesCopied, kib)),
    legend: 'KiB copied per iteration, controller/executor (one figure: in-process).',
  },
  {
    header: 'mprotect c/e',
    short: 'mprot c/e',
    priority: 10,
    cell: withCounters((c) => bothSides(c, (p) => p.mprotect, count)),
    legend: 'mprotect calls per iteration, controller/executor.',
  },
  {
    header: 'faults c/e',
    priority: 11,
    cell: withCounters((c) => bothSides(c, (p) => p.minorFaults, count)),
    legend: 'minor page faults per iteration, controller/executor.',
  },
];

/** The columns a report's rows are shown with: with cost counters when the report has them. */
export function resultColumns(rows: readonly ResultRow[]): readonly ResultColumn[] {
  return rows.some((r) => r.counters) ? COUNTER_RESULT_COLUMNS : PLAIN_RESULT_COLUMNS;
}

/** A row's cells under `columns`. */
export function resultCells(columns: readonly ResultColumn[], r: ResultRow): string[] {
  return columns.map((c) => c.cell(r));
}

/** The table of cells and its legend (every shown column defined, the left-out ones named), within `width`. */
export function resultsTable(rows: readonly ResultRow[], width = Infinity): { table: string; legend: string[] } {
  const columns = resultColumns(rows);
  const fitted = fitTable(
    columns,
    rows.map((r) => resultCells(columns, r)),
    width,
  );
  return { table: fitted.text, legend: tableLegend(fitted, width) };
}

export interface Headline {
  readonly text: string;
  /** Settled and clear of 1: shared memory is measurably faster or slower (sampling.ts verdictOf). */
  readonly significant: boolean;
}

/** A matrix headline's verdict in words (sampling.ts verdictOf), at the run's precision (none: fixed rounds). */
function verdictWords(verdict: Verdict, speedup: number, precision: number | undefined): string {
  switch (verdict) {
    case 'faster':
      return `shared memory is ${speedup.toFixed(2)}x faster than RPC copy`;
    case 'slower':
      return `shared memory is ${(1 / speedup).toFixed(2)}x slower than RPC copy`;
    case 'not distinguishable':
      return precision
        ? `shared memory and RPC copy: no difference beyond ±${precision}%`
        : 'shared memory and RPC copy: no measurable difference';
    case 'not settled':
      return `shared memory over RPC copy: not settled (its interval crosses an edge of ±${precision}% around 1)`;
  }
}

/** Shared memory against RPC copy, per workload/pattern/policy/executor, in words, from the report's ratios. */
export function headlineItems(report: Report): Headline[] {
  const out: Headline[] = [];
  for (const r of report.ratios) {
    if (r.baseline !== 'rpc' || r.mapper !== 'shared') continue;
    const lo = r.ci95[0].toFixed(2);
    const hi = r.ci95[1].toFixed(2);
    const exec = r.executor === 'llvm' ? " with LLVM's executor" : '';
    const judged = verdictOf(r, report.sampling?.precision);
    const significant = judged === 'faster' || judged === 'slower';
    const verdict = verdictWords(judged, r.speedup, report.sampling?.precision);
    const n = r.rounds ? `, ${r.rounds.length} rounds` : '';
    out.push({
      text: `${r.workload}/${r.pattern} (${r.policy})${exec}: ${verdict} (speedup ${r.speedup.toFixed(2)}, 95% CI ${lo}–${hi}${n}).`,
      significant,
    });
  }
  return out;
}

export function headlines(report: Report): string[] {
  return headlineItems(report).map((h) => h.text);
}

export interface BudgetLine {
  readonly text: string;
  /** Ours and over its budget (LLVM's rows are measured for comparison and never over). */
  readonly over: boolean;
}

export function budgetItems(report: Report): BudgetLine[] {
  const budgets = report.budgets ?? [];
  return budgets.map((b) => {
    // Reports from before verdicts: ok decides.
    const verdict = b.verdict ?? (b.ok ? 'ok' : 'over');
    const digits = b.unit === 'ms' ? 2 : 2;
    const ci = b.ci95
      ? ` (95% CI ${b.ci95[0].toFixed(digits)}–${b.ci95[1].toFixed(digits)}${b.rounds ? `, ${b.rounds} rounds` : ''})`
      : '';
    const undecided =
      verdict === 'undecided' && b.ci95
        ? `: undecided (CI ${b.ci95[0].toFixed(digits)}–${b.ci95[1].toFixed(digits)} ${b.unit === 'x' ? 'x ' : 'ms '}straddles the budget)`
        : '';
    if (b.unit !== 'ms') {
      // Ratios (x): the value beside its bound.
      const bound = b.direction === 'at-least' ? '>=' : '<=';
      const over = verdict === 'over';
      return {
        text: `${over ? 'OVER BUDGET: ' : ''}${b.label}: ${b.value.toFixed(2)}${b.unit}${ci}, budget ${bound} ${b.budget}${b.unit}${over ? '' : undecided || ': ok'}`,
        over,
      };
    }
    const llvm = isInformationalBudget(b);
    let ref = '';
    if (b.label.includes('jitmem executor')) {
      // Beside our extra time, LLVM's executor on the same load, measured in this run or said to be missing.
      const theirs = budgets.find((o) => o.label === b.label.replace('jitmem executor', "LLVM's executor"));
      ref = theirs
        ? ` (LLVM's executor on the same load, this run: ${theirs.value >= 0 ? '+' : ''}${theirs.value.toFixed(2)} ms)`
        : " (LLVM's executor not measured in this run: add --executor llvm with LLVM 22 installed)";
    }
    const over = !llvm && verdict === 'over';
    const signed = b.label.includes('extra time') || b.label.includes('extra over');
    const value = `${signed && b.value >= 0 ? '+' : ''}${b.value.toFixed(2)} ${b.unit}${ci}, budget <= ${b.budget.toFixed(2).replace(/\.00$/, '')} ${b.unit}`;
    return {
      text: `${over ? 'OVER BUDGET: ' : ''}${b.label}: ${value}${llvm ? ' (measured for comparison)' : over ? '' : undecided || ': ok'}${ref}`,
      over,
    };
  });
}

export function budgetLines(report: Report): string[] {
  return budgetItems(report).map((b) => b.text);
}

/** Skipped cells grouped by reason: one line per reason, listing its cells. */
export function skippedLines(skipped: ReadonlyArray<{ cell: string; reason: string }>): string[] {
  const byReason = new Map<string, string[]>();
  for (const s of skipped) {
    const cells = byReason.get(s.reason) ?? [];
    if (!cells.includes(s.cell)) cells.push(s.cell);
    byReason.set(s.reason, cells);
  }
  return [...byReason].map(([reason, cells]) => `skipped ${cells.join(', ')}: ${reason}`);
}

/**
 * Fit policies side by side for every churn workload and mapper run with both: the peaks over
 * the whole cell, and fragmentation and free ranges averaged over the recorded run (the state
 * at the very end is after everything was freed, which says nothing).
 */
export function churnComparison(rows: readonly ResultRow[], width = Infinity): string | undefined {
  const churn = rows.filter((r) => r.pattern === 'churn');
  const keys = [...new Set(churn.map((r) => `${r.workload}\0${mapperLabel(r)}`))];
  const table: string[][] = [];
  for (const key of keys) {
    const [workload, mapper] = key.split('\0') as [string, string];
    const group = churn.filter((r) => r.workload === workload && mapperLabel(r) === mapper);
    if (group.length < 2) continue;
    for (const r of group) {
      const series = r.slabSeries ?? [];
      const avg = (f: (p: (typeof series)[number]) => number) =>
        series.length ? series.reduce((a, p) => a + f(p), 0) / series.length : 0;
      table.push([
        workload,
        mapper,
        r.policy,
        mib(r.slab!.peakReservedBytes),
        mib(r.slab!.peakLiveBytes),
        `${(avg((p) => p.fragmentation) * 100).toFixed(1)}%`,
        avg((p) => p.freeRanges).toFixed(1),
        ms(median(r.latency.samples)),
      ]);
    }
  }
  if (table.length === 0) return undefined;
  return fitTable(
    [
      { header: 'workload', priority: 0 },
      { header: 'mapper', priority: 0 },
      { header: 'policy', priority: 0 },
      { header: 'peak reserved MiB', short: 'reserved MiB', priority: 1 },
      { header: 'peak live MiB', short: 'live MiB', priority: 2 },
      { header: 'mean fragmentation', short: 'fragm.', priority: 1 },
      { header: 'mean free ranges', short: 'free ranges', priority: 3 },
      { header: 'p50 ms', priority: 2 },
    ],
    table,
    width,
  ).text;
}

export interface SummaryOptions {
  readonly skipped: ReadonlyArray<{ cell: string; reason: string }>;
  readonly charts?: string;
  /** ANSI colour for what needs attention (a terminal). */
  readonly colour?: boolean;
  /** --check-budgets was given: an OVER BUDGET line makes the exit status 1. */
  readonly checkBudgets?: boolean;
  /**
   * Characters per line (outputWidth: the terminal's, COLUMNS, or 100); tables fit it, prose wraps to it. Default: no
   * limit.
   */
  readonly width?: number;
}

export function renderSummary(report: Report, reportPath: string, extra: SummaryOptions): string {
  const width = extra.width ?? Infinity;
  const out: string[] = [];
  // Run rows have a table of their own (end to end, below).
  const matrix = report.results.filter((r) => r.pattern !== 'run');
  if (matrix.length) {
    const { table, legend } = resultsTable(matrix, width);
    out.push(table + legend.join('\n') + '\n');
  }
  const h = headlines(report);
  if (h.length) out.push(h.join('\n') + '\n');
  const sampling = samplingLines(report.sampling?.groups ?? [], report.sampling?.precision);
  if (sampling.length) out.push(sampling.join('\n') + '\n');
  // Right after the precision account: how far apart the rounds could be, whatever they measure.
  if (report.sampling?.machineSpeed) out.push(machineSpeedLine(report.sampling.machineSpeed) + '\n');
  const e = endToEndSummary(report, width);
  if (e) out.push(e);
  const b = budgetItems(report);
  const highlight = (text: string) => (extra.colour ? `\x1b[1;31m${text}\x1b[0m` : text);
  if (b.length) {
    // Wrapped before colouring, so that escape codes never count as width.
    const lines = b.flatMap((x) => wrapText(x.text, width, '  ').map((l) => (x.over ? highlight(l) : l)));
    if (b.some((x) => x.over)) {
      lines.push(
        extra.checkBudgets
          ? 'a budget is exceeded: exit status 1 (--check-budgets).'
          : 'a budget is exceeded (exit status stays 0; --check-budgets makes it 1).',
      );
    }
    out.push(lines.join('\n') + '\n');
  }
  const c = churnComparison(report.results, width);
  if (c)
    out.push(
      'fit policies under churn (peaks over the cell; fragmentation and free ranges averaged over one run):\n\n' + c,
    );
  const p = report.env.placement;
  out.push(
    `controller on CPU ${p.controllerSeenOn?.join(',') || p.controllerCpus.join(',')}${p.pin === 'none' ? ' (not pinned)' : ''}, executor allowed on CPU ${p.executorCpus.join(',')} (--pin ${p.pin}); ${report.env.cpuModel}, ${report.env.cpus} CPUs, Node ${report.env.node}.${endToEndPlacement(report)}\n`,
  );
  const skipped = skippedLines(extra.skipped);
  if (skipped.length) out.push(skipped.join('\n') + '\n');
  out.push(`report: ${reportPath}\n`);
  if (extra.charts) out.push(`charts: ${extra.charts}\n`);
  // Prose (headlines, placement, skipped cells) wraps to the width; tables already fit it.
  return out
    .join('\n')
    .split('\n')
    .flatMap((line) => (line.includes('\x1b') ? [line] : wrapText(line, width, '  ')))
    .join('\n');
}

/** Where the run pattern's processes ran, when the report says. */
function endToEndPlacement(report: Report): string {
  const e = report.endToEnd?.placement;
  if (!e) return '';
  const how = [
    ...(e.warmControllerV8Flags.length ? [`with ${e.warmControllerV8Flags.join(' ')}`] : []),
    ...(e.warmControllerWarmup !== undefined ? [`${e.warmControllerWarmup} warm-up iterations each`] : []),
  ];
  const warm = how.length ? `; jitmem's warm controllers run ${how.join(', ')}` : '';
  return ` End to end: not pinned (CPU ${e.allowedCpus.join(',')})${warm}.`;
}

/** Whether any of our budgets is exceeded (LLVM's rows are for comparison only). */
export function overBudget(report: Report): boolean {
  return budgetItems(report).some((b) => b.over);
}
