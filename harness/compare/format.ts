import { styleText } from 'node:util';
import { formatTable } from '../report/format-table.js';
import type { Comparison, GeometricMeanRow, RatioComparison, TimeComparison } from './comparison.js';

/** A comparison as text (for a terminal), as Markdown (for a CI summary), and the pieces both share. */

export function pct(x: number): string {
  if (Number.isNaN(x)) return 'n/a';
  if (x === Infinity) return '+inf';
  const text = (x * 100).toFixed(1);
  // A change that rounds to zero is +0.0%, whichever side of zero the float fell on.
  return text === '-0.0' || text === '0.0' ? '+0.0%' : `${x > 0 ? '+' : ''}${text}%`;
}
const ms = (x: number) => (x < 0.1 ? `${(x * 1000).toFixed(2)} us` : `${x.toFixed(3)} ms`);
const times = (x: number) => `${x.toFixed(2)}x`;
export const pValue = (p: number) => (p < 0.0001 ? '<0.0001' : p.toFixed(4));
const verdictText = (r: { verdict: TimeComparison['verdict']; refused?: string; undecided?: string }) =>
  r.refused || r.undecided ? 'not judged' : r.verdict === 'regression' ? 'REGRESSION' : r.verdict === 'improvement' ? 'improvement' : '';
const changeText = (r: { verdict: TimeComparison['verdict']; change: number }) => (r.verdict === 'same' ? '~' : pct(r.change));

/** Colours for a terminal: red regressions, green improvements, yellow warnings (none when off). */
export interface Paint {
  verdict(text: string, verdict: TimeComparison['verdict']): string;
  warning(text: string): string;
}
export const plain: Paint = { verdict: (t) => t, warning: (t) => t };
export function terminalPaint(): Paint {
  return {
    verdict: (t, v) => (v === 'regression' ? styleText(['bold', 'red'], t) : v === 'improvement' ? styleText(['green'], t) : t),
    warning: (t) => styleText(['yellow'], t),
  };
}

/** The noise column, present only when some row has a noise bound. */
function withNoise(header: string[], cells: string[][], rows: ReadonlyArray<{ noise: number | null }>): { header: string[]; cells: string[][] } {
  if (!rows.some((r) => r.noise !== null)) return { header, cells };
  const at = header.indexOf('threshold');
  return {
    header: [...header.slice(0, at), 'noise', ...header.slice(at)],
    cells: cells.map((c, i) => [...c.slice(0, at), rows[i] && rows[i]!.noise !== null ? pct(rows[i]!.noise!).slice(1) : '', ...c.slice(at)]),
  };
}

function timeTable(rows: readonly TimeComparison[], geo: GeometricMeanRow | null): { header: string[]; cells: string[][] } {
  const header = ['row', 'base p50', 'head p50', 'change', '95% CI', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [r.label, ms(r.base.median), ms(r.head.median), changeText(r), `[${pct(r.ci95[0])}, ${pct(r.ci95[1])}]`, pValue(r.p), pct(r.threshold).slice(1), verdictText(r)]);
  if (geo) cells.push(['geometric mean', '', '', pct(geo.change), '', '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

function ratioTable(rows: readonly RatioComparison[], geo: GeometricMeanRow | null): { header: string[]; cells: string[][] } {
  const header = ['speedup', 'base', 'base 95% CI', 'head', 'head 95% CI', 'change', 'p', 'threshold', 'verdict'];
  const cells = rows.map((r) => [
    r.label,
    times(r.base.speedup),
    `[${times(r.base.ci95[0])}, ${times(r.base.ci95[1])}]`,
    times(r.head.speedup),
    `[${times(r.head.ci95[0])}, ${times(r.head.ci95[1])}]`,
    changeText(r),
    pValue(r.p),
    pct(r.threshold).slice(1),
    verdictText(r),
  ]);
  if (geo) cells.push(['geometric mean', '', '', '', '', pct(geo.change), '', '', `${geo.rows} rows`]);
  return withNoise(header, cells, rows);
}

/** Colours the verdict cells of a text table (after padding, so the columns stay aligned). */
function paintTable(text: string, rows: ReadonlyArray<{ verdict: TimeComparison['verdict']; refused?: string; label: string }>, paint: Paint): string {
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
  const cells = changed.map((r) => [r.label, countText(r.base), countText(r.head), r.change === Infinity ? '+inf' : pct(r.change), r.gated ? verdictText(r) : 'not gated']);
  const note = `${c.counters.length} counters compared exactly: ${changed.length} changed, ${c.counters.length - changed.length} unchanged; an increase beyond ${pct(c.counterTolerance).slice(1)} (and half a count) fails; page faults and context switches are shown, not gated`;
  return { header, cells, note };
}

function identityLine(name: string, file: string, c: Comparison['base']): string {
  const commit = c.commit ? `${c.commit.slice(0, 12)}${c.dirty ? '+dirty' : ''}` : 'no commit';
  return `${name}: ${file} (${commit}, ${c.createdAt}, node ${c.node}, ${c.cpuModel})`;
}

function methodNote(c: Comparison): string {
  const runs = c.noiseRuns || c.baseRuns > 1 ? `; judged over runs (base ${c.baseRuns}, head ${Math.max(1, c.noiseRuns)})` : '; judged round by round';
  return `Holm-Bonferroni alpha ${c.alpha} over ${c.times.length + c.ratios.length} rows, threshold ${pct(c.threshold).slice(1)}${runs}`;
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
  const undecided = c.undecided ? ` ${c.undecided} row${c.undecided === 1 ? '' : 's'} could not be judged (INCONCLUSIVE above).` : '';
  if (c.regressions > 0) return `${c.regressions} significant regression${c.regressions === 1 ? '' : 's'} beyond the threshold.${undecided}`;
  if (c.undecided > 0) return `No regression found among the rows judged, but ${c.undecided} row${c.undecided === 1 ? '' : 's'} could not be judged: INCONCLUSIVE.`;
  return `No significant regression beyond the threshold${c.improvements ? ` (${c.improvements} significant improvement${c.improvements === 1 ? '' : 's'})` : ''}; every gated row was judged.`;
}

function unmatchedLines(c: Comparison): string[] {
  return c.unmatched.map((u) => `${u.only === 'head' ? 'added' : 'removed'}: ${u.label}`);
}

export function formatText(c: Comparison, baseFile: string, headFile: string, paint: Paint = plain): string {
  const out: string[] = [];
  const inconclusive = inconclusiveLine(c);
  if (inconclusive) out.push(paint.verdict(inconclusive, 'regression'));
  for (const w of c.warnings) out.push(paint.warning(`warning: ${w}`));
  out.push(identityLine('base', baseFile, c.base), identityLine('head', headFile, c.head));
  out.push(methodNote(c), '');
  if (c.times.length) {
    const t = timeTable(c.times, c.timesGeometricMean);
    out.push(paintTable(formatTable(t.header, t.cells), c.times, paint));
  }
  if (c.ratios.length) {
    const t = ratioTable(c.ratios, c.ratiosGeometricMean);
    out.push(paintTable(formatTable(t.header, t.cells), c.ratios, paint));
  }
  const k = counterTable(c);
  if (k) {
    if (k.cells.length) out.push(paintTable(formatTable(k.header, k.cells), c.counters, paint));
    out.push(k.note, '');
  }
  const unmatched = unmatchedLines(c);
  if (unmatched.length) out.push(...unmatched, '');
  const summary = summaryLine(c);
  out.push(c.regressions > 0 ? paint.verdict(summary, 'regression') : summary, '');
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
  const inconclusive = inconclusiveLine(c);
  const out: string[] = inconclusive ? [`**:grey_question: ${inconclusive}**`, '', '## jitmem compare', ''] : ['## jitmem compare', ''];
  for (const w of c.warnings) out.push(`> **warning:** ${w}`, '');
  out.push(`- ${identityLine('base', `\`${baseFile}\``, c.base)}`, `- ${identityLine('head', `\`${headFile}\``, c.head)}`);
  out.push(`- ${methodNote(c)}; \`~\`: not significant or inside the threshold`, '');
  out.push(`**${c.regressions > 0 ? ':x: ' : c.undecided > 0 ? ':grey_question: ' : ':white_check_mark: '}${summaryLine(c)}**`, '');
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
