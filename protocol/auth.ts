import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { JitmemError } from '../core/errors.js';

/**
 * The token handshake of an executor listening on TCP. Whoever connects to an executor runs
 * code with its uid, and any local process can connect to a loopback port; so `jitmem executor
 * --listen HOST:PORT` makes a one-time random token, prints it, and before the ORC Setup sends
 * a challenge that only a holder of the token can answer:
 *
 *   executor -> controller   "JMAUTH01" + 32-byte random nonce                   (40 bytes)
 *   controller -> executor   HMAC-SHA256(token, "jitmem-controller" || nonce)     (32 bytes)
 *
 * A wrong or late answer closes that connection and the executor goes on listening. The token
 * never crosses the wire, and a nonce is never reused, so an answer seen once is worth nothing.
 * llvm-jitlink cannot answer (it expects Setup first): `--no-auth` turns the challenge off.
 */

export const AUTH_MAGIC = Buffer.from('JMAUTH01', 'latin1');
export const NONCE_BYTES = 32;
export const CHALLENGE_BYTES = AUTH_MAGIC.length + NONCE_BYTES;
export const ANSWER_BYTES = 32;
export const TOKEN_BYTES = 32;
/** How long an executor waits for the answer before it drops the connection. */
export const AUTH_TIMEOUT_MS = 5000;

const CONTEXT = Buffer.from('jitmem-controller', 'latin1');

/** A fresh one-time token, as the hex text the executor prints. */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('hex');
}

export function checkToken(token: string, where: string): Buffer {
  if (!/^[0-9a-f]{64}$/i.test(token)) {
    throw new JitmemError('ERR_INVALID_TOKEN', `${where}: an executor token is 64 hex digits (as 'jitmem executor --listen' prints it); got ${token.length} characters`, {});
  }
  return Buffer.from(token, 'hex');
}

export function newChallenge(): Buffer {
  return Buffer.concat([AUTH_MAGIC, randomBytes(NONCE_BYTES)]);
}

export function answerFor(token: Buffer, challenge: Uint8Array): Buffer {
  return createHmac('sha256', token).update(CONTEXT).update(challenge.subarray(AUTH_MAGIC.length, CHALLENGE_BYTES)).digest();
}

export function answerIsRight(token: Buffer, challenge: Uint8Array, answer: Uint8Array): boolean {
  return answer.length === ANSWER_BYTES && timingSafeEqual(answerFor(token, challenge), answer);
}

/**
 * Reads exactly `n` bytes from a socket that nobody else reads yet, then gives back whatever
 * came after them (the peer's next bytes belong to the ORC channel). Rejects on EOF, error or
 * timeout.
 */
export function readExactly(socket: Socket, n: number, timeoutMs: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const done = (err: Error | null, value?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < n) return;
      socket.pause();
      const all = Buffer.concat(chunks);
      if (all.length > n) socket.unshift(all.subarray(n));
      done(null, all.subarray(0, n));
    };
    const onEnd = (): void => done(new JitmemError('ERR_AUTH_FAILED', `${what}: the peer closed the connection after ${have} of ${n} bytes`, {}));
    const onError = (err: Error): void => done(new JitmemError('ERR_AUTH_FAILED', `${what}: ${err.message}`, {}, { cause: err }));
    const timer = setTimeout(() => done(new JitmemError('ERR_AUTH_FAILED', `${what}: no ${n} bytes within ${timeoutMs} ms (${have} came)`, {})), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}

/** The executor's side: challenge, check the answer. Resolves true when the peer holds the token. */
export async function challengePeer(socket: Socket, token: Buffer, timeoutMs = AUTH_TIMEOUT_MS): Promise<boolean> {
  const challenge = newChallenge();
  socket.write(challenge);
  try {
    const answer = await readExactly(socket, ANSWER_BYTES, timeoutMs, 'executor token check');
    return answerIsRight(token, challenge, answer);
  } catch {
    return false;
  }
}

/** The controller's side: read the challenge and answer it. */
export async function answerChallenge(socket: Socket, token: Buffer, timeoutMs = AUTH_TIMEOUT_MS): Promise<void> {
  const challenge = await readExactly(socket, CHALLENGE_BYTES, timeoutMs, 'executor token challenge');
  if (!challenge.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) {
    socket.unshift(challenge);
    throw new JitmemError(
      'ERR_AUTH_FAILED',
      'a token was given, but the executor did not send a token challenge: it was started with --no-auth, or it is not a jitmem executor',
      {},
    );
  }
  socket.write(answerFor(token, challenge));
}
