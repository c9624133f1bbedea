import { lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import * as native from '../native/index.js';
import { JitmemError } from '../core/errors.js';
import { challengePeer, checkToken, newToken } from '../protocol/auth.js';
import { MIN_UNSENT_BYTES } from '../protocol/channel.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../protocol/frame.js';
import { DEFAULT_MAX_UNSENT_BYTES, Executor } from './executor.js';

/**
 * `jitmem executor`: parse the command line, open the transport, serve one session, clean up.
 * The process exits 0 when the controller goes away (however it goes) and 1 when the session
 * ended on a protocol error, which is reported on stderr.
 */

export const EXECUTOR_USAGE = `usage: jitmem executor [--fds IN,OUT | --listen HOST:PORT|unix:PATH [--allow-remote] [--no-auth] | --connect HOST:PORT|unix:PATH]
                       [--sessions N] [--max-frame-size BYTES] [--max-unsent-bytes BYTES]
                       [--close-when-idle | --no-close-when-idle]

Serves one ORC SimpleRemoteEPC session (LLVM 22 wire protocol) and exits when it ends.

  --fds IN,OUT          read frames from fd IN, write them to fd OUT (default 3,4: the pair a
                        controller hands a child it spawns)
  --listen HOST:PORT    accept one TCP connection on HOST (port 0 picks a free port); prints
                        "listening on HOST:PORT" as the first line of stdout and
                        "token HEX" as the second: a one-time random token. Whoever connects
                        runs code as this user, so the executor first sends a challenge that
                        only a holder of the token can answer (ExecutorSession.connect(host,
                        port, { token })); a connection that fails it is closed, and the
                        executor goes on listening
  --no-auth             no token and no challenge: Setup comes first, as llvm-jitlink
                        (--oop-executor-connect) expects, and any local process that connects
                        first controls the executor
  filedescs=IN,OUT, listen=HOST:PORT
                        llvm-jitlink-executor's spellings of --fds and --listen
  --allow-remote        allow --listen on a host other than loopback
  --sessions N          with --listen: serve N connections one after another, each with
                        memory of its own (default 1), then exit
  --connect HOST:PORT   connect to a controller listening on HOST:PORT
  --listen unix:PATH, --connect unix:PATH
                        the same over a Unix socket. The socket file is created 0600 (its
                        directory, if the executor makes it, 0700) and only processes of this
                        user get in (SO_PEERCRED); no token is needed. A socket file left by an
                        executor that died is replaced, one another executor listens on is
                        not, nor is a file that is not a socket. The file is removed when the
                        executor stops listening
  --max-frame-size N    refuse frames larger than N bytes (default ${DEFAULT_MAX_FRAME_SIZE})
  --max-unsent-bytes N  stop reading calls while more than N bytes of results wait unsent (a
                        controller that does not read its results), go on once they have left
                        (default ${DEFAULT_MAX_UNSENT_BYTES}, at least ${MIN_UNSENT_BYTES})
  --close-when-idle     close the connection once idle after run_as_main returned and the
                        memory was given back: llvm-jitlink 22 never closes a TCP session
                        itself (default with --listen and --connect; a jitmem controller is
                        never cut off, whatever this says)
  --no-close-when-idle  keep the connection until the controller closes it (default with
                        --fds: the controller that spawned the executor ends the session)
  -h, --help            show this help

exit status:
  0        the session ended: the controller closed it or went away
  1        the session ended on a protocol error (said on stderr)
  2        bad flags (said on stderr); nothing was served
  129, 130, 143
           ended by SIGHUP, SIGINT or SIGTERM (128 + the signal's number), after giving
           back its memory and shared-memory names

example: LLVM's llvm-jitlink links and runs a program in this executor over TCP (it cannot
answer the token challenge, hence --no-auth)
  jitmem executor --listen 127.0.0.1:20000 --no-auth &
  llvm-jitlink --oop-executor-connect=127.0.0.1:20000 hello.o
(llvm-jitlink 22 from Debian's llvm-22 package; hello.o from 'cc -c -fPIC hello.c'.)
`;

export interface ExecutorIO {
  readonly stdout: Writable | NodeJS.WritableStream;
  readonly stderr: Writable | NodeJS.WritableStream;
}

/** A TCP host and port, or (host "unix", port -1) a Unix socket path in `path`. */
interface Endpoint {
  host: string;
  port: number;
  path?: string;
}

interface ParsedArgs {
  mode: 'fds' | 'listen' | 'connect';
  fds: [number, number];
  endpoint: Endpoint | null;
  allowRemote: boolean;
  maxFrameSize: number;
  maxUnsentBytes: number;
  closeWhenIdle: boolean | null;
  sessions: number;
  /** TCP --listen: challenge every connection for the token (--no-auth turns it off). */
  auth: boolean;
}

function parseEndpoint(flag: string, value: string | undefined): Endpoint {
  if (value?.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (path.length === 0 || path.length > 107) {
      throw new JitmemError('ERR_INVALID_ENDPOINT', `${flag} unix:PATH needs a socket path of 1 to 107 bytes; got ${JSON.stringify(path)}`, { flag, value });
    }
    return { host: 'unix', port: -1, path };
  }
  const m = value === undefined ? null : /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new JitmemError('ERR_INVALID_ENDPOINT', `${flag} expects HOST:PORT with a port from 0 to 65535 (IPv6 hosts in brackets); got ${JSON.stringify(value ?? '')}`, {
      flag,
      value,
    });
  }
  return { host: m[1] ?? m[2]!, port };
}

export function parseExecutorArgs(argv: readonly string[]): ParsedArgs | 'help' {
  const out: ParsedArgs = {
    mode: 'fds',
    fds: [3, 4],
    endpoint: null,
    allowRemote: false,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxUnsentBytes: DEFAULT_MAX_UNSENT_BYTES,
    closeWhenIdle: null,
    sessions: 1,
    auth: true,
  };
  let modeFlag: string | null = null;
  const setMode = (flag: string, mode: ParsedArgs['mode']): void => {
    if (modeFlag && modeFlag !== flag) {
      throw new JitmemError('ERR_CONFLICTING_OPTIONS', `${flag} cannot be combined with ${modeFlag}: an executor serves one transport`, { flag });
    }
    modeFlag = flag;
    out.mode = mode;
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    // llvm-jitlink-executor's own spellings, so that `llvm-jitlink --oop-executor=<wrapper>`
    // can start us exactly as it starts LLVM's executor.
    if (arg.startsWith('filedescs=')) arg = `--fds=${arg.slice('filedescs='.length)}`;
    else if (arg.startsWith('listen=')) arg = `--listen=${arg.slice('listen='.length)}`;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--fds': {
        setMode(flag, 'fds');
        const v = value();
        const m = v === undefined ? null : /^(\d+),(\d+)$/.exec(v);
        if (!m) throw new JitmemError('ERR_INVALID_OPTION', `--fds expects IN,OUT (two file descriptor numbers); got ${JSON.stringify(v ?? '')}`, { value: v });
        out.fds = [Number(m[1]), Number(m[2])];
        break;
      }
      case '--listen':
        setMode(flag, 'listen');
        out.endpoint = parseEndpoint(flag, value());
        break;
      case '--connect':
        setMode(flag, 'connect');
        out.endpoint = parseEndpoint(flag, value());
        break;
      case '--allow-remote':
        out.allowRemote = true;
        break;
      case '--max-frame-size': {
        const v = value();
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 32) {
          throw new JitmemError('ERR_INVALID_OPTION', `--max-frame-size expects a whole number of bytes >= 32; got ${JSON.stringify(v ?? '')}`, { value: v });
        }
        out.maxFrameSize = n;
        break;
      }
      case '--max-unsent-bytes': {
        const v = value();
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < MIN_UNSENT_BYTES) {
          throw new JitmemError('ERR_INVALID_OPTION', `--max-unsent-bytes expects a whole number of bytes >= ${MIN_UNSENT_BYTES}; got ${JSON.stringify(v ?? '')}`, { value: v });
        }
        out.maxUnsentBytes = n;
        break;
      }
      case '--no-auth':
        out.auth = false;
        break;
      case '--sessions': {
        const v = value();
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 1) {
          throw new JitmemError('ERR_INVALID_OPTION', `--sessions expects a whole number >= 1; got ${JSON.stringify(v ?? '')}`, { value: v });
        }
        out.sessions = n;
        break;
      }
      case '--close-when-idle':
        out.closeWhenIdle = true;
        break;
      case '--no-close-when-idle':
        out.closeWhenIdle = false;
        break;
      default:
        throw new JitmemError('ERR_UNKNOWN_OPTION', `unknown option ${JSON.stringify(arg)} for jitmem executor; see 'jitmem executor --help'`, { option: arg });
    }
  }
  if (out.sessions > 1 && out.mode !== 'listen') {
    throw new JitmemError('ERR_CONFLICTING_OPTIONS', '--sessions needs --listen: other transports carry one session', { sessions: out.sessions });
  }
  if (out.mode === 'listen' && out.endpoint!.path === undefined && !out.allowRemote && !isLoopback(out.endpoint!.host)) {
    throw new JitmemError(
      'ERR_REMOTE_NOT_ALLOWED',
      `--listen ${out.endpoint!.host}: not a loopback address. An executor runs whatever code its controller sends; listening beyond this machine needs --allow-remote`,
      { host: out.endpoint!.host },
    );
  }
  return out;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

function formatEndpoint(host: string, port: number, path?: string): string {
  if (path !== undefined) return `unix:${path}`;
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function runExecutor(argv: readonly string[], io: ExecutorIO): Promise<number> {
  const args = parseExecutorArgs(argv);
  if (args === 'help') {
    io.stdout.write(EXECUTOR_USAGE);
    return 0;
  }
  const live = new Set<Executor>();
  // Whatever ends this process, the memory and the shm names go first.
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const e of live) e.shutdown();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
  };
  const onExit = (): void => {
    for (const e of live) e.shutdown();
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, onSignal);
  process.on('exit', onExit);

  const serveOne = async (input: net.Socket, output: net.Socket): Promise<number> => {
    const executor = new Executor({ maxFrameSize: args.maxFrameSize, maxUnsentBytes: args.maxUnsentBytes, closeWhenIdle: args.closeWhenIdle ?? args.mode !== 'fds' });
    live.add(executor);
    try {
      if (input === output) input.setNoDelay?.(true);
      const end = await executor.serve(input, output);
      await flushed(output);
      input.destroy();
      output.destroy();
      if (end.error) {
        io.stderr.write(`jitmem executor: session ended: ${end.error.message} [${end.error.code}]\n`);
        return 1;
      }
      return 0;
    } finally {
      executor.shutdown();
      live.delete(executor);
    }
  };

  try {
    if (args.mode === 'fds') {
      let input: net.Socket;
      let output: net.Socket;
      try {
        input = new net.Socket({ fd: args.fds[0], readable: true, writable: false });
        output = args.fds[1] === args.fds[0] ? input : new net.Socket({ fd: args.fds[1], readable: false, writable: true });
      } catch (err) {
        throw new JitmemError('ERR_BAD_FD', `cannot use file descriptors ${args.fds[0]},${args.fds[1]} as the transport: ${(err as Error).message}. Start 'jitmem executor' from a controller, or use --listen/--connect`, {
          fds: args.fds,
        });
      }
      return await serveOne(input, output);
    }
    if (args.mode === 'connect') {
      const socket = await connect(args.endpoint!);
      return await serveOne(socket, socket);
    }
    const listener = await listen(args.endpoint!, io, args.auth);
    let status = 0;
    try {
      for (let i = 0; i < args.sessions; i++) {
        const socket = await listener.next();
        // One controller per executor, as llvm-jitlink-executor, unless told to serve more.
        if (i === args.sessions - 1) listener.close();
        status = Math.max(status, await serveOne(socket, socket));
      }
    } finally {
      listener.close();
    }
    return status;
  } finally {
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, onSignal);
    process.off('exit', onExit);
  }
}

interface Listener {
  next(): Promise<net.Socket>;
  close(): void;
}

/**
 * Makes room for a Unix socket at `socketPath`: its directory (created 0700 when missing), and
 * no file in the way. A socket file nobody listens on (its executor died) is removed; one a
 * process listens on belongs to a live executor, and a file that is not a socket is not ours.
 */
function prepareSocketPath(socketPath: string): void {
  const dir = path.dirname(socketPath);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') {
      throw new JitmemError('ERR_LISTEN_FAILED', `cannot create the socket's directory ${dir}: ${(err as Error).message}`, { path: socketPath }, { cause: err });
    }
  }
  let st;
  try {
    st = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new JitmemError('ERR_LISTEN_FAILED', `cannot listen on unix:${socketPath}: ${socketPath} exists and is not a socket; it is left alone`, { path: socketPath });
  }
  const alive = someoneListensOn(socketPath);
  if (alive) throw new JitmemError('ERR_LISTEN_FAILED', `cannot listen on unix:${socketPath}: another executor is listening on ${socketPath}`, { path: socketPath });
  try {
    unlinkSync(socketPath);
  } catch {
    // Gone meanwhile: the listen below will say if something else is in the way.
  }
}

/**
 * True when a process listens on the Unix socket bound at `socketPath` (/proc/net/unix lists
 * every bound socket with its path, listening ones with __SO_ACCEPTCON). A probe by connecting
 * would not do: to a listening executor, a connection is its one session.
 */
function someoneListensOn(socketPath: string): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    // No procfs: assume the worst, and leave the file alone.
    return true;
  }
  const wanted = path.resolve(socketPath);
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const listening = (parseInt(f[3]!, 16) & 0x10000) !== 0;
    if (listening && (f[7] === socketPath || path.resolve(f[7]!) === wanted)) return true;
  }
  return false;
}

/** Who is at the other end of a Unix socket connection: only this user's processes get in. */
function peerIsThisUser(socket: net.Socket): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  try {
    return native.peerCredentials(fd).uid === process.getuid!();
  } catch {
    return false;
  }
}

async function listen(endpoint: Endpoint, io: ExecutorIO, auth: boolean): Promise<Listener> {
  const unix = endpoint.path !== undefined;
  if (unix) prepareSocketPath(endpoint.path!);
  const token = !unix && auth ? newToken() : null;
  const tokenBytes = token ? checkToken(token, 'executor') : null;
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    const queue: net.Socket[] = [];
    const waiting: Array<(s: net.Socket) => void> = [];
    const admit = (socket: net.Socket): void => {
      const w = waiting.shift();
      if (w) w(socket);
      else queue.push(socket);
    };
    server.on('connection', (socket) => {
      socket.on('error', () => {});
      if (unix && !peerIsThisUser(socket)) {
        socket.destroy();
        return;
      }
      if (!tokenBytes) return admit(socket);
      // Until the answer is in, the connection is nobody's: a wrong one is closed and the
      // executor goes on waiting for the right one.
      void challengePeer(socket, tokenBytes).then((ok) => {
        if (ok && !socket.destroyed) admit(socket);
        else socket.destroy();
      });
    });
    server.once('error', (err) =>
      reject(new JitmemError('ERR_LISTEN_FAILED', `cannot listen on ${formatEndpoint(endpoint.host, endpoint.port, endpoint.path)}: ${err.message}`, { host: endpoint.host, port: endpoint.port }, { cause: err })),
    );
    const options = unix ? { path: endpoint.path!, exclusive: true } : { host: endpoint.host, port: endpoint.port, exclusive: true };
    // The socket file is born 0600: no moment in which another user could connect.
    const umask = unix ? process.umask(0o177) : null;
    server.listen(options, () => {
      if (umask !== null) process.umask(umask);
      const port = unix ? -1 : (server.address() as net.AddressInfo).port;
      io.stdout.write(`listening on ${formatEndpoint(endpoint.host, port, endpoint.path)}\n${token ? `token ${token}\n` : ''}`);
      resolve({
        next: () => new Promise((res) => (queue.length > 0 ? res(queue.shift()!) : waiting.push(res))),
        close: () => {
          if (server.listening) server.close();
        },
      });
    });
    if (umask !== null) server.once('error', () => process.umask(umask));
  });
}

function connect(endpoint: Endpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = endpoint.path !== undefined ? net.connect({ path: endpoint.path }) : net.connect({ host: endpoint.host, port: endpoint.port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', (err) =>
      reject(new JitmemError('ERR_CONNECT_FAILED', `cannot connect to ${formatEndpoint(endpoint.host, endpoint.port, endpoint.path)}: ${err.message}`, { host: endpoint.host, port: endpoint.port }, { cause: err })),
    );
  });
}

/** Waits until what we wrote has left (or the peer is gone), at most 2 s. */
function flushed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.writableFinished || socket.destroyed) return resolve();
    const t = setTimeout(resolve, 2000);
    const done = (): void => {
      clearTimeout(t);
      resolve();
    };
    socket.once('finish', done);
    socket.once('close', done);
    socket.once('error', done);
  });
}
