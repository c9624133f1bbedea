import type { Report } from '../report/report.js';
import { budgetItems, headlineItems, resultCells, resultColumns } from './summary.js';

/**
 * One run's table of cells for elsewhere, as hyperfine's --export-markdown and --export-csv:
 * every column (no width to fit), the same cells the terminal shows. Markdown is a
 * GitHub-flavoured table (numbers right-aligned) with the legend, the headline speedups and
 * the budgets under it; CSV is RFC 4180 (a header line, CRLF line ends, fields quoted when
 * they hold a comma, a quote or a line end).
 */

function markdownCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

export function exportMarkdown(report: Report): string {
  const rows = report.results;
  const columns = resultColumns(rows);
  const out: string[] = [];
  out.push(
    `## jitmem bench: ${report.options.preset} preset, ${report.env.commit ? report.env.commit.slice(0, 12) + (report.env.dirty ? '+' : '') : 'no commit'}, ${report.createdAt}`,
    '',
  );
  out.push(`| ${columns.map((c) => markdownCell(c.header)).join(' | ')} |`);
  out.push(`|${columns.map((c) => (c.align === 'left' ? ':---' : '---:')).join('|')}|`);
  for (const r of rows) out.push(`| ${resultCells(columns, r).map(markdownCell).join(' | ')} |`);
  out.push('');
  for (const c of columns) if (c.legend) out.push(`- **${markdownCell(c.header)}**: ${c.legend}`);
  const headlines = headlineItems(report);
  if (headlines.length) out.push('', ...headlines.map((h) => `- ${h.significant ? '' : '~ '}${h.text}`));
  const budgets = budgetItems(report);
  if (budgets.length) out.push('', ...budgets.map((b) => `- ${b.over ? '**' : ''}${b.text}${b.over ? '**' : ''}`));
  out.push(
    '',
    `${report.env.cpuModel}, ${report.env.cpus} CPUs, Node ${report.env.node}, ${report.env.os} ${report.env.kernel}.`,
    '',
  );
  return out.join('\n');
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function exportCsv(report: Report): string {
  const columns = resultColumns(report.results);
  const lines = [
    columns.map((c) => csvField(c.header)).join(','),
    ...report.results.map((r) => resultCells(columns, r).map(csvField).join(',')),
  ];
  return lines.join('\r\n') + '\r\n';
}
