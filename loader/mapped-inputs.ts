import { closeSync, statSync, type Stats } from 'node:fs';
import { JitmemError } from '../core/errors.js';
import { openRegularFile, readOpenedFile } from '../core/files.js';
import { OBJECT_READ_LIMITS, checkObjectKind } from '../core/object-kind.js';
import type { InputReader } from '../jitlink/link.js';
import { mapFile, mappedFileFaulted } from '../native/index.js';

/**
 * A link's input files mapped instead of read. Reading CPython's 11.8 MB archive into fresh
 * memory faulted in and zeroed 2,900 pages before copying into them, about 6 ms here, most of a
 * first link's read phase; a private read-only mapping shares the page cache's pages, and the
 * linker touches them for well under 1 ms (llvm-jitlink and the system linkers map their inputs
 * too). Each mapping lives as long as the views the linker keeps into it and is unmapped when
 * they are collected; no descriptor is kept (a link of thousands of objects must not run out).
 *
 * What a read never risked, a mapping does: the file changing under it. A page the file lost
 * (truncated) reads as zeros, not SIGBUS (native/src/mapped_file.cc); and after the last read of
 * the inputs' bytes, `checkUnchanged` refuses the program if any file lost pages, or its path now
 * names another file, or it changed size or modification time since it was mapped
 * (ERR_INPUT_CHANGED), so nothing built from a file half rewritten runs.
 */
export class MappedInputs {
  private readonly mapped: { readonly file: string; readonly identity: Stats; readonly view: Uint8Array }[] = [];

  /**
   * The linker's InputReader: the file mapped, or read from the same descriptor when it cannot be
   * (empty, or no mapping to be had), and then checked as reading checks it.
   */
  readonly read: InputReader = (file) => {
    const opened = openRegularFile(file, OBJECT_READ_LIMITS);
    try {
      let view: Uint8Array | undefined;
      try {
        view = opened.size > 0 ? mapFile(opened.fd, opened.size) : undefined;
      } catch {
        // A file system that does not map files: read it.
        view = undefined;
      }
      if (view === undefined) {
        const bytes = readOpenedFile(file, opened, OBJECT_READ_LIMITS);
        checkObjectKind(bytes, file);
        return bytes;
      }
      this.mapped.push({ file, identity: opened.stats, view });
      return view;
    } finally {
      closeSync(opened.fd);
    }
  };

  /** ERR_INPUT_CHANGED when a mapped file lost pages, was replaced, or changed size or time since it was mapped. */
  checkUnchanged(): void {
    for (const { file, identity, view } of this.mapped) {
      const now = statSync(file, { throwIfNoEntry: false });
      const what = mappedFileFaulted(view)
        ? 'pages of it were cut off'
        : now === undefined
          ? 'it was removed'
          : now.dev !== identity.dev || now.ino !== identity.ino
            ? 'its path names another file now'
            : now.size !== identity.size
              ? `its size went from ${identity.size} to ${now.size} bytes`
              : now.mtimeMs !== identity.mtimeMs
                ? 'it was written'
                : undefined;
      if (what !== undefined) {
        throw new JitmemError(
          'ERR_INPUT_CHANGED',
          `${file} changed while it was being linked (${what}); nothing of it was run: link again once it is written`,
          { file },
        );
      }
    }
  }
}
