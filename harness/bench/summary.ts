import { median } from '../statistics.js';
import type { Report, ResultRow } from '../report/report.js';
import { formatTable } from '../report/format-table.js';
import { endToEndSummary } from './end-to-end.js';
import { samplingLines } from './sampling.js';

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
  return (r.executor === 'none' || r.executor === 'jitmem' ? r.mapper : `${r.mapper}@${r.executor}`) + (r.cold ? ' (cold)' : '');
}

const kib = (bytes: number) => (bytes / 1024).toFixed(bytes >= 10 * 1024 ? 0 : 1);
const count = (x: number) => (x >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1));
/** controller/executor, or the controller's alone in-process. */
const bothSides = (c: NonNullable<ResultRow['counters']>, f: (p: NonNullable<ResultRow['counters']>['controller']) => number, fmt: (x: number) => string) =>
  c.executor ? `${fmt(f(c.controller))}/${fmt(f(c.executor))}` : fmt(f(c.controller));

/**
 * One line per cell: its times, and beside them the counts that explain them (per iteration):
 * round trips, KiB on the wire (both directions), KiB copied, mprotect calls and minor page
 * faults, as controller/executor.
 */
const TIME_HEADER = ['workload', 'pattern', 'mapper', 'policy', 'p50 ms', 'p99 ms', 'rme', 'n', 'init ms', 'cpu ms c/e'];

/** Mean CPU ms per iteration, controller/executor (the controller's alone in-process; '-' for reports without it). */
function cpuCell(r: ResultRow): string {
  if (!r.cpu) return '-';
  return r.cpu.executor ? `${ms(r.cpu.controller.mean)}/${ms(r.cpu.executor.mean)}` : ms(r.cpu.controller.mean);
}

function timeCells(r: ResultRow): string[] {
  return [
    r.workload,
    r.pattern,
    mapperLabel(r),
    r.policy,
    ms(r.latency.p50),
    ms(r.latency.p99),
    `±${r.latency.rme.toFixed(1)}%`,
    String(r.latency.samplesCount),
    ms(r.phases.initialize?.mean ?? 0),
    cpuCell(r),
  ];
}

/** The results table without counters, as a header and rows of cells: the terminal's for older reports, and the HTML page's. */
export const PLAIN_RESULTS_HEADER: readonly string[] = [...TIME_HEADER, 'MiB moved', 'calls'];

export function plainResultCells(r: ResultRow): string[] {
  return [...timeCells(r), mib(r.bytes.moved), r.roundTrips.toFixed(0)];
}

export function resultsTable(rows: readonly ResultRow[]): string {
  if (!rows.some((r) => r.counters)) return formatTable(PLAIN_RESULTS_HEADER, rows.map(plainResultCells));
  return formatTable(
    [...TIME_HEADER, 'calls', 'wire KiB', 'copied KiB c/e', 'mprotect c/e', 'faults c/e'],
    rows.map((r) => {
      const c = r.counters;
      return [
        ...timeCells(r),
        c ? count(c.controller.roundTrips) : r.roundTrips.toFixed(0),
        c ? kib(c.controller.wireBytesOut + c.controller.wireBytesIn) : kib(r.bytes.moved),
        c ? bothSides(c, (p) => p.bytesCopied, kib) : '',
        c ? bothSides(c, (p) => p.mprotect, count) : '',
        c ? bothSides(c, (p) => p.minorFaults, count) : '',
      ];
    }),
  );
}

/** One line each for the table's less obvious columns and marks. */
export const TABLE_LEGEND = [
  'rme: relative margin of error of the mean latency, 95% confidence (Student t), in percent of the mean.',
  "init ms: the initialize phase's mean share of an iteration (overlapping operations split each instant among the phases under way; the phases sum to the iteration). Per-operation latency is in the report (operationLatency), not here.",
  'cpu ms c/e: mean CPU time per iteration of the controller/executor (process CPU clock; the executor\'s threads\' run time from the kernel), integrity checks left out; beside the wall time, it moves much less with the machine\'s load.',
  'calls: controller-to-executor calls per iteration, integrity checks left out (0 in-process).',
  'with counters, per iteration: wire KiB both ways; copied KiB, mprotect calls and minor page faults as controller/executor.',
  '(cold): the cell ran with a fresh slab every iteration (RPC copy over LLVM\'s executor always does: it cannot initialize a freed range again).',
];

export interface Headline {
  readonly text: string;
  /** The interval excludes 1: shared memory is measurably faster or slower. */
  readonly significant: boolean;
}

/** Shared memory against RPC copy, per workload/pattern/policy/executor, in words, from the report's ratios. */
export function headlineItems(report: Report): Headline[] {
  const out: Headline[] = [];
  for (const r of report.ratios) {
    if (r.baseline !== 'rpc' || r.mapper !== 'shared') continue;
    const lo = r.ci95[0].toFixed(2);
    const hi = r.ci95[1].toFixed(2);
    const exec = r.executor === 'llvm' ? " with LLVM's executor" : '';
    const significant = r.ci95[0] > 1 || r.ci95[1] < 1;
    const verdict = !significant
      ? 'shared memory and RPC copy: no measurable difference'
      : r.speedup >= 1
        ? `shared memory is ${r.speedup.toFixed(2)}x faster than RPC copy`
        : `shared memory is ${(1 / r.speedup).toFixed(2)}x slower than RPC copy`;
    const n = r.rounds ? `, ${r.rounds.length} rounds` : '';
    out.push({ text: `${r.workload}/${r.pattern} (${r.policy})${exec}: ${verdict} (speedup ${r.speedup.toFixed(2)}, 95% CI ${lo}–${hi}${n}).`, significant });
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
    const ci = b.ci95 ? ` (95% CI ${b.ci95[0].toFixed(digits)}–${b.ci95[1].toFixed(digits)}${b.rounds ? `, ${b.rounds} rounds` : ''})` : '';
    const undecided = verdict === 'undecided' && b.ci95 ? `: undecided (CI ${b.ci95[0].toFixed(digits)}–${b.ci95[1].toFixed(digits)} ${b.unit === 'x' ? 'x ' : 'ms '}straddles the budget)` : '';
    if (b.unit !== 'ms') {
      // Ratios (x): the value beside its bound.
      const bound = b.direction === 'at-least' ? '>=' : '<=';
      const over = verdict === 'over';
      return { text: `${over ? 'OVER BUDGET: ' : ''}${b.label}: ${b.value.toFixed(2)}${b.unit}${ci}, budget ${bound} ${b.budget}${b.unit}${over ? '' : undecided || ': ok'}`, over };
    }
    const llvm = b.label.includes("LLVM's executor");
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
    return { text: `${over ? 'OVER BUDGET: ' : ''}${b.label}: ${value}${llvm ? ' (measured for comparison)' : over ? '' : undecided || ': ok'}${ref}`, over };
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
export function churnComparison(rows: readonly ResultRow[]): string | undefined {
  const churn = rows.filter((r) => r.pattern === 'churn');
  const keys = [...new Set(churn.map((r) => `${r.workload}\0${mapperLabel(r)}`))];
  const table: string[][] = [];
  for (const key of keys) {
    const [workload, mapper] = key.split('\0') as [string, string];
    const group = churn.filter((r) => r.workload === workload && mapperLabel(r) === mapper);
    if (group.length < 2) continue;
    for (const r of group) {
      const series = r.slabSeries ?? [];
      const avg = (f: (p: (typeof series)[number]) => number) => (series.length ? series.reduce((a, p) => a + f(p), 0) / series.length : 0);
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
  return formatTable(['workload', 'mapper', 'policy', 'peak reserved MiB', 'peak live MiB', 'mean fragmentation', 'mean free ranges', 'p50 ms'], table);
}

export interface SummaryOptions {
  readonly skipped: ReadonlyArray<{ cell: string; reason: string }>;
  readonly charts?: string;
  /** ANSI colour for what needs attention (a terminal). */
  readonly colour?: boolean;
  /** --check-budgets was given: an OVER BUDGET line makes the exit status 1. */
  readonly checkBudgets?: boolean;
}

export function renderSummary(report: Report, reportPath: string, extra: SummaryOptions): string {
  const out: string[] = [];
  // Run rows have a table of their own (end to end, below).
  const matrix = report.results.filter((r) => r.pattern !== 'run');
  if (matrix.length) out.push(resultsTable(matrix) + TABLE_LEGEND.join('\n') + '\n');
  const h = headlines(report);
  if (h.length) out.push(h.join('\n') + '\n');
  const sampling = samplingLines(report.sampling?.groups ?? [], report.sampling?.precision);
  if (sampling.length) out.push(sampling.join('\n') + '\n');
  const e = endToEndSummary(report);
  if (e) out.push(e);
  const b = budgetItems(report);
  const highlight = (text: string) => (extra.colour ? `\x1b[1;31m${text}\x1b[0m` : text);
  if (b.length) {
    const lines = b.map((x) => (x.over ? highlight(x.text) : x.text));
    if (b.some((x) => x.over)) {
      lines.push(extra.checkBudgets ? 'a budget is exceeded: exit status 1 (--check-budgets).' : 'a budget is exceeded (exit status stays 0; --check-budgets makes it 1).');
    }
    out.push(lines.join('\n') + '\n');
  }
  const c = churnComparison(report.results);
  if (c) out.push('fit policies under churn (peaks over the cell; fragmentation and free ranges averaged over one run):\n\n' + c);
  const p = report.env.placement;
  out.push(
    `controller on CPU ${p.controllerSeenOn?.join(',') || p.controllerCpus.join(',')}${p.pin === 'none' ? ' (not pinned)' : ''}, executor allowed on CPU ${p.executorCpus.join(',')} (--pin ${p.pin}); ${report.env.cpuModel}, ${report.env.cpus} CPUs, Node ${report.env.node}.\n`,
  );
  const skipped = skippedLines(extra.skipped);
  if (skipped.length) out.push(skipped.join('\n') + '\n');
  out.push(`report: ${reportPath}\n`);
  if (extra.charts) out.push(`charts: ${extra.charts}\n`);
  return out.join('\n');
}

/** Whether any of our budgets is exceeded (LLVM's rows are for comparison only). */
export function overBudget(report: Report): boolean {
  return budgetItems(report).some((b) => b.over);
}
