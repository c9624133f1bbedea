/**
 * When a mapper carries out calls it gathers (initializes whose protections can share mprotect
 * calls, deinitializes that can share one round trip). Batching them until the end of the
 * event loop's turn lets calls issued together share the work, but costs a caller that waits
 * for each call before it issues the next one a turn of the loop (a few microseconds) per
 * call, with nothing to share. So, as Nagle's algorithm does for small writes: while turns
 * gather more than one call, batch by turn; once a turn gathers just one, carry calls out at
 * the end of the current job (a microtask) instead, and try a turn again every PROBE_EVERY
 * calls to see whether the caller has started issuing them together. Calls issued within one
 * job are carried out together either way.
 */

/** While settling at once, every this many calls wait for a turn, to notice a caller that issues them together. */
export const PROBE_EVERY = 16;

export class CallCoalescer {
  private scheduled = false;
  private byTurn = true;
  private sinceProbe = 0;

  constructor(
    /** Carries out what is pending (it may have been carried out already by another path). */
    private readonly settle: () => void,
    /** How many calls are pending now. */
    private readonly pendingCount: () => number,
  ) {}

  /** A call was added to what is pending: make sure it is carried out soon. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.byTurn || ++this.sinceProbe >= PROBE_EVERY) {
      this.sinceProbe = 0;
      setImmediate(() => {
        this.scheduled = false;
        // Another call of the mapper may have settled them already: then this turn says nothing.
        const n = this.pendingCount();
        if (n > 0) this.byTurn = n > 1;
        this.settle();
      });
    } else {
      queueMicrotask(() => {
        this.scheduled = false;
        this.settle();
      });
    }
  }
}

/** One gathered call and the promise of whoever issued it. */
export interface PendingCall<T> {
  readonly call: T;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Calls of one kind a mapper gathers until its CallCoalescer says to carry them out: `add`
 * queues a call and returns its caller's promise, `take` hands the mapper everything queued so
 * far to settle together.
 */
export class PendingCalls<T> {
  private list: Array<PendingCall<T>> = [];
  private readonly coalescer: CallCoalescer;

  constructor(settle: () => void) {
    this.coalescer = new CallCoalescer(settle, () => this.list.length);
  }

  get length(): number {
    return this.list.length;
  }

  add(call: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.list.push({ call, resolve, reject });
      this.coalescer.schedule();
    });
  }

  take(): Array<PendingCall<T>> {
    const batch = this.list;
    this.list = [];
    return batch;
  }
}
