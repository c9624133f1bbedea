import { median } from '../statistics.js';
import type { BudgetRow, ResultRow } from '../report/report.js';

/**
 * The budgets of "speed where users feel it" (mprotect calls, update and end-to-end transport
 * ratios, the RPC-copy extra against LLVM's executor), each from rows of one run. Counts are
 * exact; ratios are of medians measured in the same run, so the machine's load falls on both.
 */

export const SPEED_BUDGETS = {
  /** mprotect calls per python/load iteration in process: one per protection run. */
  loadMprotect: 200,
  /** python/update: shared memory over in-process. */
  updateRatio: 1.5,
  /** python end to end, warm controller: shared-memory transport over in-process. */
  warmRunRatio: 1.5,
  /** python/load: jitmem's RPC-copy extra over in-process, as a share of LLVM's executor's. */
  rpcExtraShareOfLlvm: 0.5,
} as const;

const ms = (v: number): string => v.toFixed(2);

function loadRow(
  rows: readonly ResultRow[],
  pattern: string,
  policy: string,
  mapper: string,
  executor: string,
): ResultRow | undefined {
  return rows.find(
    (r) =>
      r.workload === 'python' &&
      r.pattern === pattern &&
      r.policy === policy &&
      r.mapper === mapper &&
      (mapper === 'inprocess' || r.executor === executor),
  );
}

function faultsOf(r: ResultRow): string {
  const c = r.counters;
  if (c) return `${c.controller.minorFaults.toFixed(0)}/${c.executor ? c.executor.minorFaults.toFixed(0) : '-'}`;
  if (r.minorFaults) return `${r.minorFaults.controller.toFixed(0)}/${r.minorFaults.executor?.toFixed(0) ?? '-'}`;
  return '-';
}

function patternBudgets(rows: readonly ResultRow[], policy: string): BudgetRow[] {
  const out: BudgetRow[] = [];
  const load = loadRow(rows, 'load', policy, 'inprocess', 'none');
  if (load?.counters) {
    const value = load.counters.controller.mprotect;
    const budget = SPEED_BUDGETS.loadMprotect;
    out.push({
      label: `python/load ${policy}: mprotect calls per iteration, in-process (one per protection run)`,
      value,
      budget,
      unit: ' calls',
      ok: value <= budget,
    });
  }
  const updateIn = loadRow(rows, 'update', policy, 'inprocess', 'none');
  const updateShared = loadRow(rows, 'update', policy, 'shared', 'jitmem');
  if (updateIn && updateShared) {
    const value = median(updateShared.latency.samples) / median(updateIn.latency.samples);
    const budget = SPEED_BUDGETS.updateRatio;
    out.push({
      label: `python/update ${policy}: shared memory over in-process (minor faults controller/executor per iteration: shared ${faultsOf(updateShared)}, in-process ${faultsOf(updateIn)})`,
      value,
      budget,
      unit: 'x',
      ok: value <= budget,
    });
  }
  const loadRpc = loadRow(rows, 'load', policy, 'rpc', 'jitmem');
  const loadRpcLlvm = loadRow(rows, 'load', policy, 'rpc', 'llvm');
  if (load && loadRpc && loadRpcLlvm) {
    const base = median(load.latency.samples);
    const value = median(loadRpc.latency.samples) - base;
    const llvmExtra = median(loadRpcLlvm.latency.samples) - base;
    const budget = llvmExtra * SPEED_BUDGETS.rpcExtraShareOfLlvm;
    out.push({
      label: `python/load ${policy}: jitmem's RPC-copy extra over in-process vs half llvm-jitlink-executor's (${llvmExtra >= 0 ? '+' : ''}${ms(llvmExtra)} ms), same run`,
      value,
      budget,
      unit: 'ms',
      ok: value <= budget,
    });
  }
  return out;
}

/** python end to end, jitmem's warm controller: shared memory's time to exit over in-process's. */
function warmRunBudget(rows: readonly ResultRow[]): BudgetRow[] {
  const find = (mapper: string) =>
    rows.find(
      (r) =>
        r.pattern === 'run' &&
        r.workload === 'python' &&
        r.linker === 'jitmem' &&
        r.controller === 'warm' &&
        r.mapper === mapper &&
        (mapper === 'inprocess' || r.executor === 'jitmem'),
    );
  const inprocess = find('inprocess');
  const shared = find('shared');
  if (!inprocess || !shared) return [];
  const value = median(shared.latency.samples) / median(inprocess.latency.samples);
  const budget = SPEED_BUDGETS.warmRunRatio;
  return [
    {
      label: `python end to end, warm controller: shared-memory transport over in-process (minor faults controller/executor per iteration: shared ${faultsOf(shared)}, in-process ${faultsOf(inprocess)})`,
      value,
      budget,
      unit: 'x',
      ok: value <= budget,
    },
  ];
}

export function speedBudgets(rows: readonly ResultRow[]): BudgetRow[] {
  const policies = [...new Set(rows.filter((r) => r.pattern !== 'run').map((r) => r.policy))];
  return [...policies.flatMap((policy) => patternBudgets(rows, policy)), ...warmRunBudget(rows)];
}
