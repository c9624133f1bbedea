import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitmemError } from '../core/errors.js';
import type { TlsBinding, TlsImage } from '../jitlink/link.js';
import { failAfterCleanup } from './cleanup.js';
import type { ProgramTarget } from './program-target.js';
import { buildTlsLibrary, readTlsWords, TLS_WORD_FUNCTION } from './tls-library.js';

/** The program's TLS library, open in the executor. */
export interface LoadedTls {
  readonly binding: TlsBinding;
  /** Closes the library: every thread's copy of the image goes with it. False where the executor cannot close it. */
  close(): Promise<boolean>;
}

/**
 * Hands the program's TLS image to the executor's dynamic linker (see tls-library.ts) and
 * reads back where it put it. The library is written to a temporary file, removed as soon as
 * the executor has opened it (the executor must share this machine, as for --preload).
 */
export async function loadTls(target: ProgramTarget, image: TlsImage): Promise<LoadedTls> {
  const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const file = path.join(tmpdir(), `jitmem-tls-${tag}.so`);
  writeFileSync(file, buildTlsLibrary(`jitmem-tls-${tag}.so`, image), { mode: 0o600 });
  let handle: number;
  try {
    handle = await target.openLibrary(file);
  } catch (err) {
    const message = (err as Error).message;
    // glibc keeps a fixed surplus of static TLS for libraries opened later.
    const hint = /static TLS/.test(message)
      ? `; static TLS for libraries opened after start-up is a few hundred bytes unless the executor starts with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=${Math.max(4096, 2 ** Math.ceil(Math.log2(image.size + 1)))}`
      : '';
    throw new JitmemError(
      'ERR_LINK_TLS_LOAD',
      `the executor's dynamic linker refused the program's thread-local storage (a ${image.size}-byte image${image.externals.length > 0 ? `, and ${image.externals.map((x) => x.name).join(', ')} of the executor` : ''}): ${message}${hint}`,
      { size: image.size },
      { cause: err },
    );
  } finally {
    rmSync(file, { force: true });
  }
  try {
    const [word] = await target.symbolsIn(handle, [TLS_WORD_FUNCTION]);
    if (!word)
      throw new JitmemError(
        'ERR_LINK_TLS_LOAD',
        `the program's TLS library opened, but ${TLS_WORD_FUNCTION} is not found in it`,
        {},
      );
    const binding = await readTlsWords((i) => target.callInt32(word, i), image);
    return { binding, close: () => target.closeLibrary(handle) };
  } catch (err) {
    return failAfterCleanup(err, () => target.closeLibrary(handle));
  }
}
