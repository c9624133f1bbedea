import { closeSync, fstatSync } from 'node:fs';
import { JitmemError } from '../core/errors.js';
import { openRegularFile } from '../core/files.js';
import { OBJECT_READ_LIMITS, readObjectInput } from '../core/object-kind.js';
import type { InputReader } from '../jitlink/link.js';
import { mapFile, mappedFileFaulted } from '../native/index.js';

/**
 * A link's input files mapped instead of read. Reading CPython's 11.8 MB archive into fresh
 * memory faulted in and zeroed 2,900 pages before copying into them, about 6 ms here, most of a
 * first link's read phase; a private read-only mapping shares the page cache's pages, and the
 * linker touches them for well under 1 ms (llvm-jitlink and the system linkers map their inputs
 * too). Each mapping lives as long as the views the linker keeps into it and is unmapped when
 * they are collected.
 *
 * What a read never risked, a mapping does: the file changing under it. A page the file lost
 * (truncated) reads as zeros, not SIGBUS (native/src/mapped_file.cc); and after the last read of
 * the inputs' bytes, `checkUnchanged` refuses the program if any file lost pages or changed size
 * or modification time since it was mapped (ERR_INPUT_CHANGED), so nothing built from a file
 * half rewritten runs. Its descriptors stay open until `close`, so that the check looks at the
 * file that was mapped even when the path now names another.
 */
export class MappedInputs {
  private readonly mapped: { file: string; fd: number; size: number; mtimeNs: bigint; view: Uint8Array }[] = [];

  /** The linker's InputReader: the file mapped, or read when it cannot be (empty, or no mapping to be had). */
  readonly read: InputReader = (file) => {
    const { fd, size } = openRegularFile(file, OBJECT_READ_LIMITS);
    let view: Uint8Array | undefined;
    let mtimeNs = 0n;
    try {
      mtimeNs = fstatSync(fd, { bigint: true }).mtimeNs;
      view = size > 0 ? mapFile(fd, size) : undefined;
    } catch {
      // A file system that does not map files: read it.
      view = undefined;
    }
    if (view === undefined) {
      closeSync(fd);
      return readObjectInput(file).bytes;
    }
    this.mapped.push({ file, fd, size, mtimeNs, view });
    return view;
  };

  /** Throws ERR_INPUT_CHANGED when a mapped file lost pages, or changed size or time, since it was mapped. */
  checkUnchanged(): void {
    for (const m of this.mapped) {
      const st = fstatSync(m.fd, { bigint: true });
      const what = mappedFileFaulted(m.view)
        ? 'pages of it were cut off'
        : st.size !== BigInt(m.size)
          ? `its size went from ${m.size} to ${st.size} bytes`
          : st.mtimeNs !== m.mtimeNs
            ? 'it was written'
            : undefined;
      if (what !== undefined) {
        throw new JitmemError(
          'ERR_INPUT_CHANGED',
          `${m.file} changed while it was being linked (${what}); nothing of it was run: link again once it is written`,
          { file: m.file },
        );
      }
    }
  }

  /** Closes the descriptors kept for checkUnchanged (the mappings stay while the linker's views do). */
  close(): void {
    for (const m of this.mapped.splice(0)) closeSync(m.fd);
  }
}
