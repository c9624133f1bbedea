import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeCharts } from '../harness/charts/write-charts.js';
import type { Report } from '../harness/report/report.js';
import { defaultShapedReport } from './helpers/default-report.js';

/**
 * The page `jitmem bench` and `jitmem charts` write, opened in headless Chromium at a laptop's
 * 1366×768: no horizontal overflow, no label cut or wider than its box, no console message,
 * for reports with LLVM's rows and without, and for two reports (history and comparison).
 * Screenshots of the page and of every chart go to reports/out/screenshots/ to be looked at.
 */

const CHROMIUM = '/usr/bin/chromium';
const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const screenshots = path.join(repoDir, 'reports', 'out', 'screenshots');

const cases: Array<{ name: string; reports: () => Report[] }> = [
  { name: 'llvm', reports: () => [defaultShapedReport({ llvm: true })] },
  { name: 'no-llvm', reports: () => [defaultShapedReport({ llvm: false })] },
  {
    name: 'two-reports',
    reports: () => [
      defaultShapedReport({ llvm: false, preset: 'quick', commit: 'ba06df918faf1b2c3d4e5f60718293a4b5c6d7e8', dirty: true, createdAt: '2026-11-20T09:00:00.000Z', seed: 3 }),
      defaultShapedReport({ llvm: true, scale: 1.1 }),
    ],
  },
];


/**
 * Runs in the page (a string: this project compiles without the DOM's types). Lists boxes
 * whose content is wider than they are, chart text cut with an ellipsis or drawn outside its
 * chart, and charts shrunk to fit (smaller than 85% of their drawn width: text too small).
 */
const MEASURE_PAGE = `(() => {
  const overflow = [], truncated = [], shrunk = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) overflow.push('the page is ' + root.scrollWidth + 'px wide in a ' + root.clientWidth + 'px window');
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (typeof el.className === 'string' && el.className ? '.' + el.className : '') + ' "' + (el.textContent || '').slice(0, 60) + '"';
  for (const el of document.body.querySelectorAll('*')) {
    if (el instanceof SVGElement || el.tagName === 'SCRIPT') continue;
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) overflow.push(describe(el) + ': content ' + el.scrollWidth + 'px in a ' + el.clientWidth + 'px box');
  }
  for (const svg of document.querySelectorAll('figure > svg')) {
    const id = svg.closest('section').id;
    const box = svg.getBoundingClientRect();
    const drawn = svg.width.baseVal.value;
    if (box.width < drawn * 0.85) shrunk.push(id + ': drawn ' + drawn + 'px wide, shown at ' + Math.round(box.width) + 'px');
    for (const text of svg.querySelectorAll('text')) {
      const content = text.textContent || '';
      if (content.endsWith('\u2026')) truncated.push(id + ': "' + content + '" is cut');
      const r = text.getBoundingClientRect();
      if (content && (r.left < box.left - 1 || r.right > box.right + 1)) truncated.push(id + ': "' + content + '" spills out of its chart');
    }
  }
  return { overflow, truncated, shrunk, svgs: document.querySelectorAll('figure > svg').length, titles: document.querySelectorAll('figure > svg title').length };
})()`;

interface PageProblems {
  readonly overflow: string[];
  readonly truncated: string[];
  readonly shrunk: string[];
  readonly svgs: number;
  readonly titles: number;
}

for (const c of cases) {
  test.serial(`the page (${c.name}) fits 1366×768 in headless Chromium: no overflow, no truncated label, no console message`, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.log(`skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);
      t.pass();
      return;
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jitmem-page-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const reports = c.reports();
    const written = await writeCharts(reports, path.join(dir, 'charts'));
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(path.join(os.tmpdir(), 'jitmem-chromium-'));
    t.teardown(() => rmSync(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1366, height: 768 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await context.newPage();
      const messages: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => messages.push(`console ${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => messages.push(`page error: ${e.message}`));
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(written.index).href;
      await page.goto(url, { waitUntil: 'load' });
      const problems = (await page.evaluate(MEASURE_PAGE)) as PageProblems;
      t.deepEqual(messages, []);
      t.deepEqual(requests, [url], 'the page fetched something besides itself');
      t.deepEqual(problems.overflow, []);
      t.deepEqual(problems.truncated, []);
      t.deepEqual(problems.shrunk, []);
      t.is(problems.svgs, written.charts.length);
      t.true(problems.titles > 50, 'marks carry <title> tooltips');
      // What the page must say at the top, from the report itself.
      const summary = await page.locator('#summary').innerText();
      t.regex(summary, /Budgets/);
      t.regex(summary, /python\/load \(first-fit\)/);
      t.is(/with LLVM's executor/.test(summary), reports.at(-1)!.results.some((r) => r.executor === 'llvm'));
      if (reports.length === 2) t.regex(await page.locator('#compare').innerText(), /jitmem compare .*: (no significant regression|\d+ significant regression|INCONCLUSIVE: \d+ rows? too noisy to judge)/);
      // Screenshots, to be looked at: the whole page and each chart.
      mkdirSync(screenshots, { recursive: true });
      await page.screenshot({ path: path.join(screenshots, `${c.name}-page.png`), fullPage: true });
      await page.screenshot({ path: path.join(screenshots, `${c.name}-first-screen.png`) });
      for (const id of ['summary', ...(reports.length === 2 ? ['compare'] : [])]) await page.locator(`section#${id}`).screenshot({ path: path.join(screenshots, `${c.name}-${id}.png`) });
      for (const chart of written.charts) await page.locator(`section#${chart.name}`).screenshot({ path: path.join(screenshots, `${c.name}-${chart.name}.png`) });
    } finally {
      await context.close();
    }
  });
}
