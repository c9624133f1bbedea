/**
 * The one place that says how a mapper is named and coloured in every chart, so that a mapper
 * has the same colour in the speedup, sweep, latency and history charts, whatever subset of
 * mappers a report holds. A mapper run behind LLVM's executor is a darker shade of its own hue.
 */

/** Mapper names as charts spell them. */
export const MAPPER_NAMES: Readonly<Record<string, string>> = {
  inprocess: 'in-process',
  shared: 'shared memory',
  rpc: 'RPC copy',
  dualmap: 'dual mapping',
};

/**
 * Colour per mapper key (`<mapper>` with our executor or none, `<mapper>@llvm` with LLVM's),
 * in legend order. Hues from Tableau 10; no two keys share a colour.
 */
export const MAPPER_COLOURS: ReadonlyArray<readonly [key: string, colour: string]> = [
  ['inprocess', '#4c78a8'],
  ['shared', '#f58518'],
  ['shared@llvm', '#a0520a'],
  ['rpc', '#54a24b'],
  ['rpc@llvm', '#2a6424'],
  ['dualmap', '#b279a2'],
  ['dualmap@llvm', '#6e3f63'],
];

/** For a mapper this table does not know yet: greys, never a colour of a known mapper. */
const SPARE_COLOURS = ['#7f7f7f', '#4d4d4d', '#a6a6a6', '#262626'];

/** Fit policies, in the churn chart. */
export const POLICY_COLOURS: ReadonlyArray<readonly [policy: string, colour: string]> = [
  ['first-fit', '#e45756'],
  ['best-fit', '#3b8bc2'],
];

/** Phases of an iteration, in the phase chart: a sequence of hues apart from the mappers'. */
export const PHASE_COLOURS: ReadonlyArray<readonly [phase: string, colour: string]> = [
  ['reserve', '#8c6bb1'],
  ['prepare', '#c6dbef'],
  ['write', '#fdae6b'],
  ['initialize', '#d6604d'],
  ['deinitialize', '#92c5de'],
  ['release', '#bababa'],
];

export function mapperKey(mapper: string, executor: string): string {
  return executor === 'llvm' ? `${mapper}@llvm` : mapper;
}

/** A mapper as the charts name it: with the executor when it is LLVM's. */
export function mapperLabel(mapper: string, executor: string): string {
  const name = MAPPER_NAMES[mapper] ?? mapper;
  return executor === 'llvm' ? `${name} (LLVM executor)` : name;
}

function labelOfKey(key: string): string {
  const [mapper, executor] = key.split('@') as [string, string | undefined];
  return mapperLabel(mapper, executor ?? 'jitmem');
}

/**
 * A Vega-Lite colour scale for the mapper labels a chart shows: only those (no empty legend
 * entries), each with its fixed colour, in the fixed order.
 */
export function mapperColourScale(keys: Iterable<string>): { domain: string[]; range: string[] } {
  const present = new Set(keys);
  const known = MAPPER_COLOURS.filter(([k]) => present.has(k));
  const unknown = [...present].filter((k) => !MAPPER_COLOURS.some(([known]) => known === k)).sort();
  return {
    domain: [...known.map(([k]) => labelOfKey(k)), ...unknown.map(labelOfKey)],
    range: [...known.map(([, c]) => c), ...unknown.map((_, i) => SPARE_COLOURS[i % SPARE_COLOURS.length]!)],
  };
}

/** Mapper labels in legend order: to sort rows and axes the same way in every chart. */
export function mapperOrder(keys: Iterable<string>): string[] {
  return mapperColourScale(keys).domain;
}

export function fixedScale(
  pairs: ReadonlyArray<readonly [string, string]>,
  present: Iterable<string>,
): { domain: string[]; range: string[] } {
  const set = new Set(present);
  const kept = pairs.filter(([k]) => set.has(k));
  const extra = [...set].filter((k) => !pairs.some(([p]) => p === k)).sort();
  return {
    domain: [...kept.map(([k]) => k), ...extra],
    range: [...kept.map(([, c]) => c), ...extra.map((_, i) => SPARE_COLOURS[i % SPARE_COLOURS.length]!)],
  };
}
