import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  statSync,
  statfsSync,
  accessSync,
  type Stats,
} from 'node:fs';
import path from 'node:path';
import { JitmemError } from './errors.js';

/**
 * Files a command reads or writes, checked before a byte moves. A path can name a FIFO (whose
 * open waits for a writer forever), a device (/dev/zero never ends), a sparse file of
 * gigabytes, or a place in /proc or /sys where mkdir and write do not behave like a disk; each
 * of those is a typed error here, never a hang or an exhausted heap.
 */

const KIND: Array<[(s: Stats) => boolean, string]> = [
  [(s) => s.isFile(), 'a regular file'],
  [(s) => s.isDirectory(), 'a directory'],
  [(s) => s.isFIFO(), 'a FIFO (named pipe)'],
  [(s) => s.isCharacterDevice(), 'a character device'],
  [(s) => s.isBlockDevice(), 'a block device'],
  [(s) => s.isSocket(), 'a socket'],
];

function kindOf(s: Stats): string {
  return KIND.find(([is]) => is(s))?.[1] ?? 'neither a regular file nor a directory';
}

export interface ReadLimits {
  /** What the file is, for messages: "report", "object file". */
  readonly what: string;
  /** The largest size accepted, in bytes. */
  readonly maxBytes: number;
  /** How the limit reads in a message ("256 MiB"). */
  readonly limitText: string;
  /** Error code for an unreadable file or one that is not a regular file. */
  readonly unreadableCode: string;
  /** Error code for a file above the limit. */
  readonly tooLargeCode: string;
}

/** A regular file opened for reading: its descriptor (the caller closes it), size and fstat. */
export interface OpenedFile {
  readonly fd: number;
  readonly size: number;
  readonly stats: Stats;
}

/**
 * Opens a regular file of at most `maxBytes` bytes for reading and returns its descriptor, size
 * and fstat. The file is opened without blocking (a FIFO's open would wait for a
 * writer) and checked through the descriptor, so what is checked is what is then read or mapped.
 */
export function openRegularFile(file: string, limits: ReadLimits): OpenedFile {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const errno = (err as { code?: string }).code;
    const why =
      errno === 'ENOENT'
        ? 'no such file'
        : errno === 'EACCES'
          ? 'permission denied'
          : errno === 'ENOTDIR'
            ? 'a part of the path is not a directory'
            : (err as Error).message;
    throw new JitmemError(
      limits.unreadableCode,
      `cannot read ${limits.what} ${file}: ${why}`,
      { file, ...(errno ? { errno } : {}) },
      { cause: err },
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new JitmemError(limits.unreadableCode, `${limits.what} ${file} is ${kindOf(st)}; expected a regular file`, {
        file,
      });
    }
    if (st.size > limits.maxBytes) {
      throw new JitmemError(
        limits.tooLargeCode,
        `${limits.what} ${file} has ${st.size} bytes, above the limit of ${limits.maxBytes} bytes (${limits.limitText})`,
        { file, size: st.size, limit: limits.maxBytes },
      );
    }
    return { fd, size: st.size, stats: st };
  } catch (err) {
    closeSync(fd);
    throw asReadError(err, file, limits);
  }
}

/** A failure while reading `file`: our own errors as they are, any other as its unreadable code. */
function asReadError(err: unknown, file: string, limits: ReadLimits): JitmemError {
  if (err instanceof JitmemError) return err;
  return new JitmemError(
    limits.unreadableCode,
    `cannot read ${limits.what} ${file}: ${(err as Error).message}`,
    { file },
    { cause: err },
  );
}

/**
 * Reads a whole regular file (openRegularFile's checks); exactly the size fstat gave is read, so
 * a file that grows meanwhile cannot push past the limit.
 */
export function readRegularFile(file: string, limits: ReadLimits): Buffer {
  const opened = openRegularFile(file, limits);
  try {
    return readOpenedFile(file, opened, limits);
  } finally {
    closeSync(opened.fd);
  }
}

/** The whole of a file openRegularFile opened (its descriptor stays open), as many bytes as fstat gave. */
export function readOpenedFile(file: string, { fd, size }: OpenedFile, limits: ReadLimits): Buffer {
  try {
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, out, at, size - at, at);
      if (n === 0) break;
      at += n;
    }
    return at === size ? out : out.subarray(0, at);
  } catch (err) {
    throw asReadError(err, file, limits);
  }
}

/**
 * Checks that `file` names a regular file without opening it for long (a path handed to
 * another program, such as a library the executor will dlopen): a FIFO would block that
 * program, a device would feed it forever.
 */
export function checkRegularFile(file: string, what: string, code: string): void {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    const errno = (err as { code?: string }).code;
    throw new JitmemError(
      code,
      `cannot read ${what} ${file}: ${errno === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      { file, ...(errno ? { errno } : {}) },
      { cause: err },
    );
  }
  if (!st.isFile()) throw new JitmemError(code, `${what} ${file} is ${kindOf(st)}; expected a regular file`, { file });
}

/** Filesystems that look like directories but hold no files of ours (statfs f_type). */
const VIRTUAL_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0xcafe4a11, 'bpf'],
  [0x6e736673, 'nsfs'],
  [0x1cd1, 'devpts'],
]);

function outputError(what: string, file: string, why: string, cause?: unknown): JitmemError {
  return new JitmemError(
    'ERR_OUTPUT_UNWRITABLE',
    `cannot write ${what} to ${file}: ${why}`,
    { file },
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Makes sure `dir` exists as a writable directory on a real filesystem, creating the missing
 * levels one by one (never Node's recursive mkdir, which spins forever under /proc). With
 * `create: false` only checks that it could: the nearest existing level is a writable
 * directory on a real filesystem.
 */
export function ensureOutputDirectory(
  dir: string,
  what: string,
  target = dir,
  options: { create?: boolean } = {},
): void {
  const absolute = path.resolve(target);
  const missing: string[] = [];
  let at = path.resolve(dir);
  let st: Stats | undefined;
  for (;;) {
    try {
      st = statSync(at);
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ENOENT') throw outputError(what, absolute, `${at}: ${(err as Error).message}`, err);
      const parent = path.dirname(at);
      if (parent === at) throw outputError(what, absolute, 'no part of the path exists');
      missing.push(at);
      at = parent;
    }
  }
  if (!st.isDirectory()) throw outputError(what, absolute, `${at} is ${kindOf(st)}, not a directory`);
  let fsType: number | undefined;
  try {
    fsType = Number(statfsSync(at).type);
  } catch {
    // statfs unavailable: the mkdir and write below still fail with a clear errno.
  }
  const virtual = fsType === undefined ? undefined : VIRTUAL_FILESYSTEMS.get(fsType);
  if (virtual) throw outputError(what, absolute, `${at} is on ${virtual}, a virtual filesystem that holds no files`);
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw outputError(
      what,
      absolute,
      `directory ${at} is not writable (${(err as { code?: string }).code ?? (err as Error).message})`,
      err,
    );
  }
  if (options.create === false) return;
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      mkdirSync(missing[i]!, { mode: 0o777 });
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST' && statSync(missing[i]!).isDirectory()) continue;
      throw outputError(what, absolute, `cannot create directory ${missing[i]}: ${(err as Error).message}`, err);
    }
  }
}

export interface OutputFileOptions {
  /**
   * Create the file's missing directories (the default output folder, made on first use).
   * Without it (a path the user gave) a missing directory is an error naming it: a typo in
   * --out should not silently grow a tree of directories.
   */
  readonly createDirectories?: boolean;
}

/**
 * Checks, before any work is done, that `file` can be written: its directory exists (or, with
 * createDirectories, can be created) on a real filesystem, and the file itself is absent or a
 * regular file.
 */
export function checkOutputFile(file: string, what: string, options: OutputFileOptions = {}): void {
  const absolute = path.resolve(file);
  let st: Stats | undefined;
  try {
    st = lstatSync(absolute);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT' && (err as { code?: string }).code !== 'ENOTDIR')
      throw outputError(what, absolute, (err as Error).message, err);
  }
  if (st && !st.isFile() && !st.isSymbolicLink())
    throw outputError(what, absolute, `it is ${kindOf(st)}; expected a regular file or a new name`);
  if (st?.isSymbolicLink()) {
    const target = statSync(absolute, { throwIfNoEntry: false });
    if (target && !target.isFile())
      throw outputError(what, absolute, `it links to ${kindOf(target)}; expected a regular file`);
  }
  const dir = path.dirname(absolute);
  if (!options.createDirectories) {
    // A path under /proc or below a file says so first; then a missing directory is named.
    ensureOutputDirectory(dir, what, absolute, { create: false });
    let missing = false;
    try {
      missing = statSync(dir, { throwIfNoEntry: false }) === undefined;
    } catch {
      // ENOTDIR and the like: ensureOutputDirectory names the part that is not a directory.
    }
    if (missing) {
      throw new JitmemError(
        'ERR_OUTPUT_DIRECTORY_MISSING',
        `cannot write ${what} to ${absolute}: directory ${dir} does not exist (create it first: mkdir -p ${dir})`,
        { file: absolute, dir },
      );
    }
  }
  ensureOutputDirectory(dir, what, absolute);
}
