import { flagCommand } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { booleanFlag, invalidValue, nonEmptyText, valueFlag, variadicFlag } from './flags.js';
import { pageSize as systemPageSize } from '../../native/index.js';
import { summarizeWorkload, type WorkloadSummary } from '../../workloads/workload-summary.js';
import {
  BUILTIN_WORKLOADS,
  OBJECTS_WORKLOAD,
  loadWorkload,
  type WorkloadOptions,
} from '../../workloads/workload-sources.js';

/** A page size as --page-size takes it: a power of two. */
function pageSizeValue(value: string, flag: string): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || (n & (n - 1)) !== 0 || n > 2 ** 30)
    throw invalidValue(flag, 'a power of two between 1 and 2^30', value);
  return n;
}

const SPEC = {
  name: 'workloads',
  usage: `jitmem workloads [NAME...] [--json] [--python-dir DIR] [--page-size N]
       jitmem workloads --objects FILE... [--json] [--page-size N]`,
  about: `Lists workloads: how many link graphs each has (one per object or archive member with
allocatable sections), the bytes of their sections by AllocGroup (content and zero-fill, as
the ELF files give them), and the pages their allocations take once laid out.

workloads:
${Object.entries(BUILTIN_WORKLOADS)
  .map(([name, what]) => `  ${name.padEnd(8)}${what}`)
  .join('\n')}
  ${OBJECTS_WORKLOAD.padEnd(8)}the object files and archives given with --objects`,
  flags: {
    objects: variadicFlag({ value: 'FILE', help: 'read these objects and archives as the workload "objects"' }),
    json: booleanFlag('print a JSON array of {name, graphs, content, zeroFill, pages}'),
    'python-dir': valueFlag(
      {
        value: 'DIR',
        help: `CPython's config directory (holding python.o and libpython3.X-pic.a);
default: $JITMEM_PYTHON_CONFIG_DIR, python3-config, then Debian's paths`,
      },
      nonEmptyText,
    ),
    'page-size': valueFlag(
      { value: 'N', help: "count pages of N bytes (default: this machine's page size)" },
      pageSizeValue,
    ),
  },
  operands: true,
};

const number = new Intl.NumberFormat('en-US');

function table(summaries: readonly WorkloadSummary[]): string {
  const contentGroups = [...new Set(summaries.flatMap((s) => Object.keys(s.content)))];
  const zeroGroups = [...new Set(summaries.flatMap((s) => Object.keys(s.zeroFill)))];
  const header = [
    'workload',
    'graphs',
    ...contentGroups.map((g) => `${g} bytes`),
    ...zeroGroups.map((g) => `${g} zero-fill`),
    'pages',
  ];
  const rows = summaries.map((s) => [
    s.name,
    number.format(s.graphs),
    ...contentGroups.map((g) => number.format(s.content[g] ?? 0)),
    ...zeroGroups.map((g) => number.format(s.zeroFill[g] ?? 0)),
    number.format(s.pages),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  // Names to the left, numbers to the right, so that digits line up.
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export const workloadsCommand = flagCommand(SPEC, async ({ values, operands }, io) => {
  const { objects } = values;
  if (objects !== undefined && operands.length > 0) {
    throw new JitmemError(
      'ERR_CONFLICTING_OPTIONS',
      `--objects lists its own workload; drop the names ${operands.join(', ')} or the --objects flag`,
      {
        options: ['--objects'],
        names: operands,
      },
    );
  }
  const pageSize = values['page-size'] ?? systemPageSize();
  const options: WorkloadOptions = { pythonDir: values['python-dir'], objects };
  const explicit = objects !== undefined || operands.length > 0;
  const names =
    objects !== undefined ? [OBJECTS_WORKLOAD] : operands.length > 0 ? operands : Object.keys(BUILTIN_WORKLOADS);

  const summaries: WorkloadSummary[] = [];
  const unavailable: JitmemError[] = [];
  for (const name of names) {
    try {
      const workload = loadWorkload(name, options);
      summaries.push(summarizeWorkload(workload.name, workload.graphs, pageSize));
    } catch (err) {
      // A workload the user named must be there; when listing them all, one that cannot be
      // found is reported (and fails the command) without hiding the others.
      if (explicit || !(err instanceof JitmemError)) throw err;
      unavailable.push(err);
    }
  }
  io.stdout.write(values.json ? JSON.stringify(summaries, null, 2) + '\n' : table(summaries));
  for (const err of unavailable) io.stderr.write(`jitmem workloads: ${err.message} [${err.code}]\n`);
  return unavailable.length > 0 ? 1 : 0;
});
