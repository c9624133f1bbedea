import { meanInterval, median, studentTQuantile } from '../statistics.js';
import { budgetVerdict, roundMedians, speedupOf, summarizePaired } from './ratios.js';
import { verdictOf } from './sampling.js';
import type {
  BudgetRow,
  EndToEndHeadline,
  EndToEndSection,
  Report,
  ResultRow,
  RunPhaseName,
} from '../report/report.js';
import { fitTable, tableLegend } from '../report/format-table.js';

/**
 * The `run` pattern read as the 2022 work read it: for each program, the end-to-end speedup of
 * shared memory over RPC copy with its 95% interval, for jitmem's linker and for llvm-jitlink,
 * where the difference comes from in phase figures, and the budgets that set jitmem beside
 * llvm-jitlink measured in the same run.
 */

const JITMEM_TRANSPORT: readonly RunPhaseName[] = ['reserve', 'write', 'initialize'];
const JITMEM_FREE: readonly RunPhaseName[] = ['deinitialize', 'release'];

function ms(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function p50(row: ResultRow, phase: RunPhaseName): number {
  return row.phases[phase] ? median(row.phases[phase]!.samples) : 0;
}

/**
 * Per-iteration sum of some phases, then its median: the medians of the parts do not add up to the median of the whole.
 */
function medianOfSum(row: ResultRow, phases: readonly RunPhaseName[]): number {
  const n = row.latency.samples.length;
  const sums = new Array<number>(n).fill(0);
  for (const p of phases) row.phases[p]?.samples.forEach((x, i) => (sums[i]! += x));
  return median(sums);
}

/**
 * The transport phases' (reserve, write, initialize) share of a jitmem row's time to exit: per
 * iteration their sum over the latency, the median of each round, then the mean over rounds
 * with a Student-t 95% interval (over iterations when the row has no rounds), cut to [0, 1]:
 * a share lies there, so the cut interval still covers it at 95%. Over three rounds, one round
 * far from the others put the interval's low end below zero ("-20.3%-54.7%" in a default run).
 */
export function transportShare(row: ResultRow): { share: number; ci95: [number, number]; rounds: number } | undefined {
  const n = row.latency.samples.length;
  if (n === 0 || !JITMEM_TRANSPORT.every((p) => row.phases[p]?.samples.length === n)) return undefined;
  const shares = row.latency.samples.map((total, i) =>
    total > 0 ? JITMEM_TRANSPORT.reduce((a, p) => a + row.phases[p]!.samples[i]!, 0) / total : 0,
  );
  const sizes = row.rounds?.map((r) => r.samples);
  const perRound =
    sizes && sizes.reduce((a, b) => a + b, 0) === n
      ? roundMedians(shares, sizes).filter((x) => Number.isFinite(x))
      : shares;
  const est = meanInterval(perRound.length >= 2 ? perRound : shares);
  if (!Number.isFinite(est.low)) return undefined;
  return { share: est.mean, ci95: [Math.max(0, est.low), Math.min(1, est.high)], rounds: perRound.length };
}

/** Per-iteration sums of `phases`, cut into the row's rounds: each round's median (null without 3 rounds). */
function roundMediansOfSum(row: ResultRow, phases: readonly RunPhaseName[]): number[] | null {
  const sizes = row.rounds?.map((r) => r.samples);
  const n = row.latency.samples.length;
  if (!sizes || sizes.length < 3 || sizes.reduce((a, b) => a + b, 0) !== n) return null;
  const sums = new Array<number>(n).fill(0);
  for (const p of phases) row.phases[p]?.samples.forEach((x, i) => (sums[i]! += x));
  return roundMedians(sums, sizes);
}

/** The mean over rounds of a row's per-round median of `phases` summed, with a Student-t 95% interval. */
function roundsInterval(
  row: ResultRow,
  phases: readonly RunPhaseName[],
): { mean: number; ci95: [number, number]; rounds: number } | null {
  const medians = roundMediansOfSum(row, phases)?.filter((x) => Number.isFinite(x));
  if (!medians || medians.length < 3) return null;
  const est = meanInterval(medians);
  return { mean: est.mean, ci95: [est.low, est.high], rounds: medians.length };
}

/**
 * Paired per-round differences (candidate − baseline) of two rows' per-round medians of `phases` summed, with a
 * Student-t 95% interval.
 */
function pairedRoundsDifference(
  baseline: ResultRow,
  candidate: ResultRow,
  phases: readonly RunPhaseName[],
): RoundsDifference | null {
  const a = roundMediansOfSum(baseline, phases);
  const b = roundMediansOfSum(candidate, phases);
  if (!a || !b || a.length !== b.length) return null;
  const diffs = a.map((x, i) => b[i]! - x).filter((x) => Number.isFinite(x));
  if (diffs.length < 3) return null;
  const est = meanInterval(diffs);
  return { mean: est.mean, ci95: [est.low, est.high], rounds: diffs.length, se: est.se, df: est.df };
}

interface RoundsDifference {
  mean: number;
  ci95: [number, number];
  rounds: number;
  se: number;
  df: number;
}

/**
 * ours − half of theirs, two independent estimates (jitmem's warm controllers and llvm-jitlink's
 * processes are measured in rounds of their own), with a Welch–Satterthwaite Student-t 95%
 * interval: a budget set by a figure measured in the same run is as uncertain as that figure,
 * and judging against its point value alone let the verdict flip between runs of one commit.
 */
function minusHalfOf(ours: RoundsDifference, theirs: RoundsDifference): { mean: number; ci95: [number, number] } {
  const a = ours.se;
  const b = theirs.se / 2;
  const mean = ours.mean - theirs.mean / 2;
  const se = Math.hypot(a, b);
  const df = se === 0 ? Math.max(1, ours.df + theirs.df) : se ** 4 / (a ** 4 / ours.df + b ** 4 / theirs.df);
  const half = studentTQuantile(0.975, Math.max(1, df)) * se;
  return { mean, ci95: [mean - half, mean + half] };
}

/** A budget row whose verdict is its interval's (ratios.ts budgetVerdict), or its value's without one. */
function judgedBudget(row: Omit<BudgetRow, 'ok' | 'verdict'>): BudgetRow {
  const verdict = row.ci95
    ? budgetVerdict(row.ci95, row.budget, row.direction)
    : row.value <= row.budget
      ? 'ok'
      : 'over';
  return { ...row, verdict, ok: verdict !== 'over' };
}

export function runRows(rows: readonly ResultRow[]): ResultRow[] {
  return rows.filter((r) => r.pattern === 'run');
}

type Controller = NonNullable<ResultRow['controller']>;

/** A jitmem row's controller (rows of reports from before the warm controller ran a process per iteration). */
function controllerOf(r: ResultRow): Controller {
  return r.controller ?? 'process-per-run';
}

/** How a row's linker ran, as the table and the chart name it. */
export function linkerLabel(r: ResultRow): string {
  const linker = r.linker ?? 'jitmem';
  if (linker !== 'jitmem') return linker;
  return controllerOf(r) === 'warm' ? 'jitmem (warm controller)' : 'jitmem (process per run)';
}

function find(
  rows: readonly ResultRow[],
  workload: string,
  linker: string,
  executor: string,
  mapper: string,
  memmgr?: string,
  controller: Controller = 'warm',
): ResultRow | undefined {
  return rows.find(
    (r) =>
      r.pattern === 'run' &&
      r.workload === workload &&
      r.linker === linker &&
      r.mapper === mapper &&
      (mapper === 'inprocess' || r.executor === executor) &&
      r.memmgr === memmgr &&
      (linker !== 'jitmem' || controllerOf(r) === controller),
  );
}

/** The phases a row's time goes to, as the chart and the sentences group them. */
export function phaseGroups(row: ResultRow): Array<{ group: string; phases: RunPhaseName[] }> {
  if (row.linker === 'llvm-jitlink') {
    return [
      { group: 'read', phases: ['read'] },
      { group: row.mapper === 'inprocess' ? 'link' : 'link + transport', phases: ['link'] },
      { group: 'run', phases: ['run'] },
      { group: 'process start and exit', phases: ['other'] },
    ];
  }
  return [
    { group: 'read', phases: ['read'] },
    { group: 'link', phases: ['link'] },
    { group: 'transport', phases: [...JITMEM_TRANSPORT] },
    { group: 'run', phases: ['run'] },
    { group: 'free', phases: [...JITMEM_FREE] },
  ];
}

/** Where the difference between two rows' medians comes from: the groups of phases that differ most. */
function explain(shared: ResultRow, rpc: ResultRow, rpcName: string): string {
  const a = median(rpc.latency.samples);
  const b = median(shared.latency.samples);
  const parts = phaseGroups(shared).map(({ group, phases }) => ({
    group,
    rpc: medianOfSum(rpc, phases),
    shared: medianOfSum(shared, phases),
  }));
  parts.sort((x, y) => Math.abs(y.rpc - y.shared) - Math.abs(x.rpc - x.shared));
  const top = parts.filter((p) => Math.abs(p.rpc - p.shared) >= 0.05).slice(0, 2);
  const head = `Median time to exit: ${rpcName} ${ms(a)} ms, shared memory ${ms(b)} ms`;
  if (top.length === 0) return `${head}; no phase differs by 0.05 ms or more.`;
  const said = top.map((p) => `${p.group} (${ms(p.rpc)} vs ${ms(p.shared)} ms)`).join(' and ');
  const moved =
    rpc.bytes.moved > 0
      ? `; ${rpcName} sends ${(rpc.bytes.moved / 1e6).toFixed(2)} MB in ${rpc.roundTrips.toFixed(0)} calls per run, shared memory ${(shared.bytes.moved / 1e6).toFixed(2)} MB in ${shared.roundTrips.toFixed(0)}`
      : '';
  return `${head}; the difference is mostly in ${said}${moved}.`;
}

/** Shared memory over RPC copy, end to end, per program, linker and executor, with a bootstrap 95% interval. */
export function endToEndHeadlines(rows: readonly ResultRow[], seed: number): EndToEndHeadline[] {
  const out: EndToEndHeadline[] = [];
  const programs = [...new Set(runRows(rows).map((r) => r.workload))];
  const pairs: Array<{
    linker: 'jitmem' | 'llvm-jitlink';
    executor: 'jitmem' | 'llvm';
    shared?: string;
    rpcMapper: string;
    rpcMemmgr?: string;
    baseline: EndToEndHeadline['baseline'];
    controller?: Controller;
  }> = [
    { linker: 'jitmem', executor: 'jitmem', rpcMapper: 'rpc', baseline: 'rpc', controller: 'warm' },
    { linker: 'jitmem', executor: 'jitmem', rpcMapper: 'rpc', baseline: 'rpc', controller: 'process-per-run' },
    {
      linker: 'llvm-jitlink',
      executor: 'llvm',
      shared: 'shared',
      rpcMapper: 'rpc',
      rpcMemmgr: 'simple-remote',
      baseline: 'simple-remote',
    },
    {
      linker: 'llvm-jitlink',
      executor: 'llvm',
      shared: 'shared',
      rpcMapper: 'rpc',
      rpcMemmgr: 'generic',
      baseline: 'generic',
    },
    {
      linker: 'llvm-jitlink',
      executor: 'jitmem',
      shared: 'shared',
      rpcMapper: 'rpc',
      rpcMemmgr: 'simple-remote',
      baseline: 'simple-remote',
    },
  ];
  for (const workload of programs) {
    for (const p of pairs) {
      const shared = find(rows, workload, p.linker, p.executor, 'shared', p.shared, p.controller);
      const rpc = find(rows, workload, p.linker, p.executor, p.rpcMapper, p.rpcMemmgr, p.controller);
      if (!shared || !rpc) continue;
      // The one speedup statistic (ratios.ts speedupOf): paired per round when the rows have rounds.
      const est = speedupOf(rpc, shared, seed);
      if (!est || !(est.speedup > 0) || !Number.isFinite(est.speedup)) continue;
      const rpcName = p.linker === 'jitmem' ? 'RPC copy' : p.baseline;
      const shares = p.linker === 'jitmem' ? { shared: transportShare(shared), rpc: transportShare(rpc) } : undefined;
      out.push({
        workload,
        linker: p.linker,
        executor: p.executor,
        baseline: p.baseline,
        ...(p.controller ? { controller: p.controller } : {}),
        speedup: est.speedup,
        ci95: est.ci95,
        ...(est.rounds ? { rounds: est.rounds } : {}),
        ...(shares?.shared && shares.rpc ? { transportShare: { shared: shares.shared, rpc: shares.rpc } } : {}),
        explanation: explain(shared, rpc, rpcName),
      });
    }
  }
  return out;
}

/**
 * The end-to-end headlines in words; `precision` is the run's target (report.sampling), the
 * band their verdicts are read against (sampling.ts verdictOf).
 */
export function headlineLines(section: EndToEndSection, precision?: number): string[] {
  return section.headlines.map((h) => {
    const who =
      h.linker === 'jitmem'
        ? h.controller === 'warm'
          ? 'jitmem (warm controller)'
          : 'jitmem (process per run)'
        : `llvm-jitlink${h.executor === 'jitmem' ? " driving jitmem's executor" : ''}`;
    const base = h.baseline === 'rpc' ? 'RPC copy' : `RPC copy (${h.baseline})`;
    const verdict = verdictOf(h, precision);
    const said =
      verdict === 'not distinguishable'
        ? precision
          ? `: not distinguishable, no difference beyond ±${precision}%`
          : ': not distinguishable'
        : verdict === 'not settled'
          ? `: not settled, its interval crosses an edge of ±${precision}% around 1`
          : '';
    const n = h.rounds ? `, ${h.rounds.length} rounds` : '';
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    const share = h.transportShare
      ? ` Transport (reserve + write + initialize) share of time to exit: shared memory ${pct(h.transportShare.shared.share)} (95% CI ${pct(h.transportShare.shared.ci95[0])}–${pct(h.transportShare.shared.ci95[1])}), ${base} ${pct(h.transportShare.rpc.share)} (95% CI ${pct(h.transportShare.rpc.ci95[0])}–${pct(h.transportShare.rpc.ci95[1])}).`
      : '';
    return `${h.workload} end to end, ${who}: shared memory over ${base} ${h.speedup.toFixed(3)}x (95% CI ${h.ci95[0].toFixed(3)}–${h.ci95[1].toFixed(3)}${n}${said}).${share} ${h.explanation}`;
  });
}

/** Time until the program runs: read and link, and for jitmem's rows its transport. */
function untilRun(r: ResultRow): number {
  return medianOfSum(r, r.linker === 'jitmem' ? ['read', 'link', ...JITMEM_TRANSPORT] : ['read', 'link']);
}

/**
 * jitmem's extra out of process over in-process against half of llvm-jitlink's, same run. Both
 * sides measured in rounds: the difference, ours minus half theirs, is judged with both
 * uncertainties against 0; otherwise (older reports) ours against half their medians.
 */
function extraBudget(
  what: string,
  memmgr: string,
  rows: { jIn: ResultRow; j: ResultRow; lIn: ResultRow; l: ResultRow },
): BudgetRow {
  const { jIn, j, lIn, l } = rows;
  // Paired per round when both rows have the same rounds (the warm controllers of one program do).
  const ours = pairedRoundsDifference(jIn, j, ['read', 'link', ...JITMEM_TRANSPORT]);
  const theirs = pairedRoundsDifference(lIn, l, ['read', 'link']);
  if (ours && theirs) {
    const d = minusHalfOf(ours, theirs);
    return judgedBudget({
      label: `${what} minus half llvm-jitlink ${memmgr}'s extra (ours ${ms(ours.mean)} ms, ${ours.rounds} rounds; half theirs ${ms(theirs.mean / 2)} ms, ${theirs.rounds} rounds), same run`,
      value: d.mean,
      budget: 0,
      unit: 'ms',
      ci95: d.ci95,
      rounds: Math.min(ours.rounds, theirs.rounds),
    });
  }
  return judgedBudget({
    label: `${what} vs half llvm-jitlink ${memmgr}'s extra, same run`,
    value: ours ? ours.mean : untilRun(j) - untilRun(jIn),
    budget: (untilRun(l) - untilRun(lIn)) / 2,
    unit: 'ms',
    ...(ours ? { ci95: ours.ci95, rounds: ours.rounds } : {}),
  });
}

/**
 * The budgets of the end-to-end comparison, each against llvm-jitlink measured in this run (on
 * CPython, `-c pass`): time to link, the extra of link-and-transport out of process over
 * in-process, and executor start-up. jitmem's figures are its warm controller's (a long-running
 * JIT's steady state, as llvm-jitlink's native code always is); the process-per-run figures,
 * which carry V8's warm-up and a fresh executor in every iteration, are quoted beside them.
 */
export function endToEndBudgets(rows: readonly ResultRow[], section: EndToEndSection): BudgetRow[] {
  const out: BudgetRow[] = [];
  const w = 'python';
  const lIn = find(rows, w, 'llvm-jitlink', 'none', 'inprocess');
  // Warm when measured; otherwise (older reports) the process-per-run rows, said so.
  const controller: Controller = find(rows, w, 'jitmem', 'none', 'inprocess', undefined, 'warm')
    ? 'warm'
    : 'process-per-run';
  const other: Controller = controller === 'warm' ? 'process-per-run' : 'warm';
  const named = (c: Controller) => (c === 'warm' ? 'warm controller' : 'process per run');
  const jIn = find(rows, w, 'jitmem', 'none', 'inprocess', undefined, controller);
  const jInOther = find(rows, w, 'jitmem', 'none', 'inprocess', undefined, other);
  const linkOf = (r: ResultRow) => medianOfSum(r, ['read', 'link']);
  if (jIn && lIn) {
    // With rounds: the mean of the per-round medians with its interval; the budget is the value llvm-jitlink measured.
    const est = roundsInterval(jIn, ['read', 'link']);
    const value = est ? est.mean : linkOf(jIn);
    const budget = p50(lIn, 'read') + p50(lIn, 'link');
    const beside = jInOther ? `; ${named(other)}: ${ms(linkOf(jInOther))} ms` : '';
    out.push(
      judgedBudget({
        label: `python: jitmem time to link CPython (read + link, in-process, ${named(controller)}${beside}) vs llvm-jitlink in-process (load/add + link), same run`,
        value,
        budget,
        unit: 'ms',
        ...(est ? { ci95: est.ci95, rounds: est.rounds } : {}),
      }),
    );
  }
  if (jIn && lIn) {
    for (const [mapper, memmgr] of [
      ['shared', 'shared'],
      ['rpc', 'simple-remote'],
    ] as const) {
      const j = find(rows, w, 'jitmem', 'jitmem', mapper, undefined, controller);
      const l = find(rows, w, 'llvm-jitlink', 'llvm', mapper, memmgr);
      if (!j || !l) continue;
      const jOther = find(rows, w, 'jitmem', 'jitmem', mapper, undefined, other);
      const extraOther = jOther && jInOther ? untilRun(jOther) - untilRun(jInOther) : undefined;
      const beside =
        extraOther !== undefined ? `; ${named(other)}: ${extraOther >= 0 ? '+' : ''}${ms(extraOther)} ms` : '';
      const what = `python: jitmem ${mapper === 'rpc' ? 'RPC copy' : 'shared memory'} extra over in-process for link and transport (${named(controller)}${beside})`;
      out.push(extraBudget(what, memmgr, { jIn, j, lIn, l }));
    }
  }
  const startup = startupBudget(section);
  if (startup) out.push(startup);
  return out;
}

/**
 * Executor start-up against 3x llvm-jitlink-executor's. measureStartup spawns the two in turn, so
 * spawn i of each is a pair the machine's state at that moment falls on alike: the paired ratio,
 * as every speedup here (geometric mean, Student-t on the log scale), judged with its interval.
 */
function startupBudget(section: EndToEndSection): BudgetRow | undefined {
  const js = section.startup.find((s) => s.executor === 'jitmem');
  const ls = section.startup.find((s) => s.executor === 'llvm');
  if (!js || !ls) return undefined;
  const n = Math.min(js.stats.samples.length, ls.stats.samples.length);
  const pairs: number[] = [];
  for (let i = 0; i < n; i++) {
    const j = js.stats.samples[i]!;
    const l = ls.stats.samples[i]!;
    if (j > 0 && l > 0) pairs.push(j / l);
  }
  const medians = `medians ${ms(median(js.stats.samples))} ms vs ${ms(median(ls.stats.samples))} ms`;
  const label = `executor start-up (spawn to Setup): jitmem-executor's over llvm-jitlink-executor's, paired spawns (${medians}), same run`;
  if (pairs.length < 3)
    return judgedBudget({ label, value: median(js.stats.samples) / median(ls.stats.samples), budget: 3, unit: 'x' });
  const paired = summarizePaired(pairs);
  return judgedBudget({ label, value: paired.speedup, budget: 3, unit: 'x', ci95: paired.ci95, rounds: pairs.length });
}

/** The run rows as a table: time to exit, time to link, and the phase groups, medians in ms. */
export function endToEndTable(rows: readonly ResultRow[], width = Infinity): string | undefined {
  const run = runRows(rows);
  if (run.length === 0) return undefined;
  const table = run.map((r) => {
    const link = medianOfSum(r, ['read', 'link']);
    let groups = phaseGroups(r)
      .map((g) => `${g.group} ${ms(medianOfSum(r, g.phases))}`)
      .join(', ');
    // llvm-jitlink does not time its transport apart: out of process, its link less its in-process link says what
    // moving the program added.
    const own =
      r.linker === 'llvm-jitlink' && r.mapper !== 'inprocess'
        ? find(rows, r.workload, 'llvm-jitlink', 'none', 'inprocess')
        : undefined;
    if (own)
      groups += ` (link over in-process: ${(p50(r, 'link') - p50(own, 'link') >= 0 ? '+' : '') + ms(p50(r, 'link') - p50(own, 'link'))})`;
    const where =
      r.mapper === 'inprocess'
        ? 'in-process'
        : `${r.linker === 'llvm-jitlink' ? r.memmgr : r.mapper === 'rpc' ? 'RPC copy' : 'shared'}${r.executor !== (r.linker === 'jitmem' ? 'jitmem' : 'llvm') ? ` → ${r.executor} executor` : ''}`;
    return [
      r.workload,
      linkerLabel(r),
      where,
      ms(r.latency.p50),
      `±${r.latency.rme.toFixed(1)}%`,
      ms(link),
      r.startup ? ms(r.startup.p50) : '-',
      String(r.latency.samplesCount),
      r.verified ? `${r.verified.exitStatus}, ${r.verified.stdoutSha256.slice(0, 8)}` : '-',
      groups,
    ];
  });
  const fitted = fitTable(
    [
      { header: 'program', priority: 0, align: 'left' },
      { header: 'linker', priority: 0, align: 'left' },
      { header: 'transport', priority: 0, align: 'left' },
      {
        header: 'exit p50 ms',
        short: 'exit ms',
        priority: 0,
        legend: "median time from the start of the link to the program's exit, in milliseconds.",
      },
      { header: 'rme', priority: 3, legend: 'relative margin of error of the mean, 95% confidence.' },
      {
        header: 'link p50 ms',
        short: 'link ms',
        priority: 1,
        legend: 'median time to read and link the objects, in milliseconds.',
      },
      {
        header: 'exec start ms',
        short: 'start ms',
        priority: 4,
        legend: 'median executor start-up, spawn to Setup, in milliseconds (- in-process).',
      },
      { header: 'n', priority: 5, legend: 'iterations measured.' },
      {
        header: 'verified',
        priority: 6,
        align: 'left',
        legend: "exit status and the first 8 hex digits of stdout's sha256, the same in every iteration.",
      },
      {
        header: 'phases (p50 ms)',
        priority: 7,
        align: 'left',
        legend: 'median time of each group of phases, in milliseconds.',
      },
    ],
    table,
    width,
  );
  return fitted.text + tableLegend(fitted, width).join('\n') + '\n';
}

export function startupLines(section: EndToEndSection): string[] {
  const lines: string[] = [];
  for (const s of section.startup) {
    const who =
      s.executor === 'jitmem'
        ? s.from
          ? `jitmem's Node executor, from its ${s.from}`
          : "jitmem's jitmem-executor"
        : "LLVM's llvm-jitlink-executor";
    lines.push(
      `executor start-up, spawn to Setup, ${who}: median ${ms(median(s.stats.samples))} ms, p99 ${ms(s.stats.p99)} ms (n=${s.stats.samplesCount})`,
    );
  }
  if (section.nodeFloor)
    lines.push(
      `  floor under any Node executor: node -e 0, spawn to exit: median ${ms(median(section.nodeFloor.samples))} ms`,
    );
  return lines;
}

/** Everything the terminal summary says about the run pattern; why rows are missing is said by the caller, once. */
export function endToEndSummary(report: Report, width = Infinity): string | undefined {
  const section = report.endToEnd;
  if (!section) return undefined;
  const out: string[] = [];
  const table = endToEndTable(report.results, width);
  if (table)
    out.push(
      'end to end (pattern run): time to exit by transport and linker; every iteration verified (exit status, stdout sha256)\n\n' +
        table,
    );
  const h = headlineLines(section, report.sampling?.precision);
  if (h.length) out.push(h.join('\n') + '\n');
  const rerun = section.llvm.rerun ?? 0;
  if (rerun > 0)
    out.push(
      `llvm-jitlink ${section.llvm.version ?? ''} refused ${rerun} run${rerun === 1 ? '' : 's'} with "In <Absolute Symbols>, duplicate definition of symbol" (a race among its own threads) and linked when run again; ${rerun === 1 ? 'that run is' : 'those runs are'} timed from the second try.\n`,
    );
  const s = startupLines(section);
  if (s.length) out.push(s.join('\n') + '\n');
  return out.join('\n');
}
