import { writeFileSync } from 'node:fs';
import { ensureOutputDirectory } from '../../core/files.js';
import path from 'node:path';
import type { Report } from '../report/report.js';
import { chartSpecs } from './chart-specs.js';
import type { ChartSpec, SkippedChart } from './chart-types.js';
import { htmlPage } from './html-page.js';
import { compareReports } from '../compare/judge.js';
import { withTitles } from './svg-titles.js';
import { importOptional } from '../optional-dependency.js';

/** The renderer needs vega, vega-lite and resvg, optional packages: loaded when charts are written. */
function loadRenderer(): Promise<typeof import('./render-chart.js')> {
  return importOptional(() => import('./render-chart.js'), ['vega', 'vega-lite', '@resvg/resvg-js'], 'writing charts');
}

export interface WrittenCharts {
  /** The HTML page. */
  readonly index: string;
  /** Every file written, index.html last. */
  readonly files: readonly string[];
  readonly charts: readonly ChartSpec[];
  readonly skipped: readonly SkippedChart[];
}

/**
 * Writes <name>.vl.json, <name>.svg and <name>.png for every chart the reports have data for, and
 * index.html, into `outDir`.
 */
export async function writeCharts(reports: readonly Report[], outDir: string): Promise<WrittenCharts> {
  const { charts, skipped } = chartSpecs(reports);
  const { renderPng, renderSvg } = await loadRenderer();
  ensureOutputDirectory(outDir, 'charts');
  const files: string[] = [];
  const rendered = [];
  for (const chart of charts) {
    const svg = withTitles(await renderSvg(chart.spec));
    const write = (ext: string, data: string | Buffer) => {
      const file = path.join(outDir, `${chart.name}${ext}`);
      writeFileSync(file, data);
      files.push(file);
    };
    write('.vl.json', JSON.stringify(chart.spec, null, 2) + '\n');
    write('.svg', svg);
    write('.png', renderPng(svg));
    rendered.push({ chart, svg });
  }
  const index = path.join(outDir, 'index.html');
  // Two reports: what `jitmem compare FIRST LAST` would say goes on the page too.
  const comparison = reports.length === 2 ? compareReports(reports[0]!, reports[1]!) : undefined;
  writeFileSync(index, htmlPage(reports, rendered, skipped, comparison ? { comparison } : {}));
  files.push(index);
  return { index, files, charts, skipped };
}
