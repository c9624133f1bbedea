import { styleText } from 'node:util';
import { fitTable, tableLegend, wrapText, type Column } from '../report/format-table.js';
import { MAX_GATED_THRESHOLD } from './calibrate.js';
import { IN_PROCESS_THRESHOLD_FLOOR } from './thresholds.js';
import type { Comparison, GeometricMeanRow, RatioComparison, TimeComparison } from './comparison.js';

/** A comparison as text (for a terminal), as Markdown (for a CI summary), and the pieces both share. */

export function pct(x: number): string {
  if (Number.isNaN(x)) return 'n/a';
  if (x === Infinity) return '+inf';
  const text = (x * 100).toFixed(1);
  // A change that rounds to zero is +0.0%, whichever side of zero the float fell on.
  return text === '-0.0' || text === '0.0' ? '+0.0%' : `${x > 0 ? '+' : ''}${text}%`;
}
/** A row's threshold as its column shows it: 'not gated' for a row a calibration leaves out of the gate. */
export function thresholdText(x: number): string {
  return x === Infinity ? 'not gated' : pct(x).slice(1);
}

/** A time in the table's one unit, to three significant figures or more. */
const inUnit = (x: number, unit: 'ms' | 'us') => {
  const v = unit === 'us' ? x * 1000 : x;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);
};
/** One unit per table: microseconds when every time is below 0.1 ms, milliseconds otherwise. */
const unitOf = (xs: readonly number[]): 'ms' | 'us' => (xs.every((x) => x < 0.1) ? 'us' : 'ms');
const times = (x: number) => `${x.toFixed(2)}x`;
export const pValue = (p: number) => (p < 0.0001 ? '<0.0001' : p.toFixed(4));
const verdictText = (r: { verdict: TimeComparison['verdict']; refused?: string; undecided?: string }) =>
  r.refused || r.undecided
    ? 'not judged'
    : r.verdict === 'regression'
      ? 'REGRESSION'
      : r.verdict === 'improvement'
        ? 'improvement'
        : '';
const changeText = (r: { verdict: TimeComparison['verdict']; change: number }) =>
  r.verdict === 'same' ? '~' : pct(r.change);

/** Colours for a terminal: red regressions, green improvements, yellow warnings (none when off). */
export interface Paint {
  verdict(text: string, verdict: TimeComparison['verdict']): string;
  warning(text: string): string;
}
export const plain: Paint = { verdict: (t) => t, warning: (t) => t };
export function terminalPaint(): Paint {
  return {
    verdict: (t, v) =>
      v === 'regression' ? styleText(['bold', 'red'], t) : v === 'improvement' ? styleText(['green'], t) : t,
    warning: (t) => styleText(['yellow'], t),
  };
}

/** The noise column, present only when some row has a noise bound. */
function withNoise(
  header: string[],
  cells: string[][],
  rows: ReadonlyArray<{ noise: number | null }>,
): { header: string[]; cells: string[][] } {
  if (!rows.some((r) => r.noise !== null)) return { header, cells };
  const at = header.indexOf('threshold');
  return {
    header: [...header.slice(0, at), 'noise', ...header.slice(at)],
    cells: cells.map((c, i) => [
      ...c.slice(0, at),
      rows[i] && rows[i]!.noise !== null ? pct(rows[i]!.noise!).slice(1) : '',
      ...c.slice(at),
    ]),
  };
}

function timeTable(
  rows: readonly TimeComparison[],
  geo: GeometricMeanRow | null,
): { header: string[]; cells: string[][] } {
  const unit = unitOf(rows.flatMap((r) => [r.base.median, r.head.median]));
  const header = ['row', `base p50 ${unit}`, `head p50 ${unit}`, 'change', '95% CI', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [
    r.label,
    inUnit(r.base.median, unit),
    inUnit(r.head.median, unit),
    changeText(r),
    `[${pct(r.ci95[0])}, ${pct(r.ci95[1])}]`,
    pValue(r.p),
    thresholdText(r.threshold),
    verdictText(r),
  ]);
  if (geo) cells.push(['geometric mean', '', '', pct(geo.change), '', '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

function ratioTable(
  rows: readonly RatioComparison[],
  geo: GeometricMeanRow | null,
): { header: string[]; cells: string[][] } {
  const header = ['speedup', 'base', 'base 95% CI', 'head', 'head 95% CI', 'change', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [
    r.label,
    times(r.base.speedup),
    `[${times(r.base.ci95[0])}, ${times(r.base.ci95[1])}]`,
    times(r.head.speedup),
    `[${times(r.head.ci95[0])}, ${times(r.head.ci95[1])}]`,
    changeText(r),
    pValue(r.p),
    thresholdText(r.threshold),
    verdictText(r),
  ]);
  if (geo) cells.push(['geometric mean', '', '', '', '', pct(geo.change), '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

/** Each column's importance (what is left out first at a narrow width) and its definition. */
const COLUMN_INFO: Record<string, { priority: number; legend?: string }> = {
  row: { priority: 0 },
  speedup: { priority: 0 },
  'counter per iteration': { priority: 0 },
  change: {
    priority: 0,
    legend: 'head against base (times: + is slower; speedups: - is a loss); ~ not significant or inside the threshold.',
  },
  verdict: { priority: 0 },
  base: { priority: 1 },
  head: { priority: 1 },
  'base p50 ms': { priority: 1, legend: 'median time of the row in the base report, in milliseconds.' },
  'head p50 ms': { priority: 1, legend: 'the same in the head report.' },
  'base p50 us': { priority: 1, legend: 'median time of the row in the base report, in microseconds.' },
  'head p50 us': { priority: 1, legend: 'the same in the head report.' },
  threshold: { priority: 2, legend: 'the smallest change that counts, for this row.' },
  '95% CI': { priority: 3, legend: '95% confidence interval of the change.' },
  'base 95% CI': { priority: 4, legend: "95% interval of the base's speedup." },
  'head 95% CI': { priority: 4, legend: "95% interval of the head's speedup." },
  p: { priority: 5, legend: "two-sided p-value of the row's test, before the Holm correction." },
  noise: { priority: 6, legend: "the change two runs of one commit show by chance (the row's noise bound)." },
};

/** A comparison table within `width`, and its legend lines. */
function fitted(
  header: readonly string[],
  cells: ReadonlyArray<readonly string[]>,
  width: number,
): { text: string; legend: string[] } {
  const columns: Column[] = header.map((h, i) => ({
    header: h,
    priority: COLUMN_INFO[h]?.priority ?? 7,
    ...(i === 0 ? { align: 'left' as const } : {}),
    ...(COLUMN_INFO[h]?.legend ? { legend: COLUMN_INFO[h]!.legend! } : {}),
  }));
  const table = fitTable(columns, cells, width);
  return { text: table.text, legend: tableLegend(table, width, 'set COLUMNS wider, or use --format markdown or json') };
}

/** Colours the verdict cells of a text table (after padding, so the columns stay aligned). */
function paintTable(
  text: string,
  rows: ReadonlyArray<{ verdict: TimeComparison['verdict']; refused?: string; label: string }>,
  paint: Paint,
): string {
  // (rows: every row of the table's kind; lines are matched by their first cell, the label)
  if (paint === plain) return text;
  const byLabel = new Map(rows.map((r) => [r.label, r]));
  return text
    .split('\n')
    .map((line) => {
      const row = byLabel.get(line.split(' ')[0]!);
      if (!row || row.verdict === 'same') return line;
      const word = verdictText(row);
      const at = line.lastIndexOf(word);
      return at < 0 ? line : line.slice(0, at) + paint.verdict(word, row.verdict) + line.slice(at + word.length);
    })
    .join('\n');
}

const countText = (x: number) => (Number.isInteger(x) ? String(x) : x >= 100 ? x.toFixed(1) : x.toFixed(3));

/** The counters that changed (any change: they are exact), and a line saying how many did not. */
function counterTable(c: Comparison): { header: string[]; cells: string[][]; note: string } | null {
  if (c.counters.length === 0) return null;
  const changed = c.counters.filter((r) => r.base !== r.head);
  const header = ['counter per iteration', 'base', 'head', 'change', 'verdict'];
  const cells = changed.map((r) => [
    r.label,
    countText(r.base),
    countText(r.head),
    r.change === Infinity ? '+inf' : pct(r.change),
    r.gated ? verdictText(r) : 'not gated',
  ]);
  const note = `${c.counters.length} counters compared exactly: ${changed.length} changed, ${c.counters.length - changed.length} unchanged; an increase beyond ${pct(c.counterTolerance).slice(1)} (and half a count) fails; page faults and context switches are shown, not gated`;
  return { header, cells, note };
}

function identityLine(name: string, file: string, c: Comparison['base']): string {
  const commit = c.commit ? `${c.commit.slice(0, 12)}${c.dirty ? '+dirty' : ''}` : 'no commit';
  return `${name}: ${file} (${commit}, ${c.createdAt}, node ${c.node}, ${c.cpuModel})`;
}

function methodNote(c: Comparison): string {
  const runs =
    c.noiseRuns || c.baseRuns > 1
      ? `; judged over runs (base ${c.baseRuns}, head ${Math.max(1, c.noiseRuns)})`
      : '; judged round by round';
  const ungated = [...c.times, ...c.ratios].filter((r) => r.threshold === Infinity).length;
  const shown = ungated
    ? `; ${ungated} row${ungated === 1 ? '' : 's'} shown, not gated (calibrated threshold above ${MAX_GATED_THRESHOLD * 100}%)`
    : '';
  return `Holm-Bonferroni alpha ${c.alpha} over ${c.times.length + c.ratios.length} rows, threshold ${pct(c.threshold).slice(1)}${c.threshold < IN_PROCESS_THRESHOLD_FLOOR ? ` (rows with an in-process side ${pct(IN_PROCESS_THRESHOLD_FLOOR).slice(1)})` : ''}${runs}${shown}`;
}

/** The rows that could not be judged, named (the first few) with why. */
function undecidedRows(c: Comparison): Array<{ label: string; undecided: string }> {
  return [...c.times, ...c.ratios].filter((r): r is typeof r & { undecided: string } => r.undecided !== undefined);
}

/**
 * The verdict's first line when some gated row could not be judged: whatever else the
 * comparison found, it cannot say "no regression".
 */
export function inconclusiveLine(c: Comparison): string | undefined {
  const rows = undecidedRows(c);
  if (rows.length === 0) return undefined;
  const named = rows
    .slice(0, 3)
    .map((r) => `${r.label}: ${r.undecided}`)
    .join('; ');
  return `INCONCLUSIVE: ${rows.length} row${rows.length === 1 ? '' : 's'} too noisy to judge (${named}${rows.length > 3 ? `; and ${rows.length - 3} more` : ''})`;
}

function summaryLine(c: Comparison): string {
  const undecided = c.undecided
    ? ` ${c.undecided} row${c.undecided === 1 ? '' : 's'} could not be judged (INCONCLUSIVE, named below).`
    : '';
  if (c.regressions > 0)
    return `${c.regressions} significant regression${c.regressions === 1 ? '' : 's'} beyond the threshold.${undecided}`;
  if (c.undecided > 0)
    return `No regression found among the rows judged, but ${c.undecided} row${c.undecided === 1 ? '' : 's'} could not be judged: INCONCLUSIVE.`;
  return `No significant regression beyond the threshold${c.improvements ? ` (${c.improvements} significant improvement${c.improvements === 1 ? '' : 's'})` : ''}; every gated row was judged.`;
}

/**
 * The verdict's lines, first first: a regression (what fails CI with exit 1) leads, then the
 * INCONCLUSIVE line (exit 3) when some gated row could not be judged, else the plain verdict.
 */
function verdictLines(c: Comparison): Array<{ text: string; mark: 'regression' | 'inconclusive' | 'pass' }> {
  const inconclusive = inconclusiveLine(c);
  const summary = { text: summaryLine(c), mark: c.regressions > 0 ? ('regression' as const) : ('pass' as const) };
  if (!inconclusive) return [summary];
  const line = { text: inconclusive, mark: 'inconclusive' as const };
  return c.regressions > 0 ? [summary, line] : [line, { ...summary, mark: 'inconclusive' as const }];
}

function unmatchedLines(c: Comparison): string[] {
  return c.unmatched.map((u) => `${u.only === 'head' ? 'added' : 'removed'}: ${u.label}`);
}

/**
 * The comparison for a terminal or a log: the verdict first (what CI acts on), then warnings,
 * the two reports, the method, and the tables (times, speedups, counters), each fitted to
 * `width` with a legend of the columns it shows; prose wraps to `width`.
 */
export function formatText(
  c: Comparison,
  baseFile: string,
  headFile: string,
  paint: Paint = plain,
  width = Infinity,
): string {
  const out: string[] = [];
  const wrap = (line: string) => wrapText(line, width, '  ');
  for (const v of verdictLines(c))
    out.push(...wrap(v.text).map((l) => (v.mark === 'pass' ? l : paint.verdict(l, 'regression'))));
  out.push('');
  for (const w of c.warnings) out.push(...wrap(`warning: ${w}`).map((l) => paint.warning(l)));
  out.push(...wrap(identityLine('base', baseFile, c.base)), ...wrap(identityLine('head', headFile, c.head)));
  out.push(...wrap(methodNote(c)), '');
  const legend = new Set<string>();
  if (c.times.length) {
    const t = timeTable(c.times, c.timesGeometricMean);
    const f = fitted(t.header, t.cells, width);
    out.push(paintTable(f.text, c.times, paint));
    f.legend.forEach((l) => legend.add(l));
  }
  if (c.ratios.length) {
    const t = ratioTable(c.ratios, c.ratiosGeometricMean);
    const f = fitted(t.header, t.cells, width);
    out.push(paintTable(f.text, c.ratios, paint));
    f.legend.forEach((l) => legend.add(l));
  }
  if (legend.size) out.push(...legend, '');
  const k = counterTable(c);
  if (k) {
    if (k.cells.length) out.push(paintTable(fitted(k.header, k.cells, width).text, c.counters, paint));
    out.push(...wrap(k.note), '');
  }
  const unmatched = unmatchedLines(c);
  if (unmatched.length) out.push(...unmatched.flatMap(wrap), '');
  return out.join('\n');
}

function markdownTable(header: readonly string[], cells: ReadonlyArray<readonly string[]>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const right = header.map((_, i) => i > 0);
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${right.map((r) => (r ? '---:' : ':---')).join('|')}|`,
    ...cells.map((row) => `| ${row.map((x, i) => esc(i === 0 && x.includes('/') ? `\`${x}\`` : x)).join(' | ')} |`),
  ].join('\n');
}

export function formatMarkdown(c: Comparison, baseFile: string, headFile: string): string {
  // The verdict first: what a reviewer of the pull request reads before anything else.
  const marks = { regression: ':x: ', inconclusive: ':grey_question: ', pass: ':white_check_mark: ' };
  const out: string[] = [
    '## jitmem compare',
    '',
    ...verdictLines(c).flatMap((v) => [`**${marks[v.mark]}${v.text}**`, '']),
  ];
  for (const w of c.warnings) out.push(`> **warning:** ${w}`, '');
  out.push(
    `- ${identityLine('base', `\`${baseFile}\``, c.base)}`,
    `- ${identityLine('head', `\`${headFile}\``, c.head)}`,
  );
  out.push(`- ${methodNote(c)}; \`~\`: not significant or inside the threshold`, '');
  if (c.times.length) {
    const t = timeTable(c.times, c.timesGeometricMean);
    out.push('### Times', '', markdownTable(t.header, t.cells), '');
  }
  if (c.ratios.length) {
    const t = ratioTable(c.ratios, c.ratiosGeometricMean);
    out.push('### Speedup ratios', '', markdownTable(t.header, t.cells), '');
  }
  const k = counterTable(c);
  if (k) {
    out.push('### Cost counters', '');
    if (k.cells.length) out.push(markdownTable(k.header, k.cells), '');
    out.push(k.note, '');
  }
  const unmatched = unmatchedLines(c);
  if (unmatched.length) out.push('### Rows in one report only', '', ...unmatched.map((l) => `- ${l}`), '');
  return out.join('\n');
}
