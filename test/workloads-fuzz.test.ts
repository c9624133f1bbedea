import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { JitmemError } from '../core/errors.js';
import { buildCray } from '../workloads/cray/cray-build.js';
import { readArArchive } from '../objects/ar-archive.js';
import {
  ELF64_REL_SIZE,
  ELF64_RELA_SIZE,
  ELF64_SHDR_SIZE,
  ELF64_SYM_SIZE,
  SHT_RELA,
} from '../objects/elf-constants.js';
import type { ElfObject } from '../objects/elf-object.js';
import { linkGraphFromObject } from '../workloads/object-files.js';
import { readObjects } from '../objects/read-objects.js';
import { findPythonObjects } from '../workloads/python-objects.js';
import { assembleAArch64, llvmTool, makeTempDir } from './helpers/object-fixtures.js';

/**
 * The reader never trusts its input. Real objects and archives are damaged in seeded ways (bit
 * flips anywhere or in the structures, truncation, huge or edge values written over header
 * fields, counts, sizes, offsets, indices and archive header text) and read completely:
 * sections, symbols, every relocation, link graphs. Each copy must either read cleanly or fail
 * with a format error carrying a code and a file offset; nothing else may be thrown, no read
 * may take long, and nothing read may be larger than the damaged file can hold.
 */

// Fixed so that a failure reproduces; JITMEM_FUZZ_RUNS and JITMEM_FUZZ_SEED explore further.
const RUNS = Number(process.env.JITMEM_FUZZ_RUNS) || 20_000;
const SEED = Number(process.env.JITMEM_FUZZ_SEED) || 20261121;

/** A place in a file worth damaging: a binary field of `width` bytes or a text field of an ar header. */
type Field =
  { offset: number; width: 1 | 2 | 4 | 8; littleEndian: boolean } | { offset: number; text: 'size' | 'name' | 'fmag' };

interface FuzzSource {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly fields: readonly Field[];
}

const temp = makeTempDir('jitmem-fuzz-');
test.after.always(() => temp.remove());

function objectFields(object: ElfObject, base: number): Field[] {
  const le = object.littleEndian;
  const field = (offset: number, width: 1 | 2 | 4 | 8): Field => ({ offset: base + offset, width, littleEndian: le });
  const fields: Field[] = [
    field(4, 1),
    field(5, 1),
    field(6, 1),
    field(16, 2),
    field(40, 8),
    field(52, 2),
    field(58, 2),
    field(60, 2),
    field(62, 2),
  ];
  for (const s of object.sections) {
    for (const [at, width] of [
      [0, 4],
      [4, 4],
      [8, 8],
      [24, 8],
      [32, 8],
      [40, 4],
      [44, 4],
      [48, 8],
      [56, 8],
    ] as const) {
      fields.push(field(s.headerOffset + at, width));
    }
  }
  const symtab = object.symbolTable;
  if (symtab) {
    for (let i = 0; i < Math.min(64, symtab.size / ELF64_SYM_SIZE); i++) {
      const at = symtab.offset + i * ELF64_SYM_SIZE;
      fields.push(field(at, 4), field(at + 6, 2), field(at + 8, 8), field(at + 16, 8));
    }
  }
  for (const rel of object.relocationSections()) {
    const size = rel.type === SHT_RELA ? ELF64_RELA_SIZE : ELF64_REL_SIZE;
    for (let i = 0; i < Math.min(32, rel.size / size); i++) {
      const at = rel.offset + i * size;
      fields.push(field(at, 8), field(at + 8, 4), field(at + 12, 4));
      if (rel.type === SHT_RELA) fields.push(field(at + 16, 8));
    }
  }
  return fields;
}

function fuzzSource(name: string, bytes: Uint8Array): FuzzSource {
  const fields: Field[] = [];
  if (bytes[0] === 0x21) {
    const archive = readArArchive(bytes, { file: name, base: 0 });
    // Every header in the file, the special members' included: walk them as the reader does.
    for (let at = 8; at + 60 <= bytes.length;) {
      fields.push({ offset: at, text: 'name' }, { offset: at + 48, text: 'size' }, { offset: at + 58, text: 'fmag' });
      const size = Number(
        Buffer.from(bytes.subarray(at + 48, at + 58))
          .toString('latin1')
          .trim(),
      );
      if (at === 8)
        for (let i = 0; i < 8; i++) fields.push({ offset: at + 60 + 4 * i, width: 4, littleEndian: i % 2 === 1 });
      at += 60 + size + ((60 + size) % 2);
    }
    for (const member of archive.members) {
      for (const object of readObjects(member.data, name)) fields.push(...objectFields(object, member.dataOffset));
    }
  } else {
    fields.push(...objectFields(readObjects(bytes, name)[0]!, 0));
  }
  return { name, bytes, fields };
}

const EDGE_VALUES = [
  0n,
  1n,
  2n,
  3n,
  8n,
  0x40n,
  0xffn,
  0xff00n,
  0xfff1n,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  (1n << 53n) - 1n,
  1n << 53n,
  1n << 62n,
  1n << 63n,
  (1n << 64n) - 1n,
];
const SIZE_TEXTS = ['0', '1', '59', '60', '61', '9999999999', '-1', '', 'abc', '1e9', '0x10', '4294967296'];
const NAME_TEXTS = [
  '/',
  '//',
  '/SYM64/',
  '/0',
  '/9',
  '/99999',
  '/x',
  '#1/0',
  '#1/5',
  '#1/9999',
  '#1/',
  '#1/abc',
  '__.SYMDEF',
  '__.SYMDEF_64',
  'x/',
  '',
  '!<arch>',
];

const mutationArbitrary = fc.record({
  source: fc.nat(),
  kind: fc.constantFrom('flip-anywhere', 'flip-structure', 'truncate', 'field', 'field', 'field'),
  at: fc.nat(),
  bits: fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
  edge: fc.nat(),
  random: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  text: fc.string({ maxLength: 16 }),
});
type Mutation = typeof mutationArbitrary extends fc.Arbitrary<infer T> ? T : never;

function mutate(source: FuzzSource, m: Mutation): Uint8Array {
  const { bytes, fields } = source;
  if (m.kind === 'truncate') return bytes.slice(0, m.at % bytes.length);
  const copy = new Uint8Array(bytes);
  if (m.kind === 'flip-anywhere' || m.kind === 'flip-structure') {
    for (const bit of m.bits) {
      // Structural flips land within 8 bytes of a header field, where damage matters most.
      const offset =
        m.kind === 'flip-anywhere'
          ? (bit >> 3) % copy.length
          : Math.min(copy.length - 1, fields[m.at % fields.length]!.offset + ((bit >> 3) % 8));
      copy[offset]! ^= 1 << (bit & 7);
    }
    return copy;
  }
  const field = fields[m.at % fields.length]!;
  if ('text' in field) {
    const width = field.text === 'name' ? 16 : field.text === 'size' ? 10 : 2;
    const pool = field.text === 'name' ? NAME_TEXTS : SIZE_TEXTS;
    const choice = m.edge % (pool.length + 2);
    const value =
      choice < pool.length ? pool[choice]! : choice === pool.length ? String(bytes.length - field.offset) : m.text;
    Buffer.from(copy.buffer).write(value.padEnd(width, ' ').slice(0, width), field.offset, 'latin1');
    return copy;
  }
  const choice = m.edge % (EDGE_VALUES.length + 3);
  const value =
    choice < EDGE_VALUES.length
      ? EDGE_VALUES[choice]!
      : choice === EDGE_VALUES.length
        ? BigInt(bytes.length)
        : choice === EDGE_VALUES.length + 1
          ? BigInt(bytes.length + 1)
          : m.random;
  const view = new DataView(copy.buffer);
  const masked = BigInt.asUintN(field.width * 8, value);
  if (field.offset + field.width > copy.length) return copy;
  if (field.width === 1) view.setUint8(field.offset, Number(masked));
  else if (field.width === 2) view.setUint16(field.offset, Number(masked), field.littleEndian);
  else if (field.width === 4) view.setUint32(field.offset, Number(masked), field.littleEndian);
  else view.setBigUint64(field.offset, masked, field.littleEndian);
  return copy;
}

/** Reads everything the linker will read, and checks that nothing read is larger than the file allows. */
function readCompletely(bytes: Uint8Array, name: string): void {
  const limit = bytes.length;
  const objects = readObjects(bytes, name);
  if (objects.length * 60 > limit) throw new Error(`${objects.length} objects from ${limit} bytes`);
  for (const object of objects) {
    if (object.sections.length * ELF64_SHDR_SIZE > limit)
      throw new Error(`${object.sections.length} sections from ${limit} bytes`);
    for (const s of object.sections) {
      if (s.content && (s.content.buffer !== bytes.buffer || s.content.length !== s.size))
        throw new Error(`section ${s.index}'s content is not a view of the input`);
    }
    if (object.symbols().length * ELF64_SYM_SIZE > limit)
      throw new Error(`${object.symbols().length} symbols from ${limit} bytes`);
    for (const rel of object.relocationSections()) {
      if (object.relocations(rel).length * ELF64_REL_SIZE > limit)
        throw new Error(`too many relocations from ${limit} bytes`);
    }
    linkGraphFromObject(object);
  }
  if (bytes[0] === 0x21) {
    const archive = readArArchive(bytes, { file: name, base: 0 });
    if (archive.symbols.length * 4 > limit)
      throw new Error(`${archive.symbols.length} index symbols from ${limit} bytes`);
  }
}


/** A single read still running after this long is hung. */
const READ_HANG_MS = 30_000;

test(`${RUNS} damaged copies of real objects and archives give only format errors with a code and an offset`, (t) => {
  const dir = temp.dir;
  const [pythonObject, pythonArchive] = findPythonObjects().files;
  execFileSync('ar', ['x', pythonArchive, 'boolobject.o', 'sliceobject.o', 'getbuildinfo.o'], { cwd: dir });
  const members = ['boolobject.o', 'sliceobject.o', 'getbuildinfo.o'].map((m) => path.join(dir, m));
  const longName = path.join(dir, 'a_member_with_a_long_name.o');
  execFileSync('cp', [members[2]!, longName]);
  execFileSync('ar', ['rcs', path.join(dir, 'gnu.a'), members[0]!, longName, members[2]!]);
  execFileSync(llvmTool('llvm-ar'), ['rcs', '--format=bsd', path.join(dir, 'bsd.a'), members[0]!, longName]);
  execFileSync(llvmTool('llvm-ar'), ['rcs', '--format=gnu', path.join(dir, 'gnu64.a'), longName, members[2]!], {
    env: { ...process.env, SYM64_THRESHOLD: '0' },
  });
  const files = [
    buildCray().object,
    pythonObject,
    members[1]!,
    assembleAArch64(dir),
    assembleAArch64(dir, true),
    path.join(dir, 'gnu.a'),
    path.join(dir, 'bsd.a'),
    path.join(dir, 'gnu64.a'),
  ];
  const sources = files.map((f) => fuzzSource(path.basename(f), readFileSync(f)));

  const codes = new Map<string, number>();
  let clean = 0;
  let slowest = 0;
  fc.assert(
    fc.property(mutationArbitrary, (m) => {
      const source = sources[m.source % sources.length]!;
      const damaged = mutate(source, m);
      const started = performance.now();
      try {
        readCompletely(damaged, source.name);
        clean++;
      } catch (err) {
        if (!(err instanceof JitmemError))
          throw new Error(`${source.name} (${m.kind}): not a format error: ${(err as Error).stack}`);
        if (!/^ERR_(ELF|AR)_[A-Z_]+$|^ERR_OBJECT_UNKNOWN_FORMAT$/.test(err.code))
          throw new Error(`unexpected code ${err.code}: ${err.message}`);
        const offset = err.details.offset;
        if (typeof offset !== 'number' || offset < 0 || offset > damaged.length)
          throw new Error(`${err.code} without a file offset inside the file: ${err.message}`);
        if (err.details.file !== source.name || !err.message.includes(`byte offset ${offset}`))
          throw new Error(`message lacks file or offset: ${err.message}`);
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
      } finally {
        slowest = Math.max(slowest, performance.now() - started);
      }
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  t.log(
    `${RUNS} copies: ${clean} read cleanly; errors ${JSON.stringify(Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])))}; slowest read ${slowest.toFixed(1)} ms`,
  );
  // A watchdog, not a speed test: a read that runs this long is a hang (a loop over a count the
  // file claims, say); a normal read takes milliseconds, logged above.
  t.true(slowest < READ_HANG_MS, `a read ran ${slowest.toFixed(0)} ms: hung`);
  // The damage reached both readers and most of their checks.
  t.true(codes.size >= 12, `${codes.size} different codes`);
  t.true([...codes.keys()].some((c) => c.startsWith('ERR_AR_')));
});
