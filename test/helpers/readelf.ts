import { execFileSync } from 'node:child_process';

/**
 * What GNU readelf says about object files and archives, parsed from its text output, so that
 * tests can hold jitmem's reader to an independent implementation.
 */

export interface ReadelfSection {
  readonly index: number;
  readonly name: string;
  readonly type: string;
  readonly offset: number;
  readonly size: number;
  readonly flags: string;
  readonly alignment: number;
}

function readelf(args: string[]): string {
  return execFileSync('readelf', ['-W', ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/**
 * Section headers of every object in `files` (`readelf -S -W`), keyed the way jitmem names
 * graphs: the file path, or "archive(member)" for archive members. Section 0 is left out.
 */
export function readelfSections(files: readonly string[]): Map<string, ReadelfSection[]> {
  const result = new Map<string, ReadelfSection[]>();
  for (const file of files) {
    let current: ReadelfSection[] | undefined;
    for (const line of readelf(['-S', file]).split('\n')) {
      const fileLine = /^File: (.*)$/.exec(line);
      if (fileLine) {
        result.set(fileLine[1]!, (current = []));
        continue;
      }
      const m = /^\s*\[\s*(\d+)\]\s+(.*)$/.exec(line);
      if (!m || m[1] === '0') continue;
      if (!current) result.set(file, (current = []));
      // Name Type Address Off Size ES [Flg] Lk Inf Al: the flags column is empty for some sections.
      const t = m[2]!.trim().split(/\s+/);
      if (t.length !== 9 && t.length !== 10) throw new Error(`unexpected readelf line: ${line}`);
      current.push({
        index: Number(m[1]),
        name: t[0]!,
        type: t[1]!,
        offset: parseInt(t[3]!, 16),
        size: parseInt(t[4]!, 16),
        flags: t.length === 10 ? t[6]! : '',
        alignment: Number(t[t.length - 1]),
      });
    }
  }
  return result;
}

export interface ReadelfTotals {
  /** Objects with at least one allocatable section of non-zero size. */
  readonly graphs: number;
  readonly content: Record<string, number>;
  readonly zeroFill: Record<string, number>;
  /** Per object: bytes by "content r-x" / "zero-fill rw-" and so on. */
  readonly perObject: Map<string, Record<string, number>>;
}

/** The totals jitmem's `workloads` must report, computed from readelf's section lists alone. */
export function readelfTotals(files: readonly string[]): ReadelfTotals {
  const content: Record<string, number> = {};
  const zeroFill: Record<string, number> = {};
  const perObject = new Map<string, Record<string, number>>();
  for (const [object, sections] of readelfSections(files)) {
    const mine: Record<string, number> = {};
    for (const s of sections) {
      if (!s.flags.includes('A') || s.size === 0) continue;
      const group = 'r' + (s.flags.includes('W') ? 'w' : '-') + (s.flags.includes('X') ? 'x' : '-');
      const totals = s.type === 'NOBITS' ? zeroFill : content;
      totals[group] = (totals[group] ?? 0) + s.size;
      const key = `${s.type === 'NOBITS' ? 'zero-fill' : 'content'} ${group}`;
      mine[key] = (mine[key] ?? 0) + s.size;
    }
    if (Object.keys(mine).length > 0) perObject.set(object, mine);
  }
  return { graphs: perObject.size, content, zeroFill, perObject };
}

/** "Symbol table '.symtab' contains N entries" and "Relocation section 'X' ... contains N entries", per object. */
export function readelfTableCounts(file: string): { symbols: number[]; relocations: Map<string, number>[] } {
  const symbols: number[] = [];
  const relocations: Map<string, number>[] = [];
  for (const line of readelf(['-s', '-r', file]).split('\n')) {
    if (/^File: /.test(line)) relocations.push(new Map());
    const sym = /^Symbol table '\.symtab' contains (\d+) entr/.exec(line);
    if (sym) symbols.push(Number(sym[1]));
    const rel = /^Relocation section '([^']+)' at offset 0x[0-9a-f]+ contains (\d+) entr/.exec(line);
    if (rel) {
      if (relocations.length === 0) relocations.push(new Map());
      relocations[relocations.length - 1]!.set(rel[1]!, Number(rel[2]));
    }
  }
  return { symbols, relocations };
}

export interface ReadelfSymbol {
  readonly index: number;
  readonly value: number;
  readonly size: number;
  readonly type: string;
  readonly bind: string;
  readonly section: string;
  readonly name: string;
}

/** The entries of the .symtab of one object (`readelf -s -W`). */
export function readelfSymbols(file: string): ReadelfSymbol[] {
  const symbols: ReadelfSymbol[] = [];
  let inSymtab = false;
  for (const line of readelf(['-s', file]).split('\n')) {
    if (/^Symbol table '/.test(line)) inSymtab = line.startsWith("Symbol table '.symtab'");
    const m = /^\s*(\d+): ([0-9a-f]+)\s+(0x[0-9a-f]+|\d+) (\S+)\s+(\S+)\s+\S+\s+(\S+)(?: (.*))?$/.exec(line);
    if (!inSymtab || !m) continue;
    symbols.push({
      index: Number(m[1]),
      value: parseInt(m[2]!, 16),
      size: Number(m[3]),
      type: m[4]!,
      bind: m[5]!,
      section: m[6]!,
      name: m[7] ?? '',
    });
  }
  return symbols;
}

export interface ReadelfRelocation {
  readonly offset: number;
  readonly info: bigint;
  readonly type: string;
  /** Parsed from the "+ 1f" / "- 4" suffix; undefined when readelf prints none. */
  readonly addend: number | undefined;
}

/** Relocation entries of one object by relocation-section name (`readelf -r -W`). */
export function readelfRelocations(file: string): Map<string, ReadelfRelocation[]> {
  const result = new Map<string, ReadelfRelocation[]>();
  let current: ReadelfRelocation[] | undefined;
  for (const line of readelf(['-r', file]).split('\n')) {
    const header = /^Relocation section '([^']+)'/.exec(line);
    if (header) {
      result.set(header[1]!, (current = []));
      continue;
    }
    const m = /^([0-9a-f]{16})\s+([0-9a-f]{16}) (\S+)(.*)$/.exec(line);
    if (!m || !current) continue;
    const addend = /([+-]) ([0-9a-f]+)\s*$/.exec(m[4]!);
    current.push({
      offset: parseInt(m[1]!, 16),
      info: BigInt('0x' + m[2]!),
      type: m[3]!,
      addend: addend ? (addend[1] === '-' ? -1 : 1) * parseInt(addend[2]!, 16) : undefined,
    });
  }
  return result;
}
