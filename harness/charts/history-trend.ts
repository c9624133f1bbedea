import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Trend } from '../report/history.js';
import { CHART_CONFIG, VEGA_LITE_SCHEMA_URL } from './chart-types.js';

/**
 * The trend chart of `jitmem history`: each headline ratio across commits (short hashes on the
 * x axis, in the order stored), its 95% interval as a band and error bars, one panel per ratio
 * so that ratios of very different size keep their own scale. Data inline, as every chart.
 */

export const TREND_X_TITLE = 'commit';
export const TREND_Y_TITLE = 'speedup (x, 95% CI)';

export function trendChartSpec(trends: readonly Trend[]): Record<string, unknown> {
  const values = trends.flatMap((t) =>
    t.points.map((p, order) => ({
      ratio: t.label,
      commit: p.commit,
      order,
      runs: p.runs,
      speedup: p.speedup,
      low: p.ci95[0],
      high: p.ci95[1],
    })),
  );
  const x = {
    field: 'commit',
    type: 'ordinal',
    title: TREND_X_TITLE,
    sort: { field: 'order' },
    axis: { labelAngle: -30 },
  };
  return {
    $schema: VEGA_LITE_SCHEMA_URL,
    title: 'Headline speedups across commits',
    config: CHART_CONFIG,
    data: { values },
    facet: {
      row: {
        field: 'ratio',
        type: 'nominal',
        title: null,
        header: { labelAngle: 0, labelOrient: 'top', labelAnchor: 'start', labelLimit: 520, labelFontSize: 12 },
      },
    },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 520,
      height: 160,
      layer: [
        {
          mark: { type: 'area', opacity: 0.15, color: '#4c78a8' },
          encoding: {
            x,
            y: { field: 'low', type: 'quantitative', title: TREND_Y_TITLE, scale: { zero: false } },
            y2: { field: 'high' },
          },
        },
        {
          mark: { type: 'errorbar', color: '#4c78a8' },
          encoding: { x, y: { field: 'low', type: 'quantitative', title: TREND_Y_TITLE }, y2: { field: 'high' } },
        },
        {
          mark: { type: 'line', point: true, color: '#4c78a8' },
          encoding: {
            x,
            y: { field: 'speedup', type: 'quantitative', title: TREND_Y_TITLE },
            tooltip: [
              { field: 'commit' },
              { field: 'speedup', format: '.3f' },
              { field: 'low', format: '.3f' },
              { field: 'high', format: '.3f' },
              { field: 'runs' },
            ],
          },
        },
      ],
    },
  };
}

/** Writes trend.vl.json, trend.svg and trend.png into `outDir`; returns the files. */
export async function writeTrendChart(trends: readonly Trend[], outDir: string): Promise<string[]> {
  const spec = trendChartSpec(trends);
  // Rendering needs the optional chart dependencies: loaded only when a chart is drawn.
  const { renderPng, renderSvg } = await import('./render-chart.js');
  const svg = await renderSvg(spec);
  mkdirSync(outDir, { recursive: true });
  const files = [path.join(outDir, 'trend.vl.json'), path.join(outDir, 'trend.svg'), path.join(outDir, 'trend.png')];
  writeFileSync(files[0]!, JSON.stringify(spec, null, 2) + '\n');
  writeFileSync(files[1]!, svg);
  writeFileSync(files[2]!, renderPng(svg));
  return files;
}
