import { fileURLToPath } from 'node:url';
import { Resvg } from '@resvg/resvg-js';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { CHART_FONT_FAMILY } from './chart-types.js';

/**
 * Renders a Vega-Lite spec in Node: compiled to Vega, drawn to SVG by Vega's headless view,
 * and rasterized to PNG by resvg with the font the project ships and no system fonts, so the
 * same report gives the same PNG on every machine.
 */

/** DejaVu Sans (Bitstream Vera licence, see DejaVuSans-LICENSE.txt), resolved from dist/ or from the source tree. */
export const CHART_FONT_FILE = fileURLToPath(new URL('../../../harness/charts/fonts/DejaVuSans.ttf', import.meta.url));

/**
 * Vega's and Vega-Lite's messages go to `warnings` (when given), never to the console: this is
 * library code. Errors still throw.
 */
function collectingLogger(warnings: string[] | undefined) {
  let level = 0;
  const logger = {
    level(l?: number) {
      if (l === undefined) return level as never;
      level = l;
      return logger;
    },
    error(...args: readonly unknown[]) {
      throw new Error(args.map(String).join(' '));
    },
    warn(...args: readonly unknown[]) {
      warnings?.push(args.map(String).join(' '));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  return logger;
}

export async function renderSvg(spec: Record<string, unknown>, warnings?: string[]): Promise<string> {
  const logger = collectingLogger(warnings);
  // A copy: Vega-Lite normalizes parts of the spec it is given in place.
  const vega = compile(structuredClone(spec) as unknown as TopLevelSpec, { logger: logger as never }).spec;
  const view = new View(parse(vega), { renderer: 'none', logger: logger as never, logLevel: 2 });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** PNG at twice the SVG's size, for sharp text on high-density screens. */
export function renderPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: {
      fontFiles: [CHART_FONT_FILE],
      loadSystemFonts: false,
      defaultFontFamily: CHART_FONT_FAMILY,
      sansSerifFamily: CHART_FONT_FAMILY,
    },
  });
  return resvg.render().asPng();
}
