/**
 * Text tables that fit where they are read. Every column says how important it is, how it is
 * aligned and what it means; a table wider than the output first shortens the headers that
 * have a short form, then leaves out columns from the least important, and says which it left
 * out. Numbers are right-aligned, text left-aligned. A column's unit is in its header, so its
 * cells are plain numbers in that unit.
 */

export interface Column {
  readonly header: string;
  /** A shorter header, used when the table is too wide with the full one. */
  readonly short?: string;
  /** Right for numbers (the default when every cell looks like one), left for text. */
  readonly align?: 'left' | 'right';
  /** 0: always shown; columns with the highest number are left out first. */
  readonly priority: number;
  /** What the column holds, for the legend under the table (one sentence, no header). */
  readonly legend?: string;
}

export interface FittedTable {
  readonly text: string;
  readonly shown: readonly Column[];
  readonly dropped: readonly Column[];
}

/** Output width: COLUMNS when set, else the terminal's, else 100 (a log, a pipe, a CI page). */
export function outputWidth(stream?: { readonly isTTY?: boolean; readonly columns?: number }): number {
  const env = Number(process.env.COLUMNS);
  if (Number.isInteger(env) && env >= 20) return env;
  if (stream?.isTTY && stream.columns && stream.columns >= 20) return stream.columns;
  return 100;
}

const NUMERIC = /^([-+±~]?[\d.,]+(%|x| us| ms)?|[\d.]+\/[\d.]+|)$/;
const GAP = 2;

function render(
  columns: readonly Column[],
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  keep: readonly number[],
): string[] {
  const widths = keep.map((c) => Math.max(headers[c]!.length, ...rows.map((r) => (r[c] ?? '').length)));
  const right = keep.map((c) =>
    columns[c]!.align ? columns[c]!.align === 'right' : rows.length > 0 && rows.every((r) => NUMERIC.test(r[c] ?? '')),
  );
  const line = (cell: (c: number, i: number) => string) =>
    keep
      .map((c, i) => (right[i] ? cell(c, i).padStart(widths[i]!) : cell(c, i).padEnd(widths[i]!)))
      .join(' '.repeat(GAP))
      .trimEnd();
  return [
    line((c) => headers[c]!),
    line((_, i) => '-'.repeat(widths[i]!)),
    ...rows.map((r) => line((c) => r[c] ?? '')),
  ];
}

function widthOf(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, keep: readonly number[]): number {
  return keep.reduce(
    (sum, c, i) => sum + (i ? GAP : 0) + Math.max(headers[c]!.length, ...rows.map((r) => (r[c] ?? '').length)),
    0,
  );
}

/**
 * Lays out `rows` under `columns` within `width` characters: full headers if they fit, short
 * ones otherwise, then columns left out by priority (highest number first; the rightmost of
 * equal priority first) until the table fits or only priority-0 columns remain.
 */
export function fitTable(
  columns: readonly Column[],
  rows: ReadonlyArray<readonly string[]>,
  width = Infinity,
): FittedTable {
  const full = columns.map((c) => c.header);
  const short = columns.map((c) => c.short ?? c.header);
  let keep = columns.map((_, i) => i);
  let headers = full;
  if (widthOf(full, rows, keep) > width) headers = short;
  while (widthOf(headers, rows, keep) > width) {
    let drop = -1;
    for (const c of keep)
      if (columns[c]!.priority > 0 && (drop < 0 || columns[c]!.priority >= columns[drop]!.priority)) drop = c;
    if (drop < 0) break;
    keep = keep.filter((c) => c !== drop);
  }
  const lines = render(columns, headers, rows, keep);
  const shown = keep.map((c) => columns[c]!);
  const dropped = columns.filter((_, i) => !keep.includes(i));
  return { text: lines.join('\n') + '\n', shown, dropped };
}

/**
 * The legend of a fitted table: a line per shown column that has a definition (under its
 * shown header), and a line naming the columns left out. Wrapped to `width`.
 */
export function tableLegend(
  table: FittedTable,
  width = Infinity,
  hint = 'set COLUMNS wider, or export the table with --export-csv',
): string[] {
  const out: string[] = [];
  const headerLine = table.text.split('\n', 1)[0]!;
  const headerOf = (c: Column) => (headerLine.includes(c.header) ? c.header : (c.short ?? c.header));
  for (const c of table.shown) if (c.legend) out.push(...wrapText(`${headerOf(c)}: ${c.legend}`, width, '  '));
  if (table.dropped.length)
    out.push(
      ...wrapText(
        `left out to fit ${Number.isFinite(width) ? `${width} columns` : 'the width'}: ${table.dropped.map((c) => c.header).join(', ')} (${hint}).`,
        width,
        '  ',
      ),
    );
  return out;
}

/**
 * A plain aligned text table: numbers (and ±figures) right-aligned, text left-aligned; columns
 * past `width` left out from the right.
 */
export function formatTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  width = Infinity,
): string {
  return fitTable(
    header.map((h, i) => ({ header: h, priority: i === 0 ? 0 : i })),
    rows,
    width,
  ).text;
}

/**
 * Wraps prose at spaces to lines of at most `width` characters; continuation lines start with
 * `indent`. A word longer than a line (a path) stays whole on a line of its own.
 */
export function wrapText(text: string, width: number, indent = ''): string[] {
  if (!Number.isFinite(width) || text.length <= width) return [text];
  // A line's own indentation stays, and its continuation lines are indented under it.
  const lead = /^ */.exec(text)![0];
  const words = text.slice(lead.length).split(' ');
  const lines: string[] = [];
  let line = lead;
  for (const word of words) {
    const candidate = line.trim() ? `${line} ${word}` : line + word;
    if (candidate.length <= width || !line.trim()) line = candidate;
    else {
      lines.push(line);
      line = lead + indent + word;
    }
  }
  if (line.trim()) lines.push(line);
  return lines;
}
