import { readFileSync } from 'node:fs';
import { allocGroup, R, W, X } from '../mappers/alloc-group.js';
import type { LinkGraph, Section } from '../mappers/link-graph.js';
import { isArArchive, readArArchive } from './elf/ar-archive.js';
import { SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE } from './elf/elf-constants.js';
import { isElf, readElfObject, type ElfObject } from './elf/elf-object.js';
import { formatError, originName } from './elf/format-error.js';

/**
 * From object files and archives on disk to link graphs: one graph per object or archive
 * member, made of its allocatable sections.
 */

/** Reads the ELF objects of one file: the file itself, or every member of an archive. */
export function readObjects(bytes: Uint8Array, file: string): ElfObject[] {
  if (isArArchive(bytes)) {
    const archive = readArArchive(bytes, { file, base: 0 });
    return archive.members.map((member) => readElfObject(member.data, { file, member: member.name, base: member.dataOffset }));
  }
  if (isElf(bytes)) return [readElfObject(bytes, { file, base: 0 })];
  const seen = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw formatError(
    'ERR_OBJECT_UNKNOWN_FORMAT',
    { file, base: 0 },
    0,
    `neither an ELF object (7f 45 4c 46) nor an ar archive ("!<arch>\\n"); it starts with ${seen || 'nothing (the file is empty)'}`,
  );
}

export function readObjectFile(file: string): ElfObject[] {
  return readObjects(readFileSync(file), file);
}

/** The AllocGroup protection ELF section flags ask for: always readable, W and X as flagged. */
export function sectionProtection(flags: number): number {
  return R | (flags & SHF_WRITE ? W : 0) | (flags & SHF_EXECINSTR ? X : 0);
}

/**
 * The link graph of one object: its SHF_ALLOC sections of non-zero size, in section order,
 * grouped by their write and execute flags (so `.eh_frame`, `.init_array`, `.data.rel.ro` go
 * wherever their flags put them); NOBITS sections are zero-fill, every other type keeps its
 * bytes (a view of the file). `undefined` when the object has nothing to allocate.
 */
export function linkGraphFromObject(object: ElfObject): LinkGraph | undefined {
  const sections: Section[] = [];
  for (const s of object.sections) {
    if (!(s.flags & SHF_ALLOC) || s.size === 0) continue;
    const section = {
      name: s.name,
      group: allocGroup(sectionProtection(s.flags)),
      alignment: s.addressAlignment <= 1 ? 1 : s.addressAlignment,
      size: s.size,
    };
    sections.push(s.content === undefined ? section : { ...section, content: s.content });
  }
  return sections.length === 0 ? undefined : { name: originName(object.origin), sections };
}

/** The link graphs of every object in the given files, in order; objects with nothing to allocate have none. */
export function linkGraphsFromFiles(files: readonly string[]): LinkGraph[] {
  const graphs: LinkGraph[] = [];
  for (const file of files) {
    for (const object of readObjectFile(file)) {
      const graph = linkGraphFromObject(object);
      if (graph) graphs.push(graph);
    }
  }
  return graphs;
}
