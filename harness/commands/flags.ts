import { parseArgs } from 'node:util';
import { JitmemError } from '../../core/errors.js';

/**
 * The flags of a command as one declarative table: each entry says how the flag is spelled,
 * what value it takes, its default, how the value is checked and converted, and its --help
 * text. `parseFlags` reads argv against the table, `helpText` prints it, and a flag or
 * command that is not in a table gets a "did you mean".
 *
 * Our own small table on top of node:util's tokenizer rather than commander or cac: the
 * commands report every mistake as a JitmemError with a stable code through the command's own
 * output streams (the tests run commands in-process), --help keeps each command's prose
 * around the generated option list, and the installed package gains no runtime dependency.
 *
 * One code and one wording per kind of mistake, in every command:
 * - ERR_UNKNOWN_COMMAND       `unknown command "bnech"; did you mean bench? ...`
 * - ERR_UNKNOWN_OPTION        `unknown option "--quik"; did you mean --quick? ...`
 * - ERR_MISSING_OPTION_VALUE  `--out needs a value ...`
 * - ERR_MISSING_OPTION        `--tool is required: flame, doctor or cpuprof`
 * - ERR_INVALID_OPTION_VALUE  `--time must be a positive integer; got "-1"`
 * - ERR_CONFLICTING_OPTIONS   `--quick and --full exclude each other`
 * - ERR_INVALID_OPERANDS      the arguments that are not flags: `compare takes two report files ...; got 1`
 */

/** A value a flag's text is checked and converted by; throws invalidValue on a bad one. */
export type ValueParser<T> = (text: string, flag: string) => T;

export interface Flag<R> {
  /**
   * `boolean`: present or not; `string`: one value; `strings`: repeatable; `variadic`: every following
   * argument up to the next flag.
   */
  readonly kind: 'boolean' | 'string' | 'strings' | 'variadic';
  /** The value's name in --help (`N`, `DIR`, `LIST`). */
  readonly value?: string;
  /** The --help text; explicit line breaks are kept and indented under the first line. */
  readonly help: string;
  readonly short?: string;
  /** The section heading --help prints before this flag (the flags that follow belong to it). */
  readonly section?: string;
  /** Converts what was given (undefined when the flag is absent) into the flag's value. */
  readonly read: (given: string[] | boolean | undefined, flag: string) => R;
}

export type FlagTable = Readonly<Record<string, Flag<unknown>>>;
export type FlagValues<T extends FlagTable> = { -readonly [K in keyof T]: T[K] extends Flag<infer R> ? R : never };

export interface CommandSpec<T extends FlagTable> {
  /** The command's name after `jitmem`. */
  readonly name: string;
  /** The usage lines, without the leading `usage: `. */
  readonly usage: string;
  /** Prose between the usage and the options. */
  readonly about?: string;
  /** The heading of the option list (default `options:`; empty when the first flag opens a section). */
  readonly optionsHeading?: string;
  readonly flags: T;
  /** What follows the option list (exit statuses, notes). */
  readonly footer?: string;
  /** Whether the command takes arguments that are not flags (files, names). */
  readonly operands: boolean;
  /** Whether `--` ends the command's flags, the rest going untouched to `afterTerminator`. */
  readonly terminator?: boolean;
  /** Said after an unknown option when no flag is close to it (where the flags of something else go). */
  readonly unknownOptionHint?: string;
}

export interface ParsedFlags<T extends FlagTable> {
  readonly values: FlagValues<T>;
  readonly operands: string[];
  /** The arguments after `--` (only when the spec takes a terminator). */
  readonly afterTerminator: string[];
  readonly help: boolean;
}

const HELP_FLAG: Flag<boolean> = {
  kind: 'boolean',
  short: 'h',
  help: 'show this help',
  read: (given) => given === true,
};

export function invalidValue(flag: string, expected: string, text: string): JitmemError {
  return new JitmemError('ERR_INVALID_OPTION_VALUE', `${flag} must be ${expected}; got ${JSON.stringify(text)}`, {
    option: flag,
    value: text,
  });
}

export function conflictingOptions(message: string, options: readonly string[]): JitmemError {
  return new JitmemError('ERR_CONFLICTING_OPTIONS', message, { options });
}

/** `expected; got N ("a" "b")`, then why, when given. */
export function invalidOperands(expected: string, operands: readonly string[], why?: string): JitmemError {
  const listed = operands.length ? ` (${operands.map((p) => JSON.stringify(p)).join(' ')})` : '';
  return new JitmemError(
    'ERR_INVALID_OPERANDS',
    `${expected}; got ${operands.length}${listed}${why ? `: ${why}` : ''}`,
    { operands },
  );
}

/** Optimal string alignment distance: edits, with a swap of two neighbours counted as one. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, at(i - 2, j - 2) + 1);
      rows[i]![j] = d;
    }
  }
  return at(a.length, b.length);
}

/** The known name closest to `name`, when it is close enough to be a slip of the fingers. */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const allowed = Math.max(1, Math.min(2, Math.floor((best?.length ?? 0) / 3)));
  return bestDistance <= allowed || (best !== undefined && best.startsWith(name) && name.length >= 3)
    ? best
    : undefined;
}

function unknownOption(command: string, raw: string, names: readonly string[], otherwise = ''): JitmemError {
  const bare = raw.replace(/^-+/, '');
  const guess = closestName(bare, names);
  const hint = guess ? `; did you mean --${guess}?` : otherwise ? `; ${otherwise}` : '';
  return new JitmemError(
    'ERR_UNKNOWN_OPTION',
    `unknown option ${JSON.stringify(raw)} for jitmem ${command}${hint} (see 'jitmem ${command} --help')`,
    {
      option: raw,
      ...(guess ? { suggestion: `--${guess}` } : {}),
    },
  );
}

/** Pulls each variadic flag and the arguments after it (up to the next `--flag`) out of argv. */
function splitVariadic(argv: readonly string[], table: FlagTable): { rest: string[]; taken: Map<string, string[]> } {
  const taken = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (name === undefined || table[name]?.kind !== 'variadic') {
      rest.push(arg);
      continue;
    }
    const values = taken.get(name) ?? [];
    while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) values.push(argv[++i]!);
    taken.set(name, values);
  }
  return { rest, taken };
}

/** Reads argv against a command's flag table. */
export function parseFlags<T extends FlagTable>(spec: CommandSpec<T>, argv: readonly string[]): ParsedFlags<T> {
  const table: FlagTable = { ...spec.flags, help: HELP_FLAG };
  const names = Object.keys(table);
  const byShort = new Map(Object.entries(table).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])));
  const { rest, taken } = splitVariadic(argv, table);
  const options = Object.fromEntries(
    Object.entries(table).map(([name, f]) => [
      name,
      {
        type: f.kind === 'boolean' ? ('boolean' as const) : ('string' as const),
        ...(f.short ? { short: f.short } : {}),
      },
    ]),
  );
  const { tokens } = parseArgs({ args: rest, options, strict: false, allowPositionals: true, tokens: true });
  const given = new Map<string, string[] | boolean>(taken);
  const operands: string[] = [];
  const afterTerminator: string[] = [];
  let terminated = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      terminated = spec.terminator === true;
      continue;
    }
    if (token.kind === 'positional') {
      (terminated ? afterTerminator : operands).push(token.value);
      continue;
    }
    // parseArgs names a declared short flag by its long name; an undeclared one by its letter.
    const name = token.rawName.startsWith('--') || byShort.has(token.rawName.slice(1)) ? token.name : undefined;
    const flag = name === undefined ? undefined : table[name];
    if (name === undefined || flag === undefined)
      throw unknownOption(spec.name, token.rawName, names, spec.unknownOptionHint);
    const raw = `--${name}`;
    if (flag.kind === 'boolean') {
      if (token.value !== undefined)
        throw new JitmemError('ERR_INVALID_OPTION_VALUE', `${raw} takes no value; got ${JSON.stringify(token.value)}`, {
          option: raw,
        });
      given.set(name, true);
      continue;
    }
    if (flag.kind === 'variadic' && token.value !== undefined) {
      // `--objects=a.o b.o`: the inline value is the first of the list.
      const before = given.get(name);
      given.set(name, [token.value, ...(Array.isArray(before) ? before : [])]);
      continue;
    }
    // `--out --json`: the next flag is not --out's value (a negative number such as -1 is).
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      throw new JitmemError('ERR_MISSING_OPTION_VALUE', `${raw} needs a value (see 'jitmem ${spec.name} --help')`, {
        option: raw,
      });
    }
    const before = given.get(name);
    given.set(name, flag.kind === 'strings' && Array.isArray(before) ? [...before, token.value] : [token.value]);
  }
  if (!spec.operands && operands.length > 0)
    throw invalidOperands(`jitmem ${spec.name} takes no arguments other than flags`, operands);
  const help = given.get('help') === true;
  const values = {} as Record<string, unknown>;
  // With --help nothing else is checked: the help is what was asked for.
  if (!help)
    for (const [name, flag] of Object.entries(spec.flags)) values[name] = flag.read(given.get(name), `--${name}`);
  return { values: values as FlagValues<T>, operands, afterTerminator, help };
}

function flagLabel(name: string, flag: Flag<unknown>): string {
  const short = flag.short ? `-${flag.short}, ` : '';
  const value = flag.value ? ` ${flag.value}${flag.kind === 'variadic' ? '...' : ''}` : '';
  return `${short}--${name}${value}`;
}

/** The option list of a table: `  --name VALUE   help`, continuation lines aligned under the help. */
export function formatFlags(table: FlagTable): string {
  const entries = Object.entries({ ...table, help: HELP_FLAG });
  const width = Math.min(28, Math.max(...entries.map(([n, f]) => flagLabel(n, f).length)) + 2);
  const lines: string[] = [];
  for (const [name, flag] of entries) {
    if (flag.section !== undefined) lines.push('', ...flag.section.split('\n'));
    const label = flagLabel(name, flag);
    const [first = '', ...more] = flag.help.split('\n');
    if (label.length + 2 > width) lines.push(`  ${label}`, `  ${' '.repeat(width)}${first}`);
    else lines.push(`  ${label.padEnd(width)}${first}`);
    for (const line of more) lines.push(`  ${' '.repeat(width)}${line}`);
  }
  return lines.join('\n').replace(/^\n/, '');
}

/** A command's whole --help: usage, prose, the option list from its table, and the footer. */
export function helpText<T extends FlagTable>(spec: CommandSpec<T>): string {
  const parts = [`usage: ${spec.usage}`];
  if (spec.about) parts.push(spec.about);
  const heading = spec.optionsHeading ?? 'options:';
  parts.push(heading ? `${heading}\n${formatFlags(spec.flags)}` : formatFlags(spec.flags));
  if (spec.footer) parts.push(spec.footer);
  return parts.join('\n\n') + '\n';
}

/* Builders of table entries. Each returns the flag's value type: absent flags give their default or undefined. */

interface FlagText {
  readonly help: string;
  readonly value?: string;
  readonly section?: string;
}

const single = (given: string[] | boolean | undefined): string | undefined =>
  Array.isArray(given) ? given[given.length - 1] : undefined;

export function booleanFlag(help: string, extra: Omit<FlagText, 'help' | 'value'> = {}): Flag<boolean> {
  return { kind: 'boolean', help, ...extra, read: (given) => given === true };
}

export function valueFlag<T>(text: FlagText, parse: ValueParser<T>): Flag<T | undefined>;
export function valueFlag<T>(text: FlagText, parse: ValueParser<T>, fallback: T): Flag<T>;
export function valueFlag<T>(text: FlagText, parse: ValueParser<T>, fallback?: T): Flag<T | undefined> {
  return {
    kind: 'string',
    ...text,
    read: (given, flag) => {
      const value = single(given);
      return value === undefined ? fallback : parse(value, flag);
    },
  };
}

/** A flag that must be given; `what` says what it takes. */
export function requiredFlag<T>(text: FlagText, parse: ValueParser<T>, what: string): Flag<T> {
  return {
    kind: 'string',
    ...text,
    read: (given, flag) => {
      const value = single(given);
      if (value === undefined)
        throw new JitmemError('ERR_MISSING_OPTION', `${flag} is required: ${what}`, { option: flag });
      return parse(value, flag);
    },
  };
}

/** A repeatable flag: every value, in order (none: an empty list). */
export function repeatedFlag<T>(text: FlagText, parse: ValueParser<T>): Flag<T[]> {
  return {
    kind: 'strings',
    ...text,
    read: (given, flag) => (Array.isArray(given) ? given.map((v) => parse(v, flag)) : []),
  };
}

/** A flag taking every argument after it up to the next flag (`--objects a.o b.a`); undefined when absent. */
export function variadicFlag(text: FlagText): Flag<string[] | undefined> {
  return {
    kind: 'variadic',
    ...text,
    read: (given, flag) => {
      if (!Array.isArray(given)) return undefined;
      if (given.length === 0)
        throw new JitmemError('ERR_MISSING_OPTION_VALUE', `${flag} needs at least one value`, { option: flag });
      return given;
    },
  };
}

/* Value parsers shared by the commands. */

export const text: ValueParser<string> = (value) => value;

export const nonEmptyText: ValueParser<string> = (value, flag) => {
  if (value === '') throw invalidValue(flag, 'a non-empty value', value);
  return value;
};

/** An integer of at least `min` (a positive integer by default). */
export function integerAtLeast(min = 1): ValueParser<number> {
  return (value, flag) => {
    const n = /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min)
      throw invalidValue(flag, min === 1 ? 'a positive integer' : `an integer >= ${min}`, value);
    return n;
  };
}

export const positiveInteger = integerAtLeast(1);

export function oneOf<T extends string>(choices: readonly T[]): ValueParser<T> {
  return (value, flag) => {
    if (!choices.includes(value as T)) throw invalidValue(flag, `one of ${choices.join(', ')}`, value);
    return value as T;
  };
}

/** A comma-separated list whose every item is one of `choices`. */
export function listOf<T extends string>(choices: readonly T[]): ValueParser<T[]> {
  return (value, flag) => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (items.length === 0) throw invalidValue(flag, `a comma-separated list of ${choices.join(', ')}`, value);
    for (const item of items)
      if (!choices.includes(item as T))
        throw invalidValue(flag, `a comma-separated list of ${choices.join(', ')}`, value);
    return items as T[];
  };
}

/** Writes a command's --help to stdout; the exit status of asking for it. */
export function printHelp<T extends FlagTable>(
  spec: CommandSpec<T>,
  io: { readonly stdout: NodeJS.WritableStream },
): number {
  io.stdout.write(helpText(spec));
  return 0;
}
