import { JitmemError } from '../core/errors.js';
import { withRemoteCode } from '../protocol/remote-error.js';

/**
 * An error a service reports back to its controller inside an SPSError/SPSExpected. The
 * session goes on; only the call fails. The code travels at the end of the message.
 */
export class RemoteError extends JitmemError {
  constructor(code: string, message: string) {
    super(code, message);
  }

  get wireMessage(): string {
    return withRemoteCode(this.message, this.code);
  }
}
