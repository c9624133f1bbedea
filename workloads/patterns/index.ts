/** The allocation patterns of docs/design.md §6, and the runner that carries them out. */
export type { AllocateStep, FreeStep, PatchStep, PhaseStep, PatternName, Plan, Step } from './plan.js';
export { loadPlan } from './load-pattern.js';
export { churnPlan, type ChurnOptions } from './churn-pattern.js';
export { updatePlan, type UpdateOptions } from './update-pattern.js';
export { patchPlan, type PatchOptions } from './patch-pattern.js';
export {
  sweepGraphs,
  sweepPlan,
  sweepSizes,
  SWEEP_MAX_SIZE,
  SWEEP_MIN_SIZE,
  type SweepOptions,
} from './sweep-pattern.js';
export { returnConstantCode, returnConstantGraph } from './return-constant.js';
export { runPlan, type PlanMemoryManager, type PlanRunResult, type RunPlanOptions } from './run-plan.js';
export { SeededRandom } from './seeded-random.js';
