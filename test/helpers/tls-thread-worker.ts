import { parentPort } from 'node:worker_threads';
import * as native from '../../native/index.js';

/**
 * A thread that exists before a program is loaded: it calls what it is sent (int32_t fn(int32_t))
 * on itself and answers with the result, so that a test can see that thread's copy of the
 * program's thread-locals.
 */
parentPort!.on('message', (m: { fn: number; arg: number } | 'stop') => {
  if (m === 'stop') {
    parentPort!.close();
    return;
  }
  parentPort!.postMessage(native.callInt32(m.fn, m.arg));
});
parentPort!.postMessage('ready');
