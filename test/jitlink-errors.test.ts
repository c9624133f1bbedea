import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';
import { SharedMemoryMapper } from '../mappers/shared-memory-mapper.js';
import { RpcCopyMapper } from '../mappers/rpc-copy-mapper.js';
import { readElfObject } from '../objects/elf-object.js';
import { linkObjects } from '../jitlink/link.js';
import { ExecutorSession } from '../session/executor-session.js';
import { runProgram } from '../loader/run-program.js';
import { llvmInstalled, shmObjects, stdoutAtLeast } from './helpers/executor-process.js';
import { compile, tempDir } from './helpers/jitlink-run.js';
import { openExecutorTarget } from './helpers/executor-target.js';

/**
 * Everything the linker refuses gets a typed error naming what and where, before the program
 * touches the executor; the same executor session then links and runs the next program.
 */

const HELLO = `
#include <stdio.h>
static int runs;
int main(int argc, char **argv) { printf("hello from %s, run %d\\n", argv[argc - 1], ++runs); return 0; }
`;

/** Patches the type of relocation `index` of section `name` in an object file. */
function patchRelocationType(file: string, sectionName: string, index: number, type: number): void {
  const bytes = readFileSync(file);
  const elf = readElfObject(bytes, { file, base: 0 });
  const rela = elf.sections.find((s) => s.name === sectionName)!;
  bytes.writeUInt32LE(type, rela.offset + index * 24 + 8);
  writeFileSync(file, bytes);
}

type Refusal = [what: string, inputs: string[], code: string, ...patterns: RegExp[]];

/**
 * The inputs the linker must refuse, compiled into `dir`: each with what it is, the error code and
 * what the message must name.
 */
function refusedInputs(dir: string, hello: string): Refusal[] {
  const refusals: Refusal[] = [];

  const tls = compile(dir, 'tls.c', '__thread int counter = 1; int main(void) { return counter; }', [
    '-O2',
    '-fPIC',
    '-mtls-dialect=gnu2',
  ]);
  refusals.push([
    'TLS descriptors',
    [tls],
    'ERR_LINK_TLS_UNSUPPORTED',
    /R_X86_64_GOTPC32_TLSDESC/,
    /counter/,
    /tls\.o/,
    /-mtls-dialect=gnu\b/,
  ]);

  const irelative = compile(dir, 'irelative.c', HELLO, ['-O2', '-fPIC']);
  patchRelocationType(irelative, '.rela.text.startup', 0, 37);
  refusals.push([
    'a dynamic relocation type',
    [irelative],
    'ERR_LINK_UNSUPPORTED_RELOCATION',
    /R_X86_64_IRELATIVE at \.text\.startup\+0x[0-9a-f]+ in .*irelative\.o/,
  ]);

  const unknown = compile(dir, 'unknown.c', HELLO, ['-O2', '-fPIC']);
  patchRelocationType(unknown, '.rela.text.startup', 0, 61);
  refusals.push([
    'an unknown relocation type',
    [unknown],
    'ERR_LINK_UNSUPPORTED_RELOCATION',
    /relocation type 61 at \.text\.startup\+0x[0-9a-f]+ in .*unknown\.o/,
  ]);

  const missing = compile(
    dir,
    'missing.c',
    'void jitmem_no_such_function(void); int main(void) { jitmem_no_such_function(); return 0; }',
    ['-O2', '-fPIC'],
  );
  refusals.push([
    'a missing symbol',
    [missing],
    'ERR_LINK_UNDEFINED_SYMBOL',
    /"jitmem_no_such_function" \(referenced by .*missing\.o\)/,
  ]);

  const dupA = compile(dir, 'dup-a.c', 'int twice(void) { return 1; } int main(void) { return twice(); }', [
    '-O2',
    '-fPIC',
  ]);
  const dupB = compile(dir, 'dup-b.c', 'int twice(void) { return 2; }', ['-O2', '-fPIC']);
  refusals.push([
    'a duplicate strong definition',
    [dupA, dupB],
    'ERR_LINK_DUPLICATE_SYMBOL',
    /"twice"/,
    /dup-a\.o/,
    /dup-b\.o/,
  ]);

  // A one-byte PC-relative reference from data to code: they lie pages apart.
  const far = compile(
    dir,
    'far.s',
    '.text\n.globl main\nmain: xor %eax, %eax\nret\n.data\n.byte 0\n.byte main - .\n',
    [],
  );
  refusals.push([
    'a relocation overflow',
    [far],
    'ERR_LINK_RELOCATION_OVERFLOW',
    /R_X86_64_PC8 at \.data\+0x1 in .*far\.o against "main"/,
    /does not fit in a signed 8-bit field/,
  ]);

  const corrupt = path.join(dir, 'corrupt.o');
  writeFileSync(corrupt, readFileSync(hello).subarray(0, 200));
  refusals.push(['a truncated object', [corrupt], 'ERR_ELF_TRUNCATED', /corrupt\.o: at byte offset \d+/]);

  const text = path.join(dir, 'notes.txt');
  writeFileSync(text, 'not an object\n');
  refusals.push(['a file that is no object', [text], 'ERR_OBJECT_UNKNOWN_FORMAT', /notes\.txt: at byte offset 0/]);

  const noMain = compile(dir, 'no-main.c', 'int helper(void) { return 1; }', ['-O2', '-fPIC']);
  refusals.push(['no entry point', [noMain], 'ERR_LINK_NO_ENTRY', /"main"/]);
  return refusals;
}

for (const [mapperName, makeMapper] of [
  ['shared', (s: ExecutorSession) => new SharedMemoryMapper(s)],
  ['rpc', (s: ExecutorSession) => new RpcCopyMapper(s)],
] as const) {
  test(`link errors are typed, name what and where, and the same ${mapperName} session runs the next program`, async (t) => {
    const dir = tempDir(t);
    const { session, mapper, target } = await openExecutorTarget(t, makeMapper);
    const hello = compile(dir, 'hello.c', HELLO, ['-O2', '-fPIC']);
    const runHello = async (after: string) => {
      const before = session.stdout.length;
      const r = await runProgram({ inputs: [hello], target, mapper, args: [after] });
      t.is(r.result.status, 0);
      t.is(r.result.outcome, 'returned');
      // The program's stdout is the executor's, which this session collects.
      // Each run is a fresh copy of the program: its static counter starts at 0 again.
      const expected = `hello from ${after}, run 1\n`;
      t.is((await stdoutAtLeast(session, before + expected.length)).slice(before), expected, after);
    };
    const refuse = async (what: string, inputs: string[], code: string, ...patterns: RegExp[]) => {
      const err = await t.throwsAsync(runProgram({ inputs, target, mapper }), { instanceOf: JitmemError, code }, what);
      for (const p of patterns) t.regex(err!.message, p, what);
      await runHello(`after ${what}`);
    };

    await runHello('the first program');
    for (const [what, inputs, code, ...patterns] of refusedInputs(dir, hello)) {
      await refuse(what, inputs, code, ...patterns);
    }

    t.true(session.isOpen);
    t.deepEqual(shmObjects(`jitmem_${session.pid}_`), []);
  });
}

test('-fno-pic code is placed in the low 2 GiB; where that cannot be done it is refused naming the relocation, the symbol and a way out', async (t) => {
  const dir = tempDir(t);
  const { mapper, target } = await openExecutorTarget(t, (s) => new SharedMemoryMapper(s));
  const nopic = compile(
    dir,
    'nopic.c',
    'static int table[4] = {1, 2, 3, 4}; int *p(int i) { return &table[i]; } int main(void) { return *p(2) + 40; }',
    ['-O0', '-fno-pic'],
  );
  const placed = await runProgram({ inputs: [nopic], target, mapper });
  t.is(placed.result.status, 43);
  t.true(placed.program.base > 0 && placed.program.entry < 2 ** 31, 'the program lies in the low 2 GiB');

  // The address of a libc function as a 32-bit immediate: libc lies far above 4 GiB.
  const address = compile(
    dir,
    'address.c',
    '#include <stdio.h>\nint main(void) { int (*volatile f)(const char *) = puts; return f("x") < 0; }',
    ['-O0', '-fno-pic'],
  );
  const err = await t.throwsAsync(runProgram({ inputs: [address], target, mapper }), {
    instanceOf: JitmemError,
    code: 'ERR_LINK_RELOCATION_OVERFLOW',
  });
  t.regex(err!.message, /R_X86_64_32S? at \.text\+0x[0-9a-f]+ in .*address\.o against "puts"/);
  t.regex(err!.message, /takes the address of "puts".*rebuild it with -fPIC or -fPIE/);

  // The session is as it was: the next program runs.
  const again = await runProgram({ inputs: [nopic], target, mapper });
  t.is(again.result.status, 43);
});

const llvmTest = llvmInstalled() ? test : test.skip;
llvmTest("LLVM's executor cannot place reservations: -fno-pic code is refused there, saying so", async (t) => {
  const dir = tempDir(t);
  const { mapper, target } = await openExecutorTarget(t, (s) => new RpcCopyMapper(s), { kind: 'llvm' });
  const nopic = compile(
    dir,
    'nopic.c',
    'static int table[4] = {1, 2, 3, 4}; int *p(int i) { return &table[i]; } int main(void) { return *p(2) + 40; }',
    ['-O0', '-fno-pic'],
  );
  const err = await t.throwsAsync(runProgram({ inputs: [nopic], target, mapper }), {
    instanceOf: JitmemError,
    code: 'ERR_LINK_RELOCATION_OVERFLOW',
  });
  t.regex(err!.message, /R_X86_64_32S? at \.text\+0x[0-9a-f]+ in .*nopic\.o against "\.(data|bss)"/);
  t.regex(err!.message, /cannot place it lower\): rebuild it with -fPIC or -fPIE/);
});

test("a finished program's exported symbols do not satisfy the next program's undefined ones", async (t) => {
  const dir = tempDir(t);
  const { mapper, target } = await openExecutorTarget(t, (s) => new SharedMemoryMapper(s));
  // It calls dlopen, so its symbols are exported for the libraries it might load.
  const first = compile(
    dir,
    'first.c',
    '#include <dlfcn.h>\nint jitmem_stale_probe(void) { return 7; }\nint main(void) { return dlopen(0, RTLD_NOW) ? jitmem_stale_probe() : 1; }',
    ['-O2', '-fPIC'],
  );
  const ran = await runProgram({ inputs: [first], target, mapper });
  t.is(ran.result.status, 7);
  t.true(ran.times.exportSymbols > 0);
  const second = compile(
    dir,
    'second.c',
    'int jitmem_stale_probe(void); int main(void) { return jitmem_stale_probe(); }',
    ['-O2', '-fPIC'],
  );
  const err = await t.throwsAsync(runProgram({ inputs: [second], target, mapper }), {
    instanceOf: JitmemError,
    code: 'ERR_LINK_UNDEFINED_SYMBOL',
  });
  t.regex(err!.message, /"jitmem_stale_probe" \(referenced by .*second\.o\)/);
});

test('a symbol with an extended section index (SHN_XINDEX) but no SHT_SYMTAB_SHNDX section is refused, naming the symbol and the byte', async (t) => {
  const dir = tempDir(t);
  const file = compile(dir, 'answer.c', 'int answer = 42;\nint main(void) { return answer; }\n', ['-O2']);
  const bytes = readFileSync(file);
  const symtab = readElfObject(bytes, { file, base: 0 }).symbolTable!;
  const index = symtab.info; // the first global symbol
  bytes.writeUInt16LE(0xffff, symtab.offset + index * 24 + 6);
  writeFileSync(file, bytes);
  const err = (await t.throwsAsync(
    linkObjects([file], { pageSize: 4096, lookup: async (names) => names.map(() => 0) }),
  )) as JitmemError;
  t.true(err instanceof JitmemError);
  t.is(err.code, 'ERR_ELF_BAD_SECTION_INDEX');
  t.regex(
    err.message,
    new RegExp(`symbol ${index} uses an extended section index but no SHT_SYMTAB_SHNDX entry holds it`),
  );
  t.is(err.details.offset, symtab.offset + index * 24 + 6);
});
