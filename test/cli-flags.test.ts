import test from 'ava';
import { JitmemError } from '../core/errors.js';
import {
  booleanFlag,
  closestName,
  helpText,
  oneOf,
  parseFlags,
  positiveInteger,
  repeatedFlag,
  requiredFlag,
  text,
  valueFlag,
  variadicFlag,
} from '../harness/commands/flags.js';
import { runCli } from './helpers/run-cli.js';

/** The commands' flag tables: one parser, one wording and one error code per kind of mistake. */

const SPEC = {
  name: 'demo',
  usage: 'jitmem demo [options] FILE...',
  about: 'A command for the tests.',
  flags: {
    quick: booleanFlag('fewer iterations', { section: 'presets:' }),
    time: valueFlag({ value: 'MS', help: 'sampling time\nper cell' }, positiveInteger, 700),
    mode: valueFlag({ value: 'M', help: 'a or b' }, oneOf(['a', 'b'] as const)),
    add: repeatedFlag({ value: 'F', help: 'repeatable' }, text),
    objects: variadicFlag({ value: 'FILE', help: 'up to the next flag' }),
  },
  operands: true,
  terminator: true,
  footer: 'exit status: 0',
};

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return err instanceof JitmemError ? err.code : `not a JitmemError: ${String(err)}`;
  }
};

test('parseFlags gives typed values with their defaults, operands, and what follows --', (t) => {
  const r = parseFlags(SPEC, ['--time', '50', 'a.o', '--add=x', '--add', 'y', '--objects', 'p.o', 'q.a', '--quick', 'b.o', '--', '--mode', 'z']);
  t.deepEqual(r.values, { quick: true, time: 50, mode: undefined, add: ['x', 'y'], objects: ['p.o', 'q.a'] });
  t.deepEqual(r.operands, ['a.o', 'b.o']);
  t.deepEqual(r.afterTerminator, ['--mode', 'z']);
  t.false(r.help);
  t.deepEqual(parseFlags(SPEC, []).values, { quick: false, time: 700, mode: undefined, add: [], objects: undefined });
  // A negative number is a value (and a bad one here), not a flag.
  t.is(codeOf(() => parseFlags(SPEC, ['--time', '-1'])), 'ERR_INVALID_OPTION_VALUE');
  // --help is answered before any value is checked.
  t.true(parseFlags(SPEC, ['--time', 'soon', '-h']).help);
});

test('each kind of mistake has its own code, and a slip of the fingers gets a "did you mean"', (t) => {
  t.is(codeOf(() => parseFlags(SPEC, ['--quik'])), 'ERR_UNKNOWN_OPTION');
  t.throws(() => parseFlags(SPEC, ['--quik']), { message: /^unknown option "--quik" for jitmem demo; did you mean --quick\? \(see 'jitmem demo --help'\)$/ });
  t.throws(() => parseFlags(SPEC, ['--tiem', '5']), { message: /did you mean --time\?/ });
  t.throws(() => parseFlags(SPEC, ['--frobnicate']), { message: /^unknown option "--frobnicate" for jitmem demo \(see/ });
  t.is(codeOf(() => parseFlags(SPEC, ['--time'])), 'ERR_MISSING_OPTION_VALUE');
  t.is(codeOf(() => parseFlags(SPEC, ['--mode', '--quick'])), 'ERR_MISSING_OPTION_VALUE');
  t.is(codeOf(() => parseFlags(SPEC, ['--objects'])), 'ERR_MISSING_OPTION_VALUE');
  t.throws(() => parseFlags(SPEC, ['--mode', 'c']), { code: 'ERR_INVALID_OPTION_VALUE', message: '--mode must be one of a, b; got "c"' });
  t.throws(() => parseFlags(SPEC, ['--quick=yes']), { code: 'ERR_INVALID_OPTION_VALUE', message: '--quick takes no value; got "yes"' });
  const noOperands = { ...SPEC, operands: false };
  t.throws(() => parseFlags(noOperands, ['x']), { code: 'ERR_INVALID_OPERANDS', message: 'jitmem demo takes no arguments other than flags; got 1 ("x")' });
  const required = { ...SPEC, flags: { tool: requiredFlag({ value: 'T', help: 't' }, text, 'flame or cpuprof') } };
  t.throws(() => parseFlags(required, []), { code: 'ERR_MISSING_OPTION', message: '--tool is required: flame or cpuprof' });
});

test('closestName takes one or two edits (a swap is one) and nothing further', (t) => {
  const commands = ['bench', 'bench-alloc', 'compare', 'history', 'run'];
  t.is(closestName('bnech', commands), 'bench');
  t.is(closestName('comapre', commands), 'compare');
  t.is(closestName('histroy', commands), 'history');
  t.is(closestName('rn', commands), 'run');
  t.is(closestName('frobnicate', commands), undefined);
  t.is(closestName('quik', ['quick', 'full']), 'quick');
});

test('--help is generated from the table: every flag, its value, sections, continuation lines aligned', (t) => {
  const help = helpText(SPEC);
  t.is(
    help,
    [
      'usage: jitmem demo [options] FILE...',
      '',
      'A command for the tests.',
      '',
      'options:',
      'presets:',
      '  --quick            fewer iterations',
      '  --time MS          sampling time',
      '                     per cell',
      '  --mode M           a or b',
      '  --add F            repeatable',
      '  --objects FILE...  up to the next flag',
      '  -h, --help         show this help',
      '',
      'exit status: 0',
      '',
    ].join('\n'),
  );
});

test('jitmem answers a misspelt command or flag with the closest one, one line, exit 2', (t) => {
  const command = runCli(['bnech']);
  t.is(command.status, 2);
  t.is(command.stderr, "jitmem: unknown command \"bnech\"; did you mean bench? (see 'jitmem --help') [ERR_UNKNOWN_COMMAND]\n");
  const flag = runCli(['bench', '--quik']);
  t.is(flag.status, 2);
  t.is(flag.stderr, "jitmem bench: unknown option \"--quik\" for jitmem bench; did you mean --quick? (see 'jitmem bench --help') [ERR_UNKNOWN_OPTION]\n");
  // The same mistake reads the same in every command.
  for (const name of ['bench-alloc', 'bench-link', 'bench-remote', 'charts', 'compare', 'history', 'profile', 'run', 'workloads']) {
    const r = runCli([name, '--jsno']);
    t.is(r.status, 2, name);
    t.regex(r.stderr, new RegExp(`^jitmem ${name}: unknown option "--jsno" for jitmem ${name}.*\\[ERR_UNKNOWN_OPTION\\]\\n$`), name);
  }
});
