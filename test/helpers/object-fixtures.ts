import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findPythonObjects } from '../../workloads/python-objects.js';

/**
 * Real object files and archives for the reader's tests, made by real tools: llvm-mc for
 * AArch64 (both byte orders), GNU ar and llvm-ar for every archive flavour.
 */

/**
 * An LLVM tool: the unversioned name on PATH, else Debian's llvm-22 copy (the version .ci/run
 * installs), else a clear failure naming the package.
 */
export function llvmTool(name: 'llvm-mc' | 'llvm-ar'): string {
  for (const candidate of [name, `/usr/lib/llvm-22/bin/${name}`, `${name}-22`]) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(`${name} is not installed: install Debian's llvm-22 package (apt-get install llvm-22)`);
}

export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const AARCH64_SOURCE = `
  .text
  .globl answer
  .type answer, %function
answer:
  movz w0, #42
  ret
  .size answer, .-answer
  .globl call_it
  .type call_it, %function
call_it:
  stp x29, x30, [sp, #-16]!
  bl answer
  adrp x1, table
  add x1, x1, :lo12:table
  ldr x2, [x1]
  ldp x29, x30, [sp], #16
  ret
  .size call_it, .-call_it
  .section .rodata
  .p2align 4
message: .asciz "hello, aarch64"
  .data
  .p2align 3
table: .quad answer
  .quad message + 4
  .bss
  .p2align 5
buffer: .zero 100
  .section .init_array, "aw"
  .p2align 3
  .quad call_it
  .section .data.rel.ro, "aw"
  .p2align 3
  .quad buffer - 8
`;

/** An AArch64 relocatable object with code, read-only data, data, bss, .init_array and .data.rel.ro. */
export function assembleAArch64(dir: string, bigEndian = false): string {
  const source = path.join(dir, 'aarch64.s');
  const object = path.join(dir, bigEndian ? 'aarch64_be.o' : 'aarch64.o');
  writeFileSync(source, AARCH64_SOURCE);
  execFileSync(llvmTool('llvm-mc'), [`-triple=${bigEndian ? 'aarch64_be' : 'aarch64'}-linux-gnu`, '-filetype=obj', source, '-o', object]);
  return object;
}

export const ARCHIVE_MEMBERS = ['abstract.o', 'boolobject.o', 'sliceobject.o'];

export interface ArchiveFixtures {
  readonly members: readonly string[];
  /** GNU ar: "/" symbol index and a "//" long-name table. */
  readonly gnu: string;
  /** llvm-ar --format=gnu with a 64-bit index ("/SYM64/"). */
  readonly gnu64: string;
  /** llvm-ar --format=bsd: "#1/N" names and "__.SYMDEF". */
  readonly bsd: string;
  /** llvm-ar --format=darwin with a 64-bit index ("__.SYMDEF_64"). */
  readonly darwin64: string;
}

/** Archives of a few CPython members (one renamed past 15 characters, so that it needs a long name). */
export function makeArchives(dir: string): ArchiveFixtures {
  const [, pythonArchive] = findPythonObjects().files;
  execFileSync('ar', ['x', pythonArchive, ...ARCHIVE_MEMBERS], { cwd: dir });
  copyFileSync(path.join(dir, 'boolobject.o'), path.join(dir, 'a_member_with_a_long_name.o'));
  const members = ['abstract.o', 'a_member_with_a_long_name.o', 'sliceobject.o'];
  const at = (name: string) => path.join(dir, name);
  execFileSync('ar', ['rcs', at('gnu.a'), ...members], { cwd: dir });
  // llvm-ar switches to 64-bit symbol indices past SYM64_THRESHOLD bytes; 0 forces them.
  const sym64 = { ...process.env, SYM64_THRESHOLD: '0' };
  execFileSync(llvmTool('llvm-ar'), ['rcs', '--format=gnu', at('gnu64.a'), ...members], { cwd: dir, env: sym64 });
  execFileSync(llvmTool('llvm-ar'), ['rcs', '--format=bsd', at('bsd.a'), ...members], { cwd: dir });
  execFileSync(llvmTool('llvm-ar'), ['rcs', '--format=darwin', at('darwin64.a'), ...members], { cwd: dir, env: sym64 });
  return { members, gnu: at('gnu.a'), gnu64: at('gnu64.a'), bsd: at('bsd.a'), darwin64: at('darwin64.a') };
}

/** `nm --print-armap`'s view of a GNU-format archive's symbol index: [symbol, member] pairs. */
export function nmArmap(archive: string): Array<[string, string]> {
  const out = execFileSync('nm', ['--print-armap', archive], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const pairs: Array<[string, string]> = [];
  for (const line of out.split('\n')) {
    const m = /^(\S+) in (\S+)$/.exec(line);
    if (m) pairs.push([m[1]!, m[2]!]);
    if (line === '') if (pairs.length > 0) break;
  }
  return pairs;
}
