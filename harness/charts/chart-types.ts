/**
 * What every chart spec is and shares (its shape, the font, the Vega-Lite schema): imported by
 * each module that builds specs, so that no spec module imports another.
 */

/** The font every chart is drawn in: shipped in harness/charts/fonts so PNGs are the same on every machine. */
export const CHART_FONT_FAMILY = 'DejaVu Sans';

export const VEGA_LITE_SCHEMA_URL = 'https://vega.github.io/schema/vega-lite/v6.json';

export type ChartName = 'speedup' | 'phases' | 'sweep' | 'latency' | 'churn' | 'history' | 'end-to-end';

export interface ChartSpec {
  /** File stem: <name>.vl.json, <name>.svg, <name>.png. */
  readonly name: ChartName;
  readonly title: string;
  /** What the chart shows and how to read it, for the HTML page. */
  readonly caption: string;
  /** Axis and legend titles the rendered chart must show (tests check them in the SVG). */
  readonly axisTitles: readonly string[];
  /** Vega mark types the rendered chart must hold, as in the SVG's `mark-<type>` classes. */
  readonly marks: readonly string[];
  readonly spec: Record<string, unknown>;
}

export interface SkippedChart {
  readonly name: ChartName;
  readonly reason: string;
}

export interface ChartSet {
  readonly charts: readonly ChartSpec[];
  readonly skipped: readonly SkippedChart[];
}

/** The look every chart shares: the shipped font, a white ground, and the same type sizes. */
export const CHART_CONFIG = {
  font: CHART_FONT_FAMILY,
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' },
};
