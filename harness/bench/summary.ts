import { median } from '../statistics.js';
import type { Report, ResultRow } from '../report.js';
import { formatTable } from '../format-table.js';
import { LLVM22_EXTRA_MS } from './ratios.js';

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

export function resultsTable(rows: readonly ResultRow[]): string {
  return formatTable(
    ['workload', 'pattern', 'mapper', 'policy', 'p50 ms', 'p99 ms', 'rme', 'n', 'init ms', 'MiB moved', 'calls'],
    rows.map((r) => [
      r.workload,
      r.pattern,
      mapperLabel(r),
      r.policy,
      ms(r.latency.p50),
      ms(r.latency.p99),
      `±${r.latency.rme.toFixed(1)}%`,
      String(r.latency.samplesCount),
      ms(r.phases.initialize?.p50 ?? 0),
      mib(r.bytes.moved),
      r.roundTrips.toFixed(0),
    ]),
  );
}

export function headlines(report: Report): string[] {
  const lines: string[] = [];
  for (const r of report.ratios) {
    if (r.baseline !== 'rpc' || r.mapper !== 'shared') continue;
    const faster = r.speedup >= 1;
    const lo = r.ci95[0].toFixed(2);
    const hi = r.ci95[1].toFixed(2);
    const exec = r.executor === 'llvm' ? " with LLVM's executor" : '';
    const significant = r.ci95[0] > 1 || r.ci95[1] < 1;
    lines.push(
      `${r.workload}/${r.pattern} (${r.policy})${exec}: shared memory is ${faster ? r.speedup.toFixed(2) + 'x faster than' : (1 / r.speedup).toFixed(2) + 'x slower than'} RPC copy ` +
        `(speedup ${r.speedup.toFixed(2)}, 95% CI ${lo}–${hi}${significant ? '' : ': not distinguishable'}).`,
    );
  }
  return lines;
}

export function budgetLines(report: Report): string[] {
  const lines: string[] = [];
  for (const b of report.budgets ?? []) {
    if (b.unit !== 'ms') {
      const verdict = b.ok ? ': ok' : b.direction === 'at-least' ? ': SHORT OF BUDGET' : ': OVER BUDGET';
      lines.push(`${b.label}: ${b.value.toFixed(2)}${b.unit}, budget ${b.direction === 'at-least' ? '>=' : '<='} ${b.budget}${b.unit}${verdict}`);
      continue;
    }
    if (!b.label.startsWith('python/load')) {
      lines.push(`${b.label}: ${b.value.toFixed(3)} ms, budget ${b.direction === 'at-least' ? '>=' : '<='} ${b.budget.toFixed(3)} ms${b.ok ? ': ok' : ': OVER BUDGET'}`);
      continue;
    }
    const llvm = b.label.includes("LLVM's executor");
    const mapper = b.label.includes('RPC copy') ? 'rpc' : 'shared';
    const ref = llvm ? '' : ` (LLVM 22 on the same link here: +${LLVM22_EXTRA_MS[mapper]} ms)`;
    lines.push(`${b.label}: ${b.value >= 0 ? '+' : ''}${b.value.toFixed(2)} ms, budget <= ${b.budget} ms${llvm ? ' (measured for comparison)' : b.ok ? ': ok' : ': OVER BUDGET'}${ref}`);
  }
  return lines;
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
        mib(r.slab.peakReservedBytes),
        mib(r.slab.peakLiveBytes),
        `${(avg((p) => p.fragmentation) * 100).toFixed(1)}%`,
        avg((p) => p.freeRanges).toFixed(1),
        ms(median(r.latency.samples)),
      ]);
    }
  }
  if (table.length === 0) return undefined;
  return formatTable(['workload', 'mapper', 'policy', 'peak reserved MiB', 'peak live MiB', 'mean fragmentation', 'mean free ranges', 'p50 ms'], table);
}

export function renderSummary(report: Report, reportPath: string, extra: { skipped: ReadonlyArray<{ cell: string; reason: string }>; charts?: string }): string {
  const out: string[] = [];
  out.push(resultsTable(report.results));
  const h = headlines(report);
  if (h.length) out.push(h.join('\n') + '\n');
  const b = budgetLines(report);
  if (b.length) out.push(b.join('\n') + '\n');
  const c = churnComparison(report.results);
  if (c) out.push('fit policies under churn (peaks over the cell; fragmentation and free ranges averaged over one run):\n\n' + c);
  const p = report.env.placement;
  out.push(
    `controller on CPU ${p.controllerSeenOn?.join(',') || p.controllerCpus.join(',')}${p.pin === 'none' ? ' (not pinned)' : ''}, executor allowed on CPU ${p.executorCpus.join(',')} (--pin ${p.pin}); ${report.env.cpuModel}, ${report.env.cpus} CPUs, Node ${report.env.node}.\n`,
  );
  for (const s of extra.skipped) out.push(`skipped ${s.cell}: ${s.reason}\n`);
  out.push(`report: ${reportPath}\n`);
  if (extra.charts) out.push(`charts: ${extra.charts}\n`);
  return out.join('\n');
}
