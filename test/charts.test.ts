import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { chartSpecs } from '../harness/charts/chart-specs.js';
import type { ChartSpec } from '../harness/charts/chart-types.js';
import { renderPng, renderSvg } from '../harness/charts/render-chart.js';
import { defaultShapedReport } from './helpers/default-report.js';
import type { Report } from '../harness/report/report.js';
import { runCli } from './helpers/run-cli.js';
import { measuredReport } from './helpers/reports.js';

const require = createRequire(import.meta.url);
const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-charts-'));
const outDir = path.join(dir, 'charts');
const CHROMIUM = '/usr/bin/chromium';

let reports: Report[];
let charts: readonly ChartSpec[];
let cliOutput: { status: number | null; stdout: string; stderr: string };

test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.before(async () => {
  reports = [
    await measuredReport({ samples: 30, sweep: true, churn: true, createdAt: '2026-01-01T00:00:00.000Z' }),
    await measuredReport({ samples: 30, sweep: true, churn: true, createdAt: '2026-01-02T00:00:00.000Z' }),
  ];
  const files = reports.map((r, i) => {
    const file = path.join(dir, `report-${i}.json`);
    writeFileSync(file, JSON.stringify(r));
    return file;
  });
  charts = chartSpecs(reports).charts;
  cliOutput = runCli(['charts', ...files, '--out', outDir]);
});

test('jitmem charts draws every chart, writes spec, SVG and PNG for each and one index.html, and prints where', (t) => {
  t.is(cliOutput.status, 0, cliOutput.stderr);
  t.deepEqual(
    charts.map((c) => c.name),
    ['speedup', 'phases', 'sweep', 'latency', 'churn', 'history'],
  );
  const expected = charts
    .flatMap((c) => [`${c.name}.png`, `${c.name}.svg`, `${c.name}.vl.json`])
    .concat('index.html')
    .sort();
  t.deepEqual(readdirSync(outDir).sort(), expected);
  t.regex(
    cliOutput.stdout,
    new RegExp(`^HTML report: ${path.join(outDir, 'index.html').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'),
  );
  // The end-to-end chart needs run rows, which these reports (timed slab cycles) do not have.
  t.notRegex(cliOutput.stdout.replace(/^end-to-end: skipped, .*$/m, ''), /skipped/);
});

test('every spec is valid Vega-Lite (the JSON schema the vega-lite package ships)', (t) => {
  const Ajv = require('ajv') as new (opts: object) => {
    compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown };
  };
  const schema = JSON.parse(
    readFileSync(path.join(path.dirname(require.resolve('vega-lite')), 'vega-lite-schema.json'), 'utf8'),
  ) as object;
  const validate = new Ajv({
    allErrors: true,
    strict: false,
    allowUnionTypes: true,
    validateFormats: false,
    logger: false,
  }).compile(schema);
  for (const chart of charts) {
    const spec = JSON.parse(readFileSync(path.join(outDir, `${chart.name}.vl.json`), 'utf8')) as unknown;
    t.deepEqual(spec, chart.spec);
    t.true(validate(spec), `${chart.name}: ${JSON.stringify(validate.errors)?.slice(0, 2000)}`);
  }
  // The validator does reject what is not Vega-Lite.
  t.false(validate({ ...charts[1]!.spec, mark: 'nonsense' }));
});

const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

test('every SVG holds its marks and its axis titles, in the shipped font', (t) => {
  for (const chart of charts) {
    const svg = readFileSync(path.join(outDir, `${chart.name}.svg`), 'utf8');
    t.true(svg.startsWith('<svg'), chart.name);
    for (const mark of chart.marks) {
      // A mark group with at least one drawn item: Vega writes one element per item inside it.
      const group = new RegExp(`<g class="mark-${mark} role-[^"]*"[^>]*>(<[a-z]+ [^>]*>)`).exec(svg);
      t.truthy(group, `${chart.name}: no drawn mark-${mark} in the SVG`);
    }
    for (const title of chart.axisTitles)
      t.true(svg.includes(`>${xmlText(title)}</text>`), `${chart.name}: axis title ${JSON.stringify(title)} missing`);
    t.true(svg.includes('font-family="DejaVu Sans"'), `${chart.name}: text not in DejaVu Sans`);
  }
  // The speedup chart draws a dot per ratio over RPC copy (other than RPC copy's own), each
  // with its value as a tooltip, and the rule at 1×.
  const speedup = readFileSync(path.join(outDir, 'speedup.svg'), 'utf8');
  const ratios = reports[1]!.ratios.filter((r) => r.baseline === 'rpc' && r.mapper !== 'rpc');
  const dots = [...speedup.matchAll(/<path [^>]*aria-roledescription="point"[^>]*><title>([^<]*)<\/title>/g)].map(
    (m) => m[1]!,
  );
  t.is(dots.length, ratios.length);
  for (const r of ratios)
    t.true(
      dots.some((d) => d.includes(`${r.speedup >= 10 ? r.speedup.toFixed(1) : r.speedup.toFixed(2)}×`)),
      `no dot says ${r.speedup}`,
    );
  // One colour per mapper, the same in every chart that draws mappers.
  const fills = (svg: string, label: string) =>
    new Set(
      [
        ...svg.matchAll(
          new RegExp(`<path [^>]*aria-label="[^"]*${label}[^"]*"[^>]*(?:fill|stroke)="(#[0-9a-f]{6})"`, 'g'),
        ),
      ].map((m) => m[1]),
    );
  t.deepEqual(fills(speedup, 'shared memory'), new Set(['#f58518']));
  t.deepEqual(fills(readFileSync(path.join(outDir, 'sweep.svg'), 'utf8'), 'shared memory'), new Set(['#f58518']));
});

test('no chart makes Vega or Vega-Lite warn (what they warn of, a wrong size or a dropped setting, shows in the chart), and nothing reaches the console', async (t) => {
  const shaped = [
    defaultShapedReport({ llvm: false, commit: 'ba06df918faf1b2c3d4e5f60718293a4b5c6d7e8', preset: 'quick' }),
    defaultShapedReport({ llvm: true }),
  ];
  for (const chart of [...charts, ...chartSpecs(shaped).charts]) {
    const warnings: string[] = [];
    await renderSvg(chart.spec, warnings);
    t.deepEqual(warnings, [], chart.name);
  }
  // The logger does collect what Vega-Lite warns of.
  const warnings: string[] = [];
  await renderSvg(
    {
      data: { values: [{ x: 1 }] },
      mark: 'point',
      encoding: { x: { field: 'x', type: 'quantitative', scale: { type: 'log', zero: true } } },
    },
    warnings,
  );
  t.is(warnings.length, 1);
});

test('PNGs are drawn from the SVGs with the shipped font only: the same bytes every time, and not blank', (t) => {
  for (const chart of charts) {
    const svg = readFileSync(path.join(outDir, `${chart.name}.svg`), 'utf8');
    const png = readFileSync(path.join(outDir, `${chart.name}.png`));
    t.deepEqual(renderPng(svg), png, `${chart.name}: PNG differs between renders`);
    const image = PNG.sync.read(png);
    t.true(image.width > 100 && image.height > 100, chart.name);
    t.true(distinctColours(image) > 8, `${chart.name}: PNG is (nearly) one colour`);
  }
});

test('charts whose data is absent are skipped, and the output says which and why', (t) => {
  const loadOnly = path.join(dir, 'load-only.json');
  writeFileSync(
    loadOnly,
    JSON.stringify({ ...reports[0]!, results: reports[0]!.results.filter((r) => r.pattern === 'load'), ratios: [] }),
  );
  const out = path.join(dir, 'load-only');
  const r = runCli(['charts', loadOnly, '--out', out]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^speedup: skipped, the report has no speedup ratios over RPC copy$/m);
  t.regex(r.stdout, /^sweep: skipped, the report has no sweep rows/m);
  t.regex(r.stdout, /^churn: skipped, no result row has a slabSeries/m);
  t.regex(r.stdout, /^history: skipped, one report given; the history needs two or more$/m);
  t.deepEqual(readdirSync(out).sort(), [
    'index.html',
    'latency.png',
    'latency.svg',
    'latency.vl.json',
    'phases.png',
    'phases.svg',
    'phases.vl.json',
  ]);
  t.regex(readFileSync(path.join(out, 'index.html'), 'utf8'), /<li>sweep: the report has no sweep rows/);
});

test('unusable input exits 2 with a message', (t) => {
  let r = runCli(['charts', '--out', path.join(dir, 'none')]);
  t.is(r.status, 2);
  t.regex(r.stderr, /charts needs at least one report file.*\[ERR_INVALID_OPERANDS\]/);
  r = runCli(['charts', path.join(dir, 'missing.json'), '--out', path.join(dir, 'none')]);
  t.is(r.status, 2);
  t.regex(r.stderr, /cannot read report .*missing\.json.*\[ERR_REPORT_UNREADABLE\]/);
  t.false(existsSync(path.join(dir, 'none')));
});

test('index.html is self-contained: SVGs and specs inline, no script to run, nothing to fetch', (t) => {
  const html = readFileSync(path.join(outDir, 'index.html'), 'utf8');
  for (const chart of charts) {
    t.true(html.includes(`<section id="${chart.name}">`));
    const json = new RegExp(`<script type="application/json" id="spec-${chart.name}">([^]*?)</script>`).exec(html);
    t.truthy(json, chart.name);
    t.deepEqual(JSON.parse(json![1]!), chart.spec);
  }
  t.is((html.match(/<svg /g) ?? []).length, charts.length);
  t.notRegex(html, /<script(?![^>]*type="application\/json")/);
  t.notRegex(html, /<link|<img|<iframe|src=|url\(/);
  t.notRegex(html, /href="(https?:)?\/\//);
  t.regex(html, /Content-Security-Policy" content="default-src 'none'/);
});

function distinctColours(image: PNG): number {
  const colours = new Set<number>();
  for (let i = 0; i < image.data.length && colours.size < 1000; i += 4) colours.add(image.data.readUInt32BE(i));
  return colours.size;
}

test('index.html opens in headless Chromium with no console error and a screenshot that is not blank', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.log(`skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);
    t.pass();
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(path.join(outDir, 'index.html')).href;
    await page.goto(url, { waitUntil: 'load' });
    t.deepEqual(problems, []);
    t.deepEqual(requests, [url], 'the page fetched something besides itself');
    t.is(await page.locator('section > figure > svg').count(), charts.length);
    const shot = PNG.sync.read(await page.screenshot({ fullPage: true }));
    t.true(distinctColours(shot) > 50, 'the screenshot is (nearly) one colour');
  } finally {
    await browser.close();
  }
});
