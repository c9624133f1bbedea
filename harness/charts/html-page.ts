import type { Report } from '../report.js';
import type { ChartSpec, SkippedChart } from './chart-specs.js';

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
  return JSON.stringify(value, null, 1).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function reportLine(report: Report, i: number): string {
  const e = report.env;
  const commit = e.commit ? `${e.commit.slice(0, 12)}${e.dirty ? '+dirty' : ''}` : 'no commit';
  return `<li>#${i + 1}: ${escapeHtml(report.createdAt)}, ${escapeHtml(commit)}, preset ${escapeHtml(report.options.preset)}, node ${escapeHtml(e.node)}, ${escapeHtml(e.cpuModel)} x${e.cpus}, ${escapeHtml(e.os)} ${escapeHtml(e.kernel)}</li>`;
}

export function htmlPage(reports: readonly Report[], rendered: readonly RenderedChart[], skipped: readonly SkippedChart[]): string {
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
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jitmem benchmark report</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; background: #fff; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; }
figure { margin: 0; overflow-x: auto; } nav a { margin-right: 1rem; }
.files { font-size: 0.85rem; color: #666; }
</style>
</head>
<body>
<h1>jitmem benchmark report</h1>
<ul>${reports.map(reportLine).join('')}</ul>
<nav>${rendered.map(({ chart }) => `<a href="#${chart.name}">${escapeHtml(chart.title)}</a>`).join('')}</nav>
${sections.join('\n')}
${skippedList}
</body>
</html>
`;
}
