import { JitmemError } from '../core/errors.js';

/**
 * SPSError carries only a message. A jitmem executor appends its stable code as " [ERR_...]"
 * so that a jitmem controller can give the caller the same code it would get locally;
 * messages from LLVM's executor have none and get ERR_REMOTE_CALL_FAILED.
 */

const CODE_SUFFIX = / \[(ERR_[A-Z0-9_]+)\]$/;

export function withRemoteCode(message: string, code: string): string {
  return `${message} [${code}]`;
}

/** The error for a failure message that came back from the executor. */
export function remoteError(what: string, message: string, details: Record<string, unknown> = {}): JitmemError {
  const m = CODE_SUFFIX.exec(message);
  const code = m ? m[1]! : 'ERR_REMOTE_CALL_FAILED';
  const text = m ? message.slice(0, m.index) : message;
  return new JitmemError(code, `${what} failed in the executor: ${text}`, { ...details, remoteMessage: message });
}
