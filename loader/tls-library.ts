import type { TlsImage } from '../jitlink/link.js';
import { alignUp } from '../core/checks.js';
import {
  DT_HASH,
  DT_NULL,
  DT_RELA,
  DT_RELAENT,
  DT_RELASZ,
  DT_SONAME,
  DT_STRSZ,
  DT_STRTAB,
  DT_SYMENT,
  DT_SYMTAB,
  EHDR,
  hashSize,
  PF_R,
  PF_W,
  PF_X,
  PHDR,
  PT_DYNAMIC,
  PT_LOAD,
  PT_TLS,
  set64,
  STB_GLOBAL,
  SYM,
  writeDynamic,
  writeElfHeader,
  writeHash,
  writeProgramHeader,
} from './shared-object.js';

/**
 * The program's thread-local storage, handed to the executor's own dynamic linker: a
 * generated shared library whose PT_TLS segment is the program's TLS image, and whose dynamic
 * relocations make the dynamic linker say where that image and the executor's thread-locals
 * are:
 *
 *   words[0]          R_X86_64_DTPMOD64 (symbol 0)      the image's module id
 *   words[1]          R_X86_64_TPOFF64  (symbol 0)      the image's offset from the thread pointer
 *   words[2 + 3i]     R_X86_64_DTPMOD64 external i      its module id         (general dynamic)
 *   words[2 + 3i + 1] R_X86_64_DTPOFF64 external i      its offset there      (general dynamic)
 *   words[2 + 3i + 2] R_X86_64_TPOFF64  external i      its thread-pointer offset (initial exec)
 *
 * Why the executor's dynamic linker rather than a TLS runtime of jitmem's own: it already
 * keeps a copy of every module's image per thread, including the threads that exist when the
 * library is opened (it initialises their static TLS blocks then) and every thread created
 * later; __tls_get_addr knows the module; and closing the library gives the space back (glibc
 * reclaims static TLS at the end of the used area, and frees dynamic blocks). The TPOFF64
 * against the image (DF_STATIC_TLS) asks for static TLS, so that the initial-exec and
 * local-exec models, which code built without -fPIC uses, have one offset valid in every
 * thread. Static TLS is finite (glibc's surplus, glibc.rtld.optional_static_tls, 512 bytes by
 * default): a larger image fails to open with the dynamic linker's message.
 *
 * The controller reads the words through the library's one function, `int32_t
 * jitmem_tls_word(int32_t i)`: the i-th 32-bit half of the table (any executor can call an
 * int(int) function; not every one reads memory outside its own reservations).
 *
 * Layout: ELF header, program headers (PT_LOAD R-X: headers, .hash, .dynsym, .dynstr,
 * .rela.dyn, the function; PT_LOAD RW- from the next page: the words, the TLS template,
 * .dynamic; PT_DYNAMIC; PT_TLS). Addresses equal file offsets. No section headers.
 */

export const TLS_WORD_FUNCTION = 'jitmem_tls_word';

const RELA = 24;
const STT_FUNC = 2;
const STT_TLS = 6;
/** Any section index that is not special: the words are defined in the library. */
const DEFINED_HERE = 1;
const R_X86_64_DTPMOD64 = 16;
const R_X86_64_DTPOFF64 = 17;
const R_X86_64_TPOFF64 = 18;
const DT_FLAGS = 30;
const DF_STATIC_TLS = 0x10;

const PAGE = 0x1000;
/**
 * int32_t jitmem_tls_word(int32_t i) { return ((int32_t *)words)[i]; }
 *   48 63 ff              movslq %edi, %rdi
 *   48 8d 05 <disp32>     lea words(%rip), %rax
 *   8b 04 b8              mov (%rax,%rdi,4), %eax
 *   c3                    ret
 */
const WORD_FUNCTION = Uint8Array.of(0x48, 0x63, 0xff, 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x8b, 0x04, 0xb8, 0xc3);

/** How many 8-byte words the library's table has for `image`. */
export function tlsWordCount(image: TlsImage): number {
  return 2 + 3 * image.externals.length;
}

export function buildTlsLibrary(soname: string, image: TlsImage): Uint8Array {
  const encoder = new TextEncoder();
  const own = image.size > 0;
  const names = [TLS_WORD_FUNCTION, ...image.externals.map((x) => x.name)].map((n) => encoder.encode(n));
  const sonameBytes = encoder.encode(soname);
  let strSize = 1 + sonameBytes.length + 1;
  const nameOffsets = names.map((n) => {
    const at = strSize;
    strSize += n.length + 1;
    return at;
  });
  const count = names.length + 1;
  const nbucket = Math.max(1, Math.floor(count / 2) | 1);
  const relocations: Array<[number, number, number]> = []; // word, symbol, type
  if (own) relocations.push([0, 0, R_X86_64_DTPMOD64], [1, 0, R_X86_64_TPOFF64]);
  image.externals.forEach((x, i) => {
    const sym = i + 2;
    if (x.dynamic) relocations.push([2 + 3 * i, sym, R_X86_64_DTPMOD64], [3 + 3 * i, sym, R_X86_64_DTPOFF64]);
    if (x.initialExec) relocations.push([4 + 3 * i, sym, R_X86_64_TPOFF64]);
  });

  const phnum = own ? 4 : 3;
  const hashAt = EHDR + phnum * PHDR;
  const symAt = alignUp(hashAt + hashSize(nbucket, count), 8);
  const strAt = symAt + count * SYM;
  const relaAt = alignUp(strAt + strSize, 8);
  const codeAt = alignUp(relaAt + relocations.length * RELA, 16);
  const wordsAt = alignUp(codeAt + WORD_FUNCTION.length, PAGE);
  const tlsAlign = Math.max(8, image.alignment);
  const templateAt = alignUp(wordsAt + tlsWordCount(image) * 8, tlsAlign);
  const dynamic: Array<[number, number]> = [
    [DT_HASH, hashAt],
    [DT_STRTAB, strAt],
    [DT_SYMTAB, symAt],
    [DT_STRSZ, strSize],
    [DT_SYMENT, SYM],
    [DT_SONAME, 1],
    [DT_RELA, relaAt],
    [DT_RELASZ, relocations.length * RELA],
    [DT_RELAENT, RELA],
    ...(own ? ([[DT_FLAGS, DF_STATIC_TLS]] as Array<[number, number]>) : []),
    [DT_NULL, 0],
  ];
  const dynAt = alignUp(templateAt + image.template.length, 8);
  const size = dynAt + dynamic.length * 16;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);

  writeElfHeader(bytes, view, phnum);
  const ph = (index: number, type: number, flags: number, offset: number, filesz: number, memsz: number, al: number) =>
    writeProgramHeader(view, index, { type, flags, offset, filesz, memsz, align: al });
  const dynSize = dynamic.length * 16;
  ph(0, PT_LOAD, PF_R | PF_X, 0, wordsAt, wordsAt, PAGE);
  ph(1, PT_LOAD, PF_R | PF_W, wordsAt, size - wordsAt, size - wordsAt, PAGE);
  ph(2, PT_DYNAMIC, PF_R | PF_W, dynAt, dynSize, dynSize, 8);
  if (own) ph(3, PT_TLS, PF_R, templateAt, image.template.length, image.size, tlsAlign);
  bytes.set(WORD_FUNCTION, codeAt);
  // lea disp32(%rip): the displacement counts from the end of the lea (3 + 7 bytes in).
  view.setInt32(codeAt + 6, wordsAt - (codeAt + 10), true);

  bytes.set(sonameBytes, strAt + 1);
  names.forEach((n, i) => bytes.set(n, strAt + nameOffsets[i]!));
  writeSymbols(view, symAt, nameOffsets, { value: codeAt, size: WORD_FUNCTION.length });
  writeHash(view, hashAt, nbucket, names);
  relocations.forEach(([word, sym, type], i) => {
    const at = relaAt + i * RELA;
    set64(view, at, wordsAt + word * 8);
    view.setUint32(at + 8, type, true);
    view.setUint32(at + 12, sym, true);
  });
  bytes.set(image.template, templateAt);
  writeDynamic(view, dynAt, dynamic);
  return bytes;
}

/**
 * Reads the words the dynamic linker wrote, through `half(i)` (a call of jitmem_tls_word: the
 * i-th 32-bit half, signed). Thread-pointer offsets are negative.
 */
export async function readTlsWords(
  half: (i: number) => Promise<number>,
  image: TlsImage,
): Promise<{
  module: number;
  tpOffset: number;
  externals: Map<string, { module: number; offset: number; tpOffset: number }>;
}> {
  const values: number[] = [];
  for (let i = 0; i < tlsWordCount(image); i++) {
    const lo = (await half(2 * i)) >>> 0;
    const hi = await half(2 * i + 1);
    values.push(hi * 2 ** 32 + lo);
  }
  const externals = new Map<string, { module: number; offset: number; tpOffset: number }>();
  image.externals.forEach((x, i) =>
    externals.set(x.name, { module: values[2 + 3 * i]!, offset: values[3 + 3 * i]!, tpOffset: values[4 + 3 * i]! }),
  );
  return { module: values[0]!, tpOffset: values[1]!, externals };
}

/**
 * .dynsym: the null symbol, the word function (defined here), then the executor's thread-locals
 * (undefined, STT_TLS).
 */
function writeSymbols(
  view: DataView,
  symAt: number,
  nameOffsets: readonly number[],
  fn: { value: number; size: number },
): void {
  nameOffsets.forEach((name, i) => {
    const at = symAt + (i + 1) * SYM;
    view.setUint32(at, name, true);
    if (i === 0) {
      view.setUint8(at + 4, (STB_GLOBAL << 4) | STT_FUNC);
      view.setUint16(at + 6, DEFINED_HERE, true);
      set64(view, at + 8, fn.value);
      set64(view, at + 16, fn.size);
    } else {
      view.setUint8(at + 4, (STB_GLOBAL << 4) | STT_TLS);
    }
  });
}
