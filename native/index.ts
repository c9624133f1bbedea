import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import { JitmemError } from '../core/errors.js';
import { osCounts } from '../core/cost-counters.js';
import { alignDown, alignUp, checkAddress, checkProtection, checkSize } from '../core/checks.js';

/**
 * The one loader of the native addon, and the typed shell over it. Argument checks live here,
 * where they read well; the addon only wraps syscalls and holds the C ABI shims that must be C
 * (wrapper-function calls, alloc actions, JIT dispatch). A failing syscall throws an Error with
 * `code` = errno name (ENOMEM, EINVAL, ...) and `syscall`, as Node's own errors do.
 */

interface RawAddon {
  pageSize(): number;
  reserve(length: number, prot: number): number;
  protect(address: number, length: number, prot: number): void;
  unmap(address: number, length: number): void;
  advise(address: number, length: number, advice: number): void;
  view(address: number, length: number): Uint8Array;
  detach(view: Uint8Array | ArrayBuffer): void;
  copyIn(address: number, source: Uint8Array): void;
  copyOut(address: number, destination: Uint8Array): void;
  fill(address: number, length: number, byte: number): void;
  move(destination: number, source: number, length: number): void;
  shmCreate(name: string, size: number): number;
  shmOpen(name: string): number;
  shmUnlink(name: string): void;
  fdSize(fd: number): number;
  mapShared(fd: number, length: number, prot: number): number;
  mapFile(fd: number, length: number): Uint8Array | undefined;
  mappedFileFaulted(view: Uint8Array): boolean;
  closeFd(fd: number): void;
  flushICache(address: number, length: number): void;
  syncCore(): boolean;
  call(address: number, args: Array<number | bigint>): bigint;
  callWrapper(address: number, args: Uint8Array): Uint8Array;
  actionAddresses(): ActionAddresses;
  setAffinity(pid: number, cpus: number[]): void;
  setSendBuffer(fd: number, bytes: number): number;
  getAffinity(pid: number): number[];
  currentCpu(): number;
  machineSpeedWalk(): MachineSpeedWalk;
  dlopen(path: string): number;
  dlsym(handle: number, name: string): number;
  dlclose(handle: number): void;
  registerFrame(address: number): void;
  deregisterFrame(address: number): void;
  unwindProbe(): number;
  peerCredentials(fd: number): PeerCredentials;
  callAsync(address: number, kind: number, arg: number | string[]): Promise<number>;
  dispatchStart(handler: (tag: number, args: Uint8Array, request: DispatchRequest) => void): number;
  dispatchReply(request: DispatchRequest, result: Uint8Array | null, error?: string): void;
  dispatchStop(): void;
  runProgram(main: number, argv: string[], init: number[], fini: number[]): Promise<ProgramResult>;
  programRuntime(): Record<string, number>;
  setBlocking(fd: number): boolean;
  reserveWithin(length: number, prot: number, lo: number, hi: number): number;
  mapSharedWithin(fd: number, length: number, prot: number, lo: number, hi: number): number;
  spawnChild(file: string, argv: string[], pipes: number[], inherit: number[]): SpawnedChild;
  waitChild(pid: number): Promise<RawChildExit>;
}

interface RawChildExit {
  exitStatus: number | null;
  signal: number | null;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled code runs from dist/native/, sources from native/: the package root (binding.gyp,
// build/, prebuilds/) is above either.
const packageRoot =
  [path.resolve(here, '../..'), path.resolve(here, '..')].find((d) => existsSync(path.join(d, 'binding.gyp'))) ??
  path.resolve(here, '../..');

/**
 * Where the addon is: node-gyp-build's rule, as at install: a build from source
 * (build/Release) when there is one, else the prebuilt binary shipped for this platform
 * (prebuilds/linux-x64/, made by prebuildify; one Node-API build serves every Node >= 20).
 */
function addonFile(): string {
  // The build from source, checked directly: node-gyp-build's own module and its folder scans
  // cost ~1 ms of every `jitmem run`; it still decides everything else (prebuilds, PREBUILDS_ONLY).
  const built = path.join(packageRoot, 'build', 'Release', 'jitmem_native.node');
  if (!process.env.PREBUILDS_ONLY && existsSync(built)) return built;
  try {
    const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string };
    return nodeGypBuild.resolve(packageRoot);
  } catch (err) {
    throw new JitmemError(
      'ERR_NATIVE_NOT_BUILT',
      `jitmem's native addon has no prebuilt binary for ${process.platform}-${process.arch} in ${path.join(packageRoot, 'prebuilds')} and is not built in ${path.join(packageRoot, 'build', 'Release')} (jitmem_native.node). ` +
        `Build it from source with 'npm rebuild jitmem' (node-gyp; needs python3, make and a C++ compiler), or 'npm ci' in a checkout.`,
      { packageRoot },
      { cause: err },
    );
  }
}

/**
 * A native program shipped with the package (the executor): the one built from source
 * (build/Release/NAME) when there is one, else the one prebuilt for this platform
 * (prebuilds/PLATFORM-ARCH/NAME, put there at `npm pack` beside the addon's prebuild), in the
 * order node-gyp-build looks for the addon. Undefined when neither exists.
 */
export function nativeProgramPath(name: string): string | undefined {
  return [
    path.join(packageRoot, 'build', 'Release', name),
    path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, name),
  ].find((f) => existsSync(f));
}

/**
 * The native executor program (`jitmem-executor`, built beside the addon by the same node-gyp
 * run, or shipped prebuilt under prebuilds/), or an ERR_NATIVE_NOT_BUILT error naming where it
 * was looked for.
 */
export function executorBinary(): string {
  const file = nativeProgramPath('jitmem-executor');
  if (!file) {
    const places = [
      path.join(packageRoot, 'build', 'Release'),
      path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`),
    ];
    throw new JitmemError(
      'ERR_NATIVE_NOT_BUILT',
      `jitmem's native executor is not built (looked for jitmem-executor in ${places.join(' and ')}). ` +
        `Build it from source with 'npm rebuild jitmem' (node-gyp; needs python3, make and a C++ compiler), or 'npm ci' in a checkout.`,
      { candidates: places.map((d) => path.join(d, 'jitmem-executor')) },
    );
  }
  return file;
}

function load(): RawAddon {
  const file = addonFile();
  try {
    return createRequire(import.meta.url)(file) as RawAddon;
  } catch (err) {
    throw new JitmemError(
      'ERR_NATIVE_LOAD_FAILED',
      `jitmem's native addon at ${file} failed to load: ${(err as Error).message}. ` +
        `Rebuild it from source with 'npm rebuild jitmem' (or 'npm ci' in a checkout).`,
      { file },
      { cause: err },
    );
  }
}

let addon: RawAddon | undefined;
function raw(): RawAddon {
  return (addon ??= load());
}

export const PROT_NONE = 0;
export const PROT_R = 1;
export const PROT_W = 2;
export const PROT_X = 4;
export const PROT_RW = PROT_R | PROT_W;

let cachedPageSize: number | undefined;

/** The system page size in bytes. */
export function pageSize(): number {
  return (cachedPageSize ??= raw().pageSize());
}

/** Reserves `length` bytes of anonymous address space (MAP_NORESERVE) with protection `prot`. */
export function reserve(length: number, prot: number = PROT_RW): number {
  checkSize('length', length, 1);
  checkProtection('prot', prot);
  const address = raw().reserve(length, prot);
  osCounts.mmap++;
  return address;
}

/** Changes the protection of [address, address+length); address must be page-aligned. */
export function protect(address: number, length: number, prot: number): void {
  checkAddress('address', address);
  checkSize('length', length);
  checkProtection('prot', prot);
  if (address % pageSize() !== 0) {
    throw new JitmemError(
      'ERR_UNALIGNED_ADDRESS',
      `protect: address 0x${address.toString(16)} is not page-aligned (page size ${pageSize()})`,
      { address },
    );
  }
  if (length > 0) {
    raw().protect(address, length, prot);
    osCounts.mprotect++;
  }
}

/** Unmaps [address, address+length). Every view of the range must be detached first. */
export function unmap(address: number, length: number): void {
  checkAddress('address', address);
  checkSize('length', length, 1);
  raw().unmap(address, length);
  osCounts.munmap++;
}

/** madvise(2) advice a slab may give for pages it no longer uses (Linux's values). */
export const MADV = {
  /** Drop the pages from this mapping: private anonymous pages read back as zeros; shared ones
   * keep their content in the object and come back with a minor fault. */
  DONTNEED: 4,
  /** Private anonymous pages only: the kernel may take them back under memory pressure; until
   * then they stay (EINVAL on a shared mapping). */
  FREE: 8,
  /** Shared memory: free the object's pages (they read back as zeros). */
  REMOVE: 9,
} as const;
export type Advice = (typeof MADV)[keyof typeof MADV];

/** madvise(address, length, advice) over page-aligned [address, address+length). */
export function advise(address: number, length: number, advice: Advice): void {
  checkAddress('address', address);
  checkSize('length', length, 1);
  if (!(Object.values(MADV) as number[]).includes(advice)) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `advise: advice ${String(advice)} is not one of ${Object.entries(MADV)
        .map(([k, v]) => `MADV_${k} (${v})`)
        .join(', ')}`,
      { advice },
    );
  }
  if (address % pageSize() !== 0) {
    throw new JitmemError(
      'ERR_UNALIGNED_ADDRESS',
      `advise: address 0x${address.toString(16)} is not page-aligned (page size ${pageSize()})`,
      { address },
    );
  }
  raw().advise(address, length, advice);
}

/**
 * A zero-copy Uint8Array over [address, address+length) of this process. It does not own the
 * memory: detach it (see `detach`) before the pages lose write access or are unmapped.
 */
export function view(address: number, length: number): Uint8Array {
  checkAddress('address', address);
  checkSize('length', length);
  return raw().view(address, length);
}

/** Detaches a view so that it can no longer reach native memory: it then has length 0. */
export function detach(v: Uint8Array | ArrayBuffer): void {
  raw().detach(v);
}

/** memcpy(address, source). */
export function copyIn(address: number, source: Uint8Array): void {
  checkAddress('address', address);
  raw().copyIn(address, source);
  osCounts.bytesCopied += source.length;
}

/** memcpy(destination, address). */
export function copyOut(address: number, destination: Uint8Array): void {
  checkAddress('address', address);
  raw().copyOut(address, destination);
  osCounts.bytesCopied += destination.length;
}

/** memset(address, byte, length). */
export function fill(address: number, length: number, byte = 0): void {
  checkAddress('address', address);
  checkSize('length', length);
  raw().fill(address, length, byte & 0xff);
}

/** memmove(destination, source, length), both addresses of this process. */
export function move(destination: number, source: number, length: number): void {
  checkAddress('destination', destination);
  checkAddress('source', source);
  checkSize('length', length);
  raw().move(destination, source, length);
  osCounts.bytesCopied += length;
}

function checkShmName(name: string): void {
  if (typeof name !== 'string' || !/^\/[^/\0]{1,250}$/.test(name)) {
    throw new JitmemError(
      'ERR_INVALID_SHM_NAME',
      `a shared-memory name must be "/" followed by 1 to 250 characters other than "/"; got ${JSON.stringify(name)}`,
      { name },
    );
  }
}

/** Creates a new POSIX shared-memory object of `size` bytes (O_EXCL) and returns its fd. */
export function shmCreate(name: string, size: number): number {
  checkShmName(name);
  checkSize('size', size, 1);
  const fd = raw().shmCreate(name, size);
  osCounts.shmCreated++;
  return fd;
}

/** Opens an existing POSIX shared-memory object read-write and returns its fd. */
export function shmOpen(name: string): number {
  checkShmName(name);
  return raw().shmOpen(name);
}

/** Removes a shared-memory object's name; mappings stay valid until unmapped. */
export function shmUnlink(name: string): void {
  checkShmName(name);
  raw().shmUnlink(name);
}

/** The size of the file behind an fd (fstat). */
export function fdSize(fd: number): number {
  checkSize('fd', fd);
  return raw().fdSize(fd);
}

/** mmap(NULL, length, prot, MAP_SHARED, fd, 0). */
export function mapShared(fd: number, length: number, prot: number = PROT_RW): number {
  checkSize('fd', fd);
  checkSize('length', length, 1);
  checkProtection('prot', prot);
  const address = raw().mapShared(fd, length, prot);
  osCounts.mmap++;
  return address;
}

/**
 * The first `length` bytes of an open file as a Uint8Array over a private read-only mapping,
 * unmapped when the array is collected (mapped_file.cc); undefined when the addon guards as many
 * mappings as it can (read the file instead). A page the file no longer has (it was truncated)
 * reads as zeros instead of raising SIGBUS, and mappedFileFaulted says so.
 */
export function mapFile(fd: number, length: number): Uint8Array | undefined {
  checkSize('fd', fd);
  checkSize('length', length, 1);
  const view = raw().mapFile(fd, length);
  if (view !== undefined) osCounts.mmap++;
  return view;
}

/** Whether the file under a mapFile view lost pages under the mapping (they read as zeros since). */
export function mappedFileFaulted(view: Uint8Array): boolean {
  return raw().mappedFileFaulted(view);
}

export function closeFd(fd: number): void {
  checkSize('fd', fd);
  raw().closeFd(fd);
}

/** Makes freshly written code in [address, address+length) visible to instruction fetch. */
export function flushICache(address: number, length: number): void {
  checkAddress('address', address);
  checkSize('length', length);
  raw().flushICache(address, length);
  osCounts.icacheFlushes++;
}

/**
 * Serializes the instruction stream of every thread of this process (membarrier SYNC_CORE):
 * after it returns, no thread runs instructions fetched before the call. Returns false where the
 * kernel lacks the command.
 */
export function syncCore(): boolean {
  return raw().syncCore();
}

/**
 * Rewrites code in place, a batch of patches inside one run of pages of this process whose
 * protection is `prot`: the pages from the first patch to the last get one write window (RW,
 * not RWX, so W^X holds), the bytes go in, the protection comes back whatever happened, and
 * executable pages get their instruction cache flushed. The in-process mapper and the executor
 * both patch through here.
 */
export function patchInPlace(
  patches: ReadonlyArray<{ readonly address: number; readonly bytes: Uint8Array }>,
  prot: number,
): void {
  if (patches.length === 0) return;
  const page = pageSize();
  let low = Number.POSITIVE_INFINITY;
  let high = 0;
  for (const p of patches) {
    low = Math.min(low, p.address);
    high = Math.max(high, p.address + p.bytes.length);
  }
  const first = alignDown(low, page);
  const length = alignUp(high, page) - first;
  protect(first, length, PROT_RW);
  try {
    for (const p of patches) copyIn(p.address, p.bytes);
  } finally {
    protect(first, length, prot);
  }
  if (prot & PROT_X) for (const p of patches) flushICache(p.address, p.bytes.length);
}

function checkArgs(args: ReadonlyArray<number | bigint>): Array<number | bigint> {
  if (args.length > 6) {
    throw new JitmemError(
      'ERR_TOO_MANY_ARGUMENTS',
      `native calls take at most 6 integer arguments; got ${args.length}`,
      { count: args.length },
    );
  }
  for (const [i, a] of args.entries()) {
    if (typeof a === 'bigint' ? a < -(2n ** 63n) || a >= 2n ** 64n : !Number.isSafeInteger(a)) {
      throw new JitmemError(
        'ERR_INVALID_ARGUMENT',
        `argument ${i} must be a safe integer or a 64-bit bigint; got ${String(a)}`,
        { index: i },
      );
    }
  }
  return [...args];
}

/** Calls the code at `address` as int64_t f(int64_t...) and returns the full 64-bit result. */
export function call(address: number, ...args: Array<number | bigint>): bigint {
  checkAddress('address', address);
  return raw().call(address, checkArgs(args));
}

/** Calls the code at `address` as int32_t f(int64_t...): the result is the low 32 bits, signed. */
export function callInt32(address: number, ...args: Array<number | bigint>): number {
  return Number(BigInt.asIntN(32, call(address, ...args)));
}

/**
 * Calls `address` with LLVM's C wrapper-function ABI and returns its result bytes. An
 * out-of-band error from the wrapper throws with code ERR_WRAPPER_OUT_OF_BAND.
 */
export function callWrapper(address: number, args: Uint8Array): Uint8Array {
  checkAddress('address', address);
  return raw().callWrapper(address, args);
}

/**
 * Addresses of the alloc-action functions built into the addon (C wrapper-function ABI, each
 * returning an SPSError). They run wherever the addon is loaded: in this process for the
 * in-process mapper, in the jitmem executor for the remote ones.
 * - registerEHFrame / deregisterEHFrame: args SPSExecutorAddrRange of an .eh_frame section.
 * - trace: args (addr log, u64 capacity, u64 value); appends value to a u64 log in target memory.
 * - fail: always returns an error.
 */
export interface ActionAddresses {
  readonly registerEHFrame: number;
  readonly deregisterEHFrame: number;
  readonly trace: number;
  readonly fail: number;
}

let cachedActions: ActionAddresses | undefined;
export function actionAddresses(): ActionAddresses {
  return (cachedActions ??= Object.freeze(raw().actionAddresses()));
}

/**
 * Asks for a socket send buffer of `bytes` (SO_SNDBUFFORCE when the process may, else SO_SNDBUF
 * up to the sysctl cap) and returns what the kernel granted (it doubles the request for its
 * own bookkeeping).
 */
export function setSendBuffer(fd: number, bytes: number): number {
  checkSize('fd', fd);
  checkSize('bytes', bytes, 1);
  return raw().setSendBuffer(fd, bytes);
}

/** A child of spawnChild: its pid, and this process's end of each of its pipes, in the order asked. */
export interface SpawnedChild {
  readonly pid: number;
  readonly fds: readonly number[];
}

/** How a child of spawnChild ended: its exit status, or the signal that ended it. */
export interface ChildExit {
  readonly exitStatus: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Starts `file` with `argv` (argv[0] included) by posix_spawn, which does not copy this process's
 * page tables as libuv's fork() does (native/src/spawn.cc says what that cost). Each child fd in
 * `pipes` gets one end of a Unix socket pair, this process the other (returned in the same
 * order); fds 0-2 in `inherit` are this process's own, the other fds 0-2 not in `pipes` are
 * /dev/null; other fds pass as through child_process (those without close-on-exec). The caller
 * must reap the child with waitChild, and owns the returned fds.
 */
export function spawnChild(
  file: string,
  argv: readonly string[],
  pipes: readonly number[],
  inherit: readonly number[] = [],
): SpawnedChild {
  if (typeof file !== 'string' || file === '' || file.includes('\0'))
    throw new JitmemError('ERR_INVALID_ARGUMENT', `spawnChild needs a file path; got ${JSON.stringify(file)}`, {});
  if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string' || a.includes('\0')))
    throw new JitmemError('ERR_INVALID_ARGUMENT', 'spawnChild needs argv: one or more strings without NUL bytes', {
      file,
    });
  for (const fd of pipes) checkSize('pipe fd', fd);
  if (new Set(pipes).size !== pipes.length || pipes.some((fd) => fd > 1023))
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `spawnChild pipes must be distinct fds 0-1023; got ${pipes.join(', ')}`,
      { pipes: [...pipes] },
    );
  if (inherit.some((fd) => ![0, 1, 2].includes(fd) || pipes.includes(fd)))
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `spawnChild inherits only fds 0, 1 and 2 that are not pipes; got ${inherit.join(', ')} with pipes ${pipes.join(', ')}`,
      { inherit: [...inherit] },
    );
  try {
    return raw().spawnChild(file, [...argv], [...pipes], [...inherit]);
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'UNKNOWN';
    throw new JitmemError(
      'ERR_SPAWN',
      `cannot start ${file}: ${(e as Error).message}`,
      { file, errno: code },
      { cause: e },
    );
  }
}

/**
 * Settles once a child of spawnChild has ended and been reaped (by one thread of the addon for all
 * of them, not libuv's pool); until then the child keeps the event loop alive.
 */
export async function waitChild(pid: number): Promise<ChildExit> {
  checkSize('pid', pid, 1);
  const r = await raw().waitChild(pid);
  const signal =
    r.signal === null
      ? null
      : ((Object.entries(osConstants.signals).find(([, n]) => n === r.signal)?.[0] ??
          `SIG${r.signal}`) as NodeJS.Signals);
  return { exitStatus: r.exitStatus, signal };
}

/** Pins process `pid` (0 = this one) to the given CPUs. */
export function setAffinity(pid: number, cpus: readonly number[]): void {
  checkSize('pid', pid);
  if (cpus.length === 0) throw new JitmemError('ERR_INVALID_ARGUMENT', 'setAffinity needs at least one CPU', {});
  for (const c of cpus) checkSize('cpu', c);
  raw().setAffinity(pid, [...cpus]);
}

/** The CPUs process `pid` (0 = this one) may run on. */
export function getAffinity(pid = 0): number[] {
  checkSize('pid', pid);
  return raw().getAffinity(pid);
}

/** The CPU this thread is running on right now. */
export function currentCpu(): number {
  return raw().currentCpu();
}

/** One timing of a fixed piece of work (machine_speed.cc). */
export interface MachineSpeedWalk {
  /** Nanoseconds the walk took, and this thread's CPU time over it. */
  readonly wallNs: number;
  readonly cpuNs: number;
  /** The buffer walked, a cache line at a time, and how many times. */
  readonly bytes: number;
  readonly passes: number;
}

/**
 * Times a fixed walk over 4 MiB (read and write a byte of each cache line, 24 passes; 1.4-6 ms on a
 * 2-vCPU EPYC VM): how fast this thread can run at this moment, apart from any code of the caller's.
 */
export function machineSpeedWalk(): MachineSpeedWalk {
  return raw().machineSpeedWalk();
}

/** dlopen(path, RTLD_NOW|RTLD_GLOBAL); "" opens the process's global symbol scope. */
export function dlopen(libraryPath: string): number {
  if (typeof libraryPath !== 'string') throw new JitmemError('ERR_INVALID_ARGUMENT', 'dlopen takes a path string', {});
  return raw().dlopen(libraryPath);
}

/** The address of `name` in a dlopen handle, or 0 when it is not defined there. */
export function dlsym(handle: number, name: string): number {
  checkAddress('handle', handle);
  return raw().dlsym(handle, name);
}

/** dlclose(handle): the library is unloaded once every open of it has been closed. */
export function dlclose(handle: number): void {
  checkAddress('handle', handle);
  raw().dlclose(handle);
}

/** Registers an .eh_frame section with the process's unwinder (libgcc __register_frame). */
export function registerFrame(address: number): void {
  checkAddress('address', address);
  raw().registerFrame(address);
}

export function deregisterFrame(address: number): void {
  checkAddress('address', address);
  raw().deregisterFrame(address);
}

/**
 * Walks this thread's stack through the process's unwinder and returns how many frames it
 * found. Each lookup reads every EH frame registered with registerFrame that the unwinder has
 * not parsed yet, exactly as a C++ exception would, without throwing one.
 */
export function unwindProbe(): number {
  return raw().unwindProbe();
}

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** SO_PEERCRED of a connected Unix socket: who is at the other end. */
export function peerCredentials(fd: number): PeerCredentials {
  checkSize('fd', fd);
  return raw().peerCredentials(fd);
}

/**
 * Runs JIT'd code on a libuv pool thread and resolves with its return value, so the event loop
 * keeps running meanwhile (the executor goes on serving its controller, and JIT dispatch can
 * reach it). The caller must keep the code mapped and executable until the promise settles.
 */
export function callInt32Async(address: number, arg: number): Promise<number> {
  checkAddress('address', address);
  if (!Number.isInteger(arg) || arg < -(2 ** 31) || arg >= 2 ** 31) {
    throw new JitmemError(
      'ERR_INVALID_ARGUMENT',
      `an int32 argument must be an integer in [-2^31, 2^31); got ${String(arg)}`,
      { arg },
    );
  }
  return raw().callAsync(address, 0, arg);
}

/** int32_t f(void) on a pool thread; see callInt32Async. */
export function callVoidAsync(address: number): Promise<number> {
  checkAddress('address', address);
  return raw().callAsync(address, 1, 0);
}

/** int main(argc, argv, envp) on a pool thread with exactly the given argv; see callInt32Async. */
export function callMainAsync(address: number, argv: readonly string[]): Promise<number> {
  checkAddress('address', address);
  return raw().callAsync(address, 2, [...argv]);
}

/** A JIT dispatch call waiting for its answer (opaque). */
export type DispatchRequest = { readonly __brand: 'DispatchRequest' };

/**
 * Starts JIT dispatch (docs/wire-protocol.md §5.7): returns the address of a C function with the
 * signature of __llvm_orc_SimpleRemoteEPC_dispatch_fn. Code running through the *Async calls that
 * calls it blocks while `handler(tag, args, request)` runs on the main thread; answer each request
 * exactly once with dispatchReply. Calls from the main thread itself fail at once with an
 * out-of-band error instead of deadlocking.
 */
export function dispatchStart(handler: (tag: number, args: Uint8Array, request: DispatchRequest) => void): number {
  if (typeof handler !== 'function')
    throw new JitmemError('ERR_INVALID_ARGUMENT', 'dispatchStart takes a handler function', {});
  return raw().dispatchStart(handler);
}

/** Answers a dispatch request with result bytes, or with an out-of-band error message. */
export function dispatchReply(
  request: DispatchRequest,
  result: Uint8Array | null,
  error = 'jit_dispatch failed',
): void {
  raw().dispatchReply(request, result, error);
}

/** Stops JIT dispatch: later calls get an out-of-band error at once. */
export function dispatchStop(): void {
  raw().dispatchStop();
}

/** How a program run by runProgram ended. */
export interface ProgramResult {
  /** main's return value or exit()'s argument (low 8 bits matter to a shell). */
  readonly status: number;
  readonly outcome: 'returned' | 'exited' | 'crashed';
  /** For a crash: the signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE), the faulting address and the pc. */
  readonly signal: number;
  readonly faultAddress: number;
  readonly pc: number;
}

/**
 * Runs a linked program in this process on a thread of its own with an 8 MiB stack: `init`
 * functions (called as f(argc, argv, envp)), then main(argc, argv, envp), then the handlers
 * the program registered through the runtime's atexit/__cxa_atexit, then `fini` functions.
 * exit() bound to the runtime's exit ends the program with its status; a fault on the
 * program's thread ends it as "crashed". One program runs at a time per process.
 */
export function runProgram(
  main: number,
  argv: readonly string[],
  init: readonly number[] = [],
  fini: readonly number[] = [],
): Promise<ProgramResult> {
  checkAddress('main', main);
  for (const a of [...init, ...fini]) checkAddress('init/fini function', a);
  return raw().runProgram(main, [...argv], [...init], [...fini]);
}

export type ProgramRuntimeName = 'exit' | 'atexit' | '__cxa_atexit' | 'dlopen' | 'dlclose';

/**
 * Addresses of the runtime functions a program's exit, atexit, __cxa_atexit, dlopen and
 * dlclose bind to (the runtime closes what the program left open once it has ended).
 */
export function programRuntime(): Readonly<Record<ProgramRuntimeName, number>> {
  return raw().programRuntime() as Record<ProgramRuntimeName, number>;
}

/** Clears O_NONBLOCK on `fd`; true when it was set. */
export function setBlocking(fd: number): boolean {
  checkSize('fd', fd);
  return raw().setBlocking(fd);
}

function checkWindow(lo: number, hi: number, length: number): void {
  checkAddress('lo', lo);
  checkAddress('hi', hi);
  if (hi <= lo || hi - lo < length) {
    throw new JitmemError(
      'ERR_INVALID_WINDOW',
      `the window [0x${lo.toString(16)}, 0x${hi.toString(16)}) cannot hold ${length} bytes`,
      { lo, hi, length },
    );
  }
}

/**
 * reserve(), but inside [lo, hi): the highest free range there that fits (64 KiB aligned),
 * mapped without ever replacing an existing mapping. ERR_NO_ROOM_IN_WINDOW when none fits.
 */
export function reserveWithin(length: number, prot: number, lo: number, hi: number): number {
  checkSize('length', length, 1);
  checkProtection('prot', prot);
  checkWindow(lo, hi, length);
  const address = raw().reserveWithin(length, prot, lo, hi);
  // One mmap that succeeds (a rare race with another mapping costs a retry, not counted).
  osCounts.mmap++;
  return address;
}

/** mapShared(), but inside [lo, hi); see reserveWithin. */
export function mapSharedWithin(fd: number, length: number, prot: number, lo: number, hi: number): number {
  checkSize('fd', fd);
  checkSize('length', length, 1);
  checkProtection('prot', prot);
  checkWindow(lo, hi, length);
  const address = raw().mapSharedWithin(fd, length, prot, lo, hi);
  osCounts.mmap++;
  return address;
}
