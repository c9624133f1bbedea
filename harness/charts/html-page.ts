import type { Report } from '../report/report.js';
import type { Comparison, RatioComparison, TimeComparison } from '../compare/comparison.js';
import { pValue } from '../compare/format.js';
import { budgetItems, headlineItems, PLAIN_RESULT_COLUMNS, resultCells } from '../bench/summary.js';
import { samplingOutline, type SamplingEntry } from '../bench/sampling.js';
import { machineSpeedText } from '../bench/machine-speed.js';
import type { ChartSpec, SkippedChart } from './chart-types.js';

/**
 * The one self-contained HTML page of `jitmem charts`: every chart's SVG inline, every spec
 * inline as JSON, no script and no external reference, so it opens from file:// with no
 * network. The Content-Security-Policy forbids any fetch, which also proves it.
 */

export interface RenderedChart {
  readonly chart: ChartSpec;
  readonly svg: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON that cannot close the script element it sits in. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value, null, 1)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function reportLine(report: Report, i: number): string {
  const e = report.env;
  const commit = e.commit ? `${e.commit.slice(0, 12)}${e.dirty ? '+dirty' : ''}` : 'no commit';
  return `<li>#${i + 1}: ${escapeHtml(report.createdAt)}, ${escapeHtml(commit)}, preset ${escapeHtml(report.options.preset)}, node ${escapeHtml(e.node)}, ${escapeHtml(e.cpuModel)} x${e.cpus}, ${escapeHtml(e.os)} ${escapeHtml(e.kernel)}</li>`;
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

function table(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  numeric: ReadonlySet<number>,
  rowClass?: (i: number) => string,
): string {
  const cell = (tag: string, text: string, i: number) =>
    `<${tag}${numeric.has(i) ? ' class="num"' : ''}>${escapeHtml(text)}</${tag}>`;
  return `<table><thead><tr>${header.map((h, i) => cell('th', h, i)).join('')}</tr></thead><tbody>${rows
    .map(
      (r, j) =>
        `<tr${rowClass?.(j) ? ` class="${rowClass(j)}"` : ''}>${r.map((c, i) => cell('td', c, i)).join('')}</tr>`,
    )
    .join('')}</tbody></table>`;
}

/**
 * The precision account, as the terminal prints it: a group short of its target in red with the
 * speedups it names under it; the speedups no group waited for (dozens in a default run) folded
 * under one line, to open.
 */
function precisionSection(head: string, entries: readonly SamplingEntry[]): string {
  const named = (rows: readonly string[]) =>
    rows.length ? `<ul>${rows.map((r) => `<li>${escapeHtml(r)}</li>`).join('')}</ul>` : '';
  const entry = (e: SamplingEntry) =>
    e.kind === 'not-waited'
      ? e.rows.length
        ? `<li><details><summary>${escapeHtml(e.text.replace(/:$/, ''))}: ${e.rows.length}</summary>${named(e.rows)}</details></li>`
        : `<li>${escapeHtml(e.text)}</li>`
      : `<li><span class="over">${escapeHtml(e.text)}</span>${named(e.rows)}</li>`;
  return `<h3>Precision</h3>\n<p>${escapeHtml(head)}</p>${entries.length ? `\n<ul class="sampling">${entries.map(entry).join('')}</ul>` : ''}`;
}

/** The run's summary, as the terminal prints it: headline speedups, budgets, the table of cells. */
function summarySection(report: Report): string {
  const headlines = headlineItems(report);
  const budgets = budgetItems(report);
  const sampling = samplingOutline(report.sampling?.groups ?? [], report.sampling?.precision);
  // The terminal's columns without counters; the legend defines exactly the columns shown.
  const columns = PLAIN_RESULT_COLUMNS;
  const rows = report.results.map((r) => resultCells(columns, r));
  const numeric = new Set(columns.flatMap((c, i) => (c.align === 'left' ? [] : [i])));
  return `<section id="summary">
<h2>Summary of the last report</h2>
${budgets.length ? `<h3>Budgets</h3>\n<ul class="budgets">${budgets.map((b) => `<li${b.over ? ' class="over"' : ''}>${escapeHtml(b.text)}</li>`).join('')}</ul>` : ''}
${headlines.length ? `<h3>Shared memory against RPC copy</h3>\n<ul class="headlines">${headlines.map((h) => `<li${h.significant ? ' class="significant"' : ''}>${escapeHtml(h.text)}</li>`).join('')}</ul>` : ''}
${sampling ? precisionSection(sampling.head, sampling.entries) : ''}
${report.sampling?.machineSpeed ? `<h3>Machine speed</h3>\n<p>${escapeHtml(machineSpeedText(report.sampling.machineSpeed))}</p>` : ''}
<h3>Cells</h3>
<div class="wide">${table(
    columns.map((c) => c.header),
    rows,
    numeric,
  )}</div>
<ul class="legend">${columns.flatMap((c) => (c.legend ? [`<li><b>${escapeHtml(c.header)}</b>: ${escapeHtml(c.legend)}</li>`] : [])).join('')}</ul>
</section>`;
}

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
}

/** What `jitmem compare FIRST LAST` says, for a page drawn from two reports. */
function compareSection(c: Comparison): string {
  const verdict = (v: string) => (v === 'regression' ? 'REGRESSION' : v === 'improvement' ? 'improvement' : '~');
  const cells = (r: RatioComparison | TimeComparison): string[] => [
    r.label,
    ...(r.kind === 'ratio'
      ? [r.base.speedup.toFixed(2), r.head.speedup.toFixed(2)]
      : [ms(r.base.median), ms(r.head.median)]),
    pct(r.change),
    pValue(r.p),
    r.undecided || r.refused ? 'not judged' : verdict(r.verdict),
  ];
  const ratioRows = c.ratios.map(cells);
  const timeRows = c.times.map(cells);
  const counted = [...c.ratios, ...c.times].filter((r) => r.verdict !== 'same');
  // As compare says it: no "no regression" unless every row was judged.
  const inconclusive =
    c.undecided > 0 ? `INCONCLUSIVE: ${c.undecided} row${c.undecided === 1 ? '' : 's'} too noisy to judge` : '';
  const summary =
    c.regressions > 0
      ? `${c.regressions} significant regression${c.regressions === 1 ? '' : 's'} beyond the threshold${inconclusive ? `; ${inconclusive}` : ''}`
      : inconclusive ||
        `no significant regression beyond the threshold, every row judged${c.improvements ? ` (${c.improvements} significant improvement${c.improvements === 1 ? '' : 's'})` : ''}`;
  const cls = (rows: ReadonlyArray<readonly string[]>) => (i: number) =>
    rows[i]![5] === 'REGRESSION' ? 'over' : rows[i]![5] === 'improvement' ? 'better' : '';
  const countedRows = counted.map(cells);
  return `<section id="compare">
<h2>Compared: first report against last</h2>
<p class="${c.regressions > 0 || c.undecided > 0 ? 'over' : ''}">${escapeHtml(`jitmem compare (alpha ${c.alpha}, threshold ${(c.threshold * 100).toFixed(0)}%): ${summary}.`)}</p>
${c.warnings.map((w) => `<p class="warning">${escapeHtml(`warning: ${w}`)}</p>`).join('\n')}
${countedRows.length ? `<div class="wide">${table(['row', 'first', 'last', 'change', 'p', 'verdict'], countedRows, new Set([1, 2, 3, 4]), cls(countedRows))}</div>` : ''}
<details><summary>every compared row (${ratioRows.length} speedups, ${timeRows.length} latencies)</summary>
<div class="wide">${table(['speedup row', 'first', 'last', 'change', 'p', 'verdict'], ratioRows, new Set([1, 2, 3, 4]), cls(ratioRows))}</div>
<div class="wide">${table(['latency row (ms)', 'first', 'last', 'change', 'p', 'verdict'], timeRows, new Set([1, 2, 3, 4]), cls(timeRows))}</div>
</details>
</section>`;
}

export interface PageExtras {
  /** The first report compared with the last, when the page is drawn from two. */
  readonly comparison?: Comparison;
}

export function htmlPage(
  reports: readonly Report[],
  rendered: readonly RenderedChart[],
  skipped: readonly SkippedChart[],
  extras: PageExtras = {},
): string {
  const sections = rendered.map(
    ({ chart, svg }) => `<section id="${chart.name}">
<h2>${escapeHtml(chart.title)}</h2>
<p>${escapeHtml(chart.caption)}</p>
<figure>${svg}</figure>
<p class="files">files: <a href="${chart.name}.vl.json">${chart.name}.vl.json</a> · <a href="${chart.name}.svg">${chart.name}.svg</a> · <a href="${chart.name}.png">${chart.name}.png</a></p>
<script type="application/json" id="spec-${chart.name}">${scriptJson(chart.spec)}</script>
</section>`,
  );
  const skippedList = skipped.length
    ? `<section id="skipped"><h2>Not drawn</h2><ul>${skipped.map((s) => `<li>${escapeHtml(s.name)}: ${escapeHtml(s.reason)}</li>`).join('')}</ul></section>`
    : '';
  const last = reports[reports.length - 1]!;
  const nav = [
    '<a href="#summary">Summary</a>',
    ...(extras.comparison ? ['<a href="#compare">Compared</a>'] : []),
    ...rendered.map(({ chart }) => `<a href="#${chart.name}">${escapeHtml(chart.title)}</a>`),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jitmem benchmark report</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; } h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
figure { margin: 0; max-width: 100%; } figure svg { max-width: 100%; height: auto; }
nav { display: flex; flex-wrap: wrap; gap: 0.3rem 1rem; }
.files, .legend, .runs { font-size: 0.85rem; color: #555; }
.wide { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.8rem; }
th, td { padding: 0.15rem 0.6rem; text-align: left; white-space: nowrap; border-bottom: 1px solid #eee; }
th { border-bottom: 1px solid #999; } .num { text-align: right; font-variant-numeric: tabular-nums; }
ul.headlines li:not(.significant) { color: #666; }
.over { color: #a40000; font-weight: bold; background: #fde8e8; }
.better { color: #1d5e1d; }
li.over, span.over { padding: 0 0.3rem; }
.warning { color: #8a5a00; }
</style>
</head>
<body>
<h1>jitmem benchmark report</h1>
<ul class="runs">${reports.map(reportLine).join('')}</ul>
<nav>${nav.join('')}</nav>
${summarySection(last)}
${extras.comparison ? compareSection(extras.comparison) : ''}
${sections.join('\n')}
${skippedList}
</body>
</html>
`;
}
