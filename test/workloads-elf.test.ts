import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { hasCode, JitmemError } from '../core/errors.js';
import { buildCray } from '../workloads/cray/cray-build.js';
import { readArArchive } from '../objects/ar-archive.js';
import { EM_AARCH64, EM_X86_64, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHN_ABS, SHN_COMMON, SHN_UNDEF, SHT_NOBITS, STT_SECTION } from '../objects/elf-constants.js';
import { readElfObject, type ElfObject } from '../objects/elf-object.js';
import { linkGraphFromObject } from '../workloads/object-files.js';
import { readObjectFile, readObjects } from '../objects/read-objects.js';
import { findPythonObjects } from '../workloads/python-objects.js';
import { assembleAArch64, makeArchives, makeTempDir, nmArmap, type ArchiveFixtures } from './helpers/object-fixtures.js';
import { readelfRelocations, readelfSections, readelfSymbols, readelfTableCounts } from './helpers/readelf.js';

const temp = makeTempDir('jitmem-elf-');
test.after.always(() => temp.remove());

let archives: ArchiveFixtures;
let aarch64: string;
let aarch64BigEndian: string;
let cray: string;
test.before(() => {
  archives = makeArchives(temp.dir);
  aarch64 = assembleAArch64(temp.dir);
  aarch64BigEndian = assembleAArch64(temp.dir, true);
  cray = buildCray().object;
});

function objectsByName(file: string): Map<string, ElfObject> {
  return new Map(
    readObjectFile(file).map((o) => [o.origin.member === undefined ? o.origin.file : `${o.origin.file}(${o.origin.member})`, o]),
  );
}

/** Every section of every object in `file` against readelf: name, kind, offset, size, flags, alignment. */
function sameSectionsAsReadelf(t: import('ava').ExecutionContext, file: string): void {
  const ours = objectsByName(file);
  const theirs = readelfSections([file]);
  t.deepEqual([...ours.keys()], [...theirs.keys()], `${file}: the same objects`);
  for (const [name, sections] of theirs) {
    const object = ours.get(name)!;
    t.is(object.sections.length, sections.length + 1, `${name}: section count`);
    const mine = object.sections.slice(1).map((s) => ({
      index: s.index,
      name: s.name,
      nobits: s.type === SHT_NOBITS,
      offset: s.offset,
      size: s.size,
      flags: (s.flags & SHF_ALLOC ? 'A' : '') + (s.flags & SHF_WRITE ? 'W' : '') + (s.flags & SHF_EXECINSTR ? 'X' : ''),
      alignment: s.addressAlignment,
    }));
    const expected = sections.map((s) => ({
      index: s.index,
      name: s.name,
      nobits: s.type === 'NOBITS',
      offset: s.offset,
      size: s.size,
      flags: s.flags.replace(/[^AWX]/g, '').split('').sort((a, b) => 'AWX'.indexOf(a) - 'AWX'.indexOf(b)).join(''),
      alignment: s.alignment,
    }));
    t.deepEqual(mine, expected, name);
  }
}

test('sections of x86-64, AArch64 and big-endian AArch64 objects are the ones readelf lists', (t) => {
  for (const file of [cray, aarch64, aarch64BigEndian]) sameSectionsAsReadelf(t, file);
  t.is(readObjectFile(cray)[0]!.machine, EM_X86_64);
  t.is(readObjectFile(aarch64)[0]!.machine, EM_AARCH64);
  t.false(readObjectFile(aarch64BigEndian)[0]!.littleEndian);
});

test('sections of every member of the CPython archive are the ones readelf lists', (t) => {
  for (const file of findPythonObjects().files) sameSectionsAsReadelf(t, file);
});

test('symbols and relocations match readelf entry for entry', (t) => {
  for (const file of [cray, aarch64, aarch64BigEndian]) {
    const [object] = readObjectFile(file);
    const symbols = object!.symbols();
    const expected = readelfSymbols(file);
    t.true(expected.length > 5, `${file}: readelf lists symbols`);
    t.deepEqual(
      symbols.map((s) => ({
        index: s.index,
        value: s.value,
        size: s.size,
        // readelf names section symbols after their section.
        name: s.type === STT_SECTION && s.name === '' ? object!.sections[s.sectionIndex]!.name : s.name,
        section: s.sectionIndex === SHN_UNDEF ? 'UND' : s.sectionIndex === SHN_ABS ? 'ABS' : s.sectionIndex === SHN_COMMON ? 'COM' : String(s.sectionIndex),
      })),
      expected.map((s) => ({ index: s.index, value: s.value, size: s.size, name: s.name, section: s.section })),
      file,
    );

    const relocations = readelfRelocations(file);
    const sections = object!.relocationSections();
    t.deepEqual(sections.map((s) => s.name).sort(), [...relocations.keys()].sort(), `${file}: relocation sections`);
    for (const section of sections) {
      const mine = object!.relocations(section);
      const theirs = relocations.get(section.name)!;
      t.is(mine.length, theirs.length, `${file} ${section.name}: count`);
      t.deepEqual(
        mine.map((r) => ({ offset: r.offset, info: (BigInt(r.symbolIndex) << 32n) | BigInt(r.type) })),
        theirs.map((r) => ({ offset: r.offset, info: r.info })),
        `${file} ${section.name}: offsets, symbols and types`,
      );
      for (const [i, r] of theirs.entries()) if (r.addend !== undefined) t.is(mine[i]!.addend, r.addend, `${file} ${section.name}[${i}] addend`);
    }
  }
});

test('symbol and relocation counts of every CPython object match readelf', (t) => {
  const [, archive] = findPythonObjects().files;
  const objects = readObjectFile(archive);
  const counts = readelfTableCounts(archive);
  t.is(objects.length, 179);
  // readelf prints no symbol-table line for an object without one.
  t.deepEqual(
    objects.filter((o) => o.symbolTable !== undefined).map((o) => o.symbols().length),
    counts.symbols,
  );
  t.deepEqual(
    objects.map((o) => new Map(o.relocationSections().map((s) => [s.name, o.relocations(s).length]))),
    counts.relocations,
  );
});

test('section contents are views of the file buffer, not copies', (t) => {
  const bytes = readFileSync(archives.gnu);
  const objects = readObjects(bytes, archives.gnu);
  for (const object of objects) {
    for (const s of object.sections) {
      if (!s.content) continue;
      t.is(s.content.buffer, bytes.buffer);
      t.is(s.content.byteOffset, bytes.byteOffset + object.origin.base + s.offset);
    }
  }
  const graph = linkGraphFromObject(objects[0]!)!;
  t.true(graph.sections.every((s) => s.content === undefined || s.content.buffer === bytes.buffer));
});

test('GNU, GNU 64-bit, BSD and Darwin 64-bit archives give the same members, bytes and symbol index', (t) => {
  const expectedIndex = nmArmap(archives.gnu);
  t.true(expectedIndex.length > 100);
  const sortPairs = (pairs: Array<[string, string]>) => pairs.map(([s, m]) => `${s} in ${m}`).sort();
  for (const [flavor, file] of [
    ['gnu', archives.gnu],
    ['gnu', archives.gnu64],
    ['bsd', archives.bsd],
    ['bsd', archives.darwin64],
  ] as const) {
    const bytes = readFileSync(file);
    const archive = readArArchive(bytes, { file, base: 0 });
    t.is(archive.flavor, flavor, file);
    t.deepEqual(
      archive.members.map((m) => m.name),
      archives.members,
      `${file}: member names, long ones included`,
    );
    for (const member of archive.members) {
      t.deepEqual(Buffer.from(member.data), readFileSync(path.join(temp.dir, member.name)), `${file}(${member.name}) bytes`);
    }
    t.deepEqual(sortPairs(archive.symbols.map((s) => [s.name, s.member.name])), sortPairs(expectedIndex), `${file}: symbol index`);
  }
  t.true(readFileSync(archives.gnu64).includes('/SYM64/'));
  t.true(readFileSync(archives.darwin64).includes('__.SYMDEF_64'));
});

function throwsFormatError(t: import('ava').ExecutionContext, fn: () => unknown, code: string, offset: number, file: string): void {
  const err = t.throws(fn) as JitmemError;
  t.true(err instanceof JitmemError, `${code}: a JitmemError`);
  t.is(err.code, code);
  t.is(err.details.offset, offset, `${code}: offset`);
  t.is(err.details.file, file);
  t.true(err.message.includes(`${file}`), err.message);
  t.true(err.message.includes(`byte offset ${offset}`), err.message);
}

test('malformed objects name the code, the file and the byte offset', (t) => {
  const good = readFileSync(cray);
  const patched = (edit: (view: DataView) => void) => {
    const copy = new Uint8Array(good);
    edit(new DataView(copy.buffer));
    return copy;
  };
  const origin = { file: 'cray.o', base: 0 };
  throwsFormatError(t, () => readElfObject(Buffer.from('not an elf'), origin), 'ERR_ELF_BAD_MAGIC', 0, 'cray.o');
  throwsFormatError(t, () => readElfObject(good.subarray(0, 40), origin), 'ERR_ELF_TRUNCATED', 40, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setUint8(4, 1)), origin), 'ERR_ELF_UNSUPPORTED_CLASS', 4, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setUint16(16, 3, true)), origin), 'ERR_ELF_NOT_RELOCATABLE', 16, 'cray.o');
  // A section count that the file cannot hold is refused before anything is allocated for it.
  throwsFormatError(t, () => readElfObject(patched((v) => v.setUint16(60, 0xfff0, true)), origin), 'ERR_ELF_TRUNCATED', 60, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setBigUint64(40, 1n << 62n, true)), origin), 'ERR_ELF_VALUE_TOO_LARGE', 40, 'cray.o');
  const shoff = Number(good.readBigUInt64LE(40));
  // Section 1's sh_size, then its sh_addralign.
  throwsFormatError(t, () => readElfObject(patched((v) => v.setBigUint64(shoff + 64 + 32, 1n << 40n, true)), origin), 'ERR_ELF_TRUNCATED', shoff + 64 + 24, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setBigUint64(shoff + 64 + 48, 12n, true)), origin), 'ERR_ELF_BAD_ALIGNMENT', shoff + 64 + 48, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setUint32(shoff + 64, 0x7fffffff, true)), origin), 'ERR_ELF_BAD_STRING', shoff + 64, 'cray.o');
  throwsFormatError(t, () => readElfObject(patched((v) => v.setUint16(62, 999, true)), origin), 'ERR_ELF_BAD_SECTION_INDEX', 62, 'cray.o');

  // A 64-bit field above 2^32 (section 1's sh_addr) is read exactly (the headers are then not
  // held as 32-bit words), and every other field as in the object without it.
  const wide = readElfObject(patched((v) => v.setBigUint64(shoff + 64 + 16, (1n << 40n) + 5n, true)), origin);
  const plain = readElfObject(good, origin);
  t.is(wide.sections[1]!.address, 2 ** 40 + 5);
  t.deepEqual(
    wide.sections.map((s) => ({ ...s, address: 0, content: undefined })),
    plain.sections.map((s) => ({ ...s, address: 0, content: undefined })),
  );
  t.is(wide.sectionOffset(1), plain.sectionOffset(1));
  t.is(wide.sectionSize(1), plain.sectionSize(1));

  // A relocation naming a symbol past the table's end is found when relocations are read.
  const object = readElfObject(good, origin);
  const rela = object.relocationSections()[0]!;
  const broken = readElfObject(patched((v) => v.setUint32(rela.offset + 12, 1_000_000, true)), origin);
  throwsFormatError(t, () => broken.relocations(broken.relocationSections()[0]!), 'ERR_ELF_BAD_RELOCATION', rela.offset + 8, 'cray.o');
});

test('malformed archives name the code, the file and the byte offset; members report offsets within the archive', (t) => {
  const good = readFileSync(archives.gnu);
  const archive = readArArchive(good, { file: 'gnu.a', base: 0 });
  const origin = { file: 'gnu.a', base: 0 };
  const withText = (offset: number, text: string) => {
    const copy = Buffer.from(good);
    copy.write(text, offset, 'latin1');
    return copy;
  };
  const first = archive.members[0]!;
  throwsFormatError(t, () => readArArchive(Buffer.from('!<arch!\n'), origin), 'ERR_AR_BAD_MAGIC', 0, 'gnu.a');
  throwsFormatError(t, () => readArArchive(Buffer.from('!<thin>\n'), origin), 'ERR_AR_THIN_UNSUPPORTED', 0, 'gnu.a');
  throwsFormatError(t, () => readArArchive(withText(first.headerOffset + 48, '9999999999'), origin), 'ERR_AR_TRUNCATED', first.headerOffset + 48, 'gnu.a');
  throwsFormatError(t, () => readArArchive(withText(first.headerOffset + 48, '12x4      '), origin), 'ERR_AR_BAD_HEADER', first.headerOffset + 48, 'gnu.a');
  throwsFormatError(t, () => readArArchive(withText(first.headerOffset + 58, 'xx'), origin), 'ERR_AR_BAD_HEADER', first.headerOffset + 58, 'gnu.a');
  const long = archive.members[1]!;
  throwsFormatError(t, () => readArArchive(withText(long.headerOffset, '/99999          '), origin), 'ERR_AR_BAD_NAME', long.headerOffset, 'gnu.a');
  throwsFormatError(t, () => readArArchive(good.subarray(0, first.dataOffset + 100), origin), 'ERR_AR_TRUNCATED', first.headerOffset + 48, 'gnu.a');
  // The symbol index's first entry (big-endian, after the count) pointing into the middle of a member.
  const index = good.subarray(68);
  const indexCopy = Buffer.from(good);
  indexCopy.writeUInt32BE(first.dataOffset + 1, 68 + 4);
  t.true(index.readUInt32BE(0) > 0);
  throwsFormatError(t, () => readArArchive(indexCopy, origin), 'ERR_AR_BAD_SYMBOL_INDEX', 68 + 4, 'gnu.a');

  // Damage inside a member is reported at its offset in the archive, with the member named.
  const damaged = Buffer.from(good);
  damaged.writeUInt16LE(0xfff0, first.dataOffset + 60);
  const err = t.throws(() => readObjects(damaged, 'gnu.a')) as JitmemError;
  t.is(err.code, 'ERR_ELF_TRUNCATED');
  t.is(err.details.offset, first.dataOffset + 60);
  t.is(err.details.member, first.name);
  t.true(err.message.startsWith(`gnu.a(${first.name}): at byte offset ${first.dataOffset + 60}`), err.message);

  const notAnObject = t.throws(() => readObjects(Buffer.from('hello'), 'notes.txt')) as JitmemError;
  t.true(hasCode(notAnObject, 'ERR_OBJECT_UNKNOWN_FORMAT'));
});

test('link graphs take allocatable sections by their flags and leave the rest out', (t) => {
  const [object] = readObjectFile(aarch64);
  const graph = linkGraphFromObject(object!)!;
  const byName = Object.fromEntries(graph.sections.map((s) => [s.name, s]));
  t.deepEqual(Object.keys(byName).sort(), ['.bss', '.data', '.data.rel.ro', '.init_array', '.rodata', '.text'].sort());
  t.is(byName['.text']!.group.prot, 5);
  t.is(byName['.rodata']!.group.prot, 1);
  t.is(byName['.data']!.group.prot, 3);
  t.is(byName['.init_array']!.group.prot, 3);
  t.is(byName['.data.rel.ro']!.group.prot, 3);
  t.is(byName['.bss']!.content, undefined);
  t.is(byName['.bss']!.size, 100);
  t.is(byName['.bss']!.alignment, 32);
  t.is(byName['.rodata']!.alignment, 16);
  t.deepEqual([...byName['.rodata']!.content!.subarray(0, 15)], [...Buffer.from('hello, aarch64\0')]);
  // cray's .eh_frame is allocatable and read-only on x86-64.
  const crayGraph = linkGraphFromObject(readObjectFile(cray)[0]!)!;
  t.is(crayGraph.sections.find((s) => s.name === '.eh_frame')?.group.prot, 1);
  t.false(crayGraph.sections.some((s) => s.name.startsWith('.rela') || s.name === '.symtab' || s.size === 0));
});
