import test from 'ava';
import { findPythonObjects } from '../workloads/python-objects.js';
import { jitmemRun } from './helpers/jitlink-run.js';

/**
 * CPython 3.11, linked from Debian's python.o and libpython3.11-pic.a by jitmem's linker, runs
 * under each mapper: it imports its standard library from disk (json, re, decimal and the C
 * modules behind them), and its exit status is jitmem's.
 */

const python = findPythonObjects();
// pyexpat and zlib are built into libpython; they call libexpat and libz, which neither executor loads by itself.
const base = ['--preload', 'libexpat.so.1', '--preload', 'libz.so.1', ...python.files];

const SCRIPT = `
import json, re, decimal
data = json.loads('{"a": [1, 2.5, "x"], "b": null}')
assert data == {"a": [1, 2.5, "x"], "b": None}, data
assert json.dumps(data, sort_keys=True) == '{"a": [1, 2.5, "x"], "b": null}'
m = re.fullmatch(r"(\\w+)@(\\w+)\\.org", "guido@python.org")
assert m and m.groups() == ("guido", "python"), m
decimal.getcontext().prec = 30
assert str(decimal.Decimal(1) / decimal.Decimal(7)) == "0.142857142857142857142857142857"
assert decimal.Decimal("1.1") + decimal.Decimal("2.2") == decimal.Decimal("3.3")
import xml.dom.minidom
assert xml.dom.minidom.parseString("<a><b>t</b></a>").documentElement.firstChild.firstChild.data == "t"
print("ok")
`;

for (const mapper of ['shared', 'rpc', 'inprocess']) {
  test(`jitmem run --mapper ${mapper} python prints (3, 11) 42 and exits 0`, async (t) => {
    const r = await jitmemRun([
      '--mapper',
      mapper,
      ...base,
      '--',
      '-c',
      'import sys; print(sys.version_info[:2], 6*7)',
    ]);
    t.is(r.stderr, '');
    t.is(r.stdout.toString(), '(3, 11) 42\n');
    t.is(r.status, 0);
  });
}

test('python under jitmem run: a script using json, re, decimal and pyexpat exits 0', async (t) => {
  const r = await jitmemRun(['--mapper', 'shared', ...base, '--', '-c', SCRIPT]);
  t.is(r.stderr, '');
  t.is(r.stdout.toString(), 'ok\n');
  t.is(r.status, 0);
});

test('python under jitmem run: raise SystemExit(3) exits 3, in process and out', async (t) => {
  for (const mapper of ['shared', 'inprocess']) {
    const r = await jitmemRun(['--mapper', mapper, ...base, '--', '-c', 'raise SystemExit(3)']);
    t.is(r.status, 3, `${mapper}: ${r.stderr}`);
    t.is(r.stdout.length, 0);
  }
});

test("python under jitmem run reads the user's stdin", async (t) => {
  const r = await jitmemRun(
    ['--mapper', 'rpc', ...base, '--', '-c', 'import sys; print(sum(int(x) for x in sys.stdin.read().split()))'],
    { input: '1 2 3 36\n' },
  );
  t.is(r.stdout.toString(), '42\n');
  t.is(r.status, 0);
});
