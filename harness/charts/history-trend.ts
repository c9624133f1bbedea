import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Trend } from '../report/history.js';
import { CHART_CONFIG, VEGA_LITE_SCHEMA_URL } from './chart-types.js';

/**
 * The trend chart of `jitmem history`: each headline ratio across commits (short hashes on the
 * x axis, in the order stored), its 95% interval as a band and error bars, one panel per ratio
 * so that ratios of very different size keep their own scale. The axis is logarithmic (a 2x
 * gain and a 2x loss are the same distance from 1) and always holds 1x, drawn as a rule: the
 * line where shared memory and RPC copy are equally fast. Data inline, as every chart.
 */

export const TREND_X_TITLE = 'commit';
/** Short: a rotated title longer than the panel pushes the panel down. The subtitle says the rest. */
export const TREND_Y_TITLE = 'speedup (x, log)';
export const TREND_SUBTITLE =
  'shared memory over RPC copy; 95% intervals as bands and bars; dashed line: 1x, no difference';

/** The layers of one panel: the 1x rule and its label, the interval band and bars, the line of points. */
function trendLayers(x: Record<string, unknown>): Array<Record<string, unknown>> {
  return [
    // 1x: no difference. A datum in the layer puts 1 inside every panel's domain.
    // One row per panel (aggregate), so the rule and its label are drawn once, not once per point.
    {
      transform: [{ aggregate: [{ op: 'count', as: 'points' }] }],
      mark: { type: 'rule', color: '#888', strokeDash: [4, 3] },
      encoding: {
        y: {
          datum: 1,
          type: 'quantitative',
          title: TREND_Y_TITLE,
          scale: { type: 'log', nice: false, padding: 8 },
        },
      },
    },
    {
      transform: [{ aggregate: [{ op: 'count', as: 'points' }] }],
      mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 2, dy: -2, color: '#666', fontSize: 10 },
      encoding: { y: { datum: 1, type: 'quantitative' }, x: { value: 0 }, text: { value: '1x (no difference)' } },
    },
    {
      mark: { type: 'area', opacity: 0.15, color: '#4c78a8' },
      encoding: {
        x,
        y: {
          field: 'low',
          type: 'quantitative',
          title: TREND_Y_TITLE,
          scale: { type: 'log', nice: false, padding: 8 },
        },
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
  ];
}

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
    title: { text: 'Headline speedups across commits', subtitle: TREND_SUBTITLE },
    config: CHART_CONFIG,
    data: { values },
    // A wrapped facet of one column: each panel's name sits on top of it (a row facet's headers
    // reserve the width of their label as height).
    facet: {
      field: 'ratio',
      type: 'nominal',
      title: null,
      sort: trends.map((t) => t.label),
      header: { labelAnchor: 'start', labelLimit: 520, labelFontSize: 12 },
    },
    columns: 1,
    // Each panel its own y scale (ratios of very different size) and its own commit axis (the
    // space is reserved anyway).
    resolve: { scale: { y: 'independent' }, axis: { x: 'independent' } },
    spec: {
      width: 520,
      height: 160,
      layer: trendLayers(x),
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
