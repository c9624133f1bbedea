import { allocGroup, R, W, X } from '../graph/alloc-group.js';
import type { LinkGraph, Section } from '../graph/link-graph.js';
import { SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE } from '../objects/elf-constants.js';
import type { ElfObject } from '../objects/elf-object.js';
import { readObjectFile } from '../objects/read-objects.js';
import { originName } from '../objects/format-error.js';

/**
 * From object files and archives to link graphs that move bytes only: one graph per object or
 * archive member, made of its allocatable sections (no symbols, no relocations applied).
 */

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
