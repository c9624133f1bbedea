import type { Command, CommandIO } from './command.js';
import { JitmemError } from '../../core/errors.js';
import { checkAlignment } from '../../core/checks.js';
import { pageSize as systemPageSize } from '../../native/index.js';
import { summarizeWorkload, type WorkloadSummary } from '../../workloads/workload-summary.js';
import { BUILTIN_WORKLOADS, OBJECTS_WORKLOAD, loadWorkload, type WorkloadOptions } from '../../workloads/workload-sources.js';

const HELP = `usage: jitmem workloads [NAME...] [--json] [--python-dir DIR] [--page-size N]
       jitmem workloads --objects FILE... [--json] [--page-size N]

Lists workloads: how many link graphs each has (one per object or archive member with
allocatable sections), the bytes of their sections by AllocGroup (content and zero-fill, as
the ELF files give them), and the pages their allocations take once laid out.

workloads:
${Object.entries(BUILTIN_WORKLOADS)
  .map(([name, what]) => `  ${name.padEnd(8)}${what}`)
  .join('\n')}
  ${OBJECTS_WORKLOAD.padEnd(8)}the object files and archives given with --objects

options:
  --objects FILE...  read these objects and archives as the workload "objects"
  --json             print a JSON array of {name, graphs, content, zeroFill, pages}
  --python-dir DIR   CPython's config directory (holding python.o and libpython3.X-pic.a);
                     default: $JITMEM_PYTHON_CONFIG_DIR, python3-config, then Debian's paths
  --page-size N      count pages of N bytes (default: this machine's page size)
  -h, --help         show this help
`;

interface WorkloadsArgs {
  names: string[];
  objects: string[] | undefined;
  json: boolean;
  pythonDir: string | undefined;
  pageSize: number | undefined;
}

function parseArgs(argv: string[]): WorkloadsArgs | 'help' {
  const args: WorkloadsArgs = { names: [], objects: undefined, json: false, pythonDir: undefined, pageSize: undefined };
  const value = (flag: string, i: number): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new JitmemError('ERR_MISSING_OPTION_VALUE', `${flag} needs a value`, { option: flag });
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--json':
        args.json = true;
        break;
      case '--python-dir':
        args.pythonDir = inline ?? value(flag, ++i);
        break;
      case '--page-size': {
        const text = inline ?? value(flag, ++i);
        const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
        args.pageSize = checkAlignment('--page-size', n);
        break;
      }
      case '--objects': {
        args.objects ??= [];
        if (inline !== undefined) args.objects.push(inline);
        while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) args.objects.push(argv[++i]!);
        break;
      }
      default:
        if (arg.startsWith('-')) throw new JitmemError('ERR_UNKNOWN_OPTION', `unknown option ${JSON.stringify(arg)}; see 'jitmem workloads --help'`, { option: arg });
        args.names.push(arg);
    }
  }
  if (args.objects !== undefined && args.objects.length === 0) {
    throw new JitmemError('ERR_MISSING_OPTION_VALUE', '--objects needs at least one object file or archive', { option: '--objects' });
  }
  if (args.objects !== undefined && args.names.length > 0) {
    throw new JitmemError('ERR_INVALID_ARGUMENT', `--objects lists its own workload; drop the names ${args.names.join(', ')} or the --objects flag`, { names: args.names });
  }
  return args;
}

const number = new Intl.NumberFormat('en-US');

function table(summaries: readonly WorkloadSummary[]): string {
  const contentGroups = [...new Set(summaries.flatMap((s) => Object.keys(s.content)))];
  const zeroGroups = [...new Set(summaries.flatMap((s) => Object.keys(s.zeroFill)))];
  const header = ['workload', 'graphs', ...contentGroups.map((g) => `${g} bytes`), ...zeroGroups.map((g) => `${g} zero-fill`), 'pages'];
  const rows = summaries.map((s) => [
    s.name,
    number.format(s.graphs),
    ...contentGroups.map((g) => number.format(s.content[g] ?? 0)),
    ...zeroGroups.map((g) => number.format(s.zeroFill[g] ?? 0)),
    number.format(s.pages),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  // Names to the left, numbers to the right, so that digits line up.
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export const workloadsCommand: Command = {
  name: 'workloads',
  summary: 'list workloads: link graphs, bytes by AllocGroup, pages',
  async run(argv: string[], io: CommandIO): Promise<number> {
    const args = parseArgs(argv);
    if (args === 'help') {
      io.stdout.write(HELP);
      return 0;
    }
    const pageSize = args.pageSize ?? systemPageSize();
    const options: WorkloadOptions = { pythonDir: args.pythonDir, objects: args.objects };
    const explicit = args.objects !== undefined || args.names.length > 0;
    const names = args.objects !== undefined ? [OBJECTS_WORKLOAD] : args.names.length > 0 ? args.names : Object.keys(BUILTIN_WORKLOADS);

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
    io.stdout.write(args.json ? JSON.stringify(summaries, null, 2) + '\n' : table(summaries));
    for (const err of unavailable) io.stderr.write(`jitmem workloads: ${err.message} [${err.code}]\n`);
    return unavailable.length > 0 ? 1 : 0;
  },
};
