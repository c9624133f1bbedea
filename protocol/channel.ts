import type { Readable, Writable } from 'node:stream';
import { JitmemError, hex } from '../core/errors.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FrameParser,
  HEADER_SIZE,
  OpCode,
  encodeFrame,
  writeHeaderAt,
  type Frame,
} from './frame.js';
import { SpsWriter } from './sps.js';

/**
 * A SimpleRemoteEPC session over any duplex byte stream (a socket, or a pair of pipes).
 * Calls are pipelined: each gets the next sequence number of this side's own counter and is
 * matched to its Result by that number alone, so results may arrive in any order. Incoming
 * CallWrappers go to a handler and are answered, by sequence number, whenever the handler
 * finishes. Anything the protocol does not allow ends the session with a typed error; the
 * channel never throws out of a stream callback.
 */

export type Role = 'controller' | 'executor';

/**
 * Answers one incoming CallWrapper. Returning undefined means the tag names nothing we know,
 * which ends the session (ERR_UNKNOWN_TAG). Throwing ends it too, with that error.
 */
export type CallResult = Uint8Array | SpsWriter | undefined;
export type CallHandler = (tag: number, payload: Uint8Array, seq: number) => CallResult | Promise<CallResult>;

/**
 * Answers a call whose large payload arrived in pieces (ChannelOptions.gatherFrom) without
 * assembling it; returning null passes the call to the ordinary handler with the assembled payload.
 */
export type GatheredCallHandler = (
  tag: number,
  pieces: readonly Uint8Array[],
  seq: number,
) => CallResult | Promise<CallResult> | null;

export interface ChannelOptions {
  readonly role: Role;
  /** Frames whose MsgSize is above this are refused and end the session. */
  readonly maxFrameSize?: number;
  readonly handler?: CallHandler;
  /** Payloads of at least this many bytes that arrive in several chunks go to `gatheredHandler` as pieces. */
  readonly gatherFrom?: number;
  readonly gatheredHandler?: GatheredCallHandler;
  /** The `code` pending and later calls reject with once the session is over. */
  readonly lostCode?: string;
  /** What the other side is called in messages ("executor", "controller"). */
  readonly peerName?: string;
  /**
   * Stop taking calls while more than this many bytes of what we sent wait in the output
   * (a peer that does not read its results); go on once the output has drained. Unbounded when
   * absent. At least 64 KiB (above a stream's high-water mark, so that 'drain' comes).
   */
  readonly maxUnsentBytes?: number;
}

/** The smallest maxUnsentBytes: above any stream's default high-water mark. */
export const MIN_UNSENT_BYTES = 64 * 1024;

export type ChannelEndReason = 'eof' | 'hangup' | 'closed' | 'protocol-error' | 'stream-error';

export interface ChannelEnd {
  readonly reason: ChannelEndReason;
  /** Set for protocol and stream errors: what went wrong. */
  readonly error?: JitmemError;
}

interface PendingCall {
  resolve(payload: Uint8Array): void;
  reject(err: Error): void;
  tag: number;
}

export class Channel {
  private readonly parser: FrameParser;
  private readonly pending = new Map<number, PendingCall>();
  private nextSeq = 0;
  /** A frame went out in this turn of the event loop: the turn's later frames wait for its end. */
  private sentThisTurn = false;
  private corked = false;
  private stats = { callsMade: 0, callsAnswered: 0, callsHandled: 0, bytesSent: 0, bytesReceived: 0 };
  private ended: ChannelEnd | null = null;
  private sawSetup = false;
  private resolveClosed!: (end: ChannelEnd) => void;
  private resolveSetup!: (payload: Uint8Array) => void;
  private rejectSetup!: (err: Error) => void;
  private readonly inFlightHandlers = new Set<Promise<unknown>>();
  /** Frames received but not handled yet, because too many results wait unsent. */
  private backlog: Frame[] = [];
  private backlogAt = 0;
  private waitingForDrain = false;
  readonly maxFrameSize: number;
  /** Resolves once, when the session is over, with why. Never rejects. */
  readonly closed: Promise<ChannelEnd>;
  /** Controller side: the Setup payload. Rejects if the session ends before it arrives. */
  readonly setup: Promise<Uint8Array>;
  private readonly onData = (chunk: Uint8Array): void => this.receive(chunk);
  private readonly onEnd = (): void => this.inputEnded();
  private readonly onError = (err: Error): void =>
    this.finish({
      reason: 'stream-error',
      error: new JitmemError(
        'ERR_STREAM',
        `the stream to the ${this.peerName} failed: ${err.message}`,
        {},
        { cause: err },
      ),
    });

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly options: ChannelOptions,
  ) {
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    if (!Number.isSafeInteger(this.maxFrameSize) || this.maxFrameSize < HEADER_SIZE) {
      throw new JitmemError(
        'ERR_INVALID_MAX_FRAME_SIZE',
        `maxFrameSize must be an integer >= ${HEADER_SIZE}; got ${String(options.maxFrameSize)}`,
        {
          maxFrameSize: options.maxFrameSize,
        },
      );
    }
    this.parser = new FrameParser(
      this.maxFrameSize,
      options.gatheredHandler ? (options.gatherFrom ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY,
    );
    if (
      options.maxUnsentBytes !== undefined &&
      (!Number.isSafeInteger(options.maxUnsentBytes) || options.maxUnsentBytes < MIN_UNSENT_BYTES)
    ) {
      throw new JitmemError(
        'ERR_INVALID_OPTION',
        `maxUnsentBytes must be an integer >= ${MIN_UNSENT_BYTES}; got ${String(options.maxUnsentBytes)}`,
        {
          maxUnsentBytes: options.maxUnsentBytes,
        },
      );
    }
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.setup = new Promise((resolve, reject) => {
      this.resolveSetup = resolve;
      this.rejectSetup = reject;
    });
    // An executor never waits for Setup; nobody awaits it there, so an unhandled rejection must not surface.
    this.setup.catch(() => {});
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('close', this.onEnd);
    input.on('error', this.onError);
    if (output !== (input as unknown)) output.on('error', this.onError);
    // A stream someone paused before (a token handshake read its first bytes) flows again.
    input.resume();
  }

  get peerName(): string {
    return this.options.peerName ?? (this.options.role === 'controller' ? 'executor' : 'controller');
  }

  get isOpen(): boolean {
    return this.ended === null;
  }

  /** Calls whose results have not arrived yet. */
  get pendingCalls(): number {
    return this.pending.size;
  }

  /** Calls made and answered, calls from the peer handled, bytes sent and received (headers included) so far. */
  counters(): {
    callsMade: number;
    callsAnswered: number;
    callsHandled: number;
    bytesSent: number;
    bytesReceived: number;
  } {
    return { ...this.stats };
  }

  /** Incoming calls whose handlers have not finished yet. */
  get handlersRunning(): number {
    return this.inFlightHandlers.size;
  }

  /**
   * Sends a CallWrapper to `tag` and resolves with the Result payload. A writer built with
   * 32 bytes of headroom is sent without copying its payload again, so it belongs to the
   * channel from then on: do not write to it or send it twice. Plain bytes are copied.
   */
  call(tag: number, args: Uint8Array | SpsWriter): Promise<Uint8Array> {
    if (this.ended) return Promise.reject(this.lostError());
    const seq = this.nextSeq++;
    this.stats.callsMade++;
    const promise = new Promise<Uint8Array>((resolve, reject) => this.pending.set(seq, { resolve, reject, tag }));
    this.sendFrame(OpCode.CallWrapper, seq, tag, args);
    return promise;
  }

  /** Sends Setup (executor side, once, first). */
  sendSetup(payload: Uint8Array): void {
    this.sendFrame(OpCode.Setup, 0, 0, payload);
  }

  /**
   * Sends Hangup with an SPSError (success unless `error`), then ends our side of the stream.
   * Pending calls reject as lost.
   */
  hangup(error: string | null = null): void {
    if (this.ended) return;
    const w = new SpsWriter(16, HEADER_SIZE).error(error);
    this.sendFrame(OpCode.Hangup, 0, 0, w);
    this.finish({ reason: 'closed' });
  }

  /** Ends the session without a Hangup (what LLVM 22 itself does), or with an error. */
  close(error?: JitmemError): void {
    this.finish(error ? { reason: 'protocol-error', error } : { reason: 'closed' });
  }

  /** Waits for incoming calls already being handled to be answered. */
  async drainHandlers(): Promise<void> {
    while (this.inFlightHandlers.size > 0) await Promise.allSettled([...this.inFlightHandlers]);
  }

  private sendFrame(opcode: number, seq: number, tag: number, payload: Uint8Array | SpsWriter): void {
    if (this.ended) return;
    let frame: Uint8Array;
    if (payload instanceof SpsWriter && payload.gathered) {
      // A gather write: the pieces leave from where they are, in one writev (with the rest of
      // this turn's frames, unless it is the turn's first).
      if (payload.headroom !== HEADER_SIZE)
        throw new JitmemError(
          'ERR_INTERNAL',
          `a writer with spliced bytes needs ${HEADER_SIZE} bytes of headroom for the frame header`,
        );
      const pieces = payload.finishPieces();
      const size = HEADER_SIZE + payload.length;
      writeHeaderAt(payload.dataView, payload.dataViewOffset, opcode, seq, tag, size);
      this.stats.bytesSent += size;
      const first = this.beginTurn();
      this.cork();
      for (const piece of pieces) this.output.write(piece);
      if (first) this.uncork();
      return;
    }
    if (payload instanceof SpsWriter) {
      if (payload.headroom === HEADER_SIZE) {
        frame = payload.finishWithHeadroom();
        writeHeaderAt(payload.dataView, payload.dataViewOffset, opcode, seq, tag, frame.length);
      } else {
        frame = encodeFrame(opcode, seq, tag, payload.finish());
      }
    } else {
      frame = encodeFrame(opcode, seq, tag, payload);
    }
    this.stats.bytesSent += frame.length;
    if (!this.beginTurn()) this.cork();
    this.output.write(frame);
  }

  /**
   * The first frame of a turn of the event loop leaves at once; the frames sent after it in the
   * same turn (pipelined calls, the results of a batch of calls) wait for the turn's end and
   * leave together, in one writev instead of one syscall each. Holding the first frame too, as
   * every frame was held before, kept a sequential call's request until the caller's turn
   * ended: between unpinned processes, a one-page finalize took 118 us where it had taken 159, a
   * no-op round trip 101 where 117 (the one-page finalize probe, nine alternating runs of 1,000
   * calls each, the median of their medians). Returns whether this frame is the turn's first.
   */
  private beginTurn(): boolean {
    if (this.sentThisTurn) return false;
    this.sentThisTurn = true;
    process.nextTick(() => {
      this.sentThisTurn = false;
      this.uncork();
    });
    return true;
  }

  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.output.cork();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.output.uncork();
  }

  private receive(chunk: Uint8Array): void {
    if (this.ended) return;
    this.stats.bytesReceived += chunk.length;
    let frames: Frame[];
    try {
      // Stream chunks are Buffers; payloads are handed out as plain Uint8Array views of them.
      frames = this.parser.push(
        chunk instanceof Buffer ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) : chunk,
      );
    } catch (err) {
      this.protocolError(err);
      return;
    }
    if (this.backlog.length === 0) {
      this.backlog = frames;
      this.backlogAt = 0;
    } else {
      this.backlog.push(...frames);
    }
    this.pump();
  }

  /** Handles received frames in order until none are left or too much waits unsent. */
  private pump(): void {
    if (this.waitingForDrain) return;
    const limit = this.options.maxUnsentBytes;
    while (this.backlogAt < this.backlog.length) {
      if (this.ended) return;
      if (limit !== undefined && this.output.writableLength > limit) {
        // The peer is not reading what we send: read no more calls from it until it has.
        this.waitingForDrain = true;
        this.input.pause();
        this.output.once('drain', () => {
          this.waitingForDrain = false;
          if (this.ended) return;
          this.input.resume();
          this.pump();
        });
        return;
      }
      this.dispatch(this.backlog[this.backlogAt++]!);
    }
    this.backlog = [];
    this.backlogAt = 0;
  }

  private dispatch(frame: Frame): void {
    const role = this.options.role;
    switch (frame.opcode) {
      case OpCode.Setup:
        if (role === 'executor')
          return this.protocolError(
            new JitmemError(
              'ERR_UNEXPECTED_SETUP',
              `unexpected Setup opcode from the ${this.peerName}: only an executor sends Setup`,
            ),
          );
        if (this.sawSetup)
          return this.protocolError(
            new JitmemError('ERR_UNEXPECTED_SETUP', 'a second Setup message arrived; Setup comes exactly once, first'),
          );
        this.sawSetup = true;
        this.resolveSetup(frame.payload);
        return;
      case OpCode.Hangup:
        return this.finish({ reason: 'hangup' });
      case OpCode.Result: {
        if (frame.tag !== 0) {
          return this.protocolError(
            new JitmemError(
              'ERR_UNEXPECTED_TAG',
              `unexpected TagAddr ${hex(frame.tag)} in Result message for sequence number ${frame.seq}; a Result's tag must be 0`,
              { tag: frame.tag, seq: frame.seq },
            ),
          );
        }
        const call = this.pending.get(frame.seq);
        if (!call) {
          return this.protocolError(
            new JitmemError(
              'ERR_UNKNOWN_SEQUENCE_NUMBER',
              `no call for sequence number ${frame.seq}: the ${this.peerName} answered a call that was never made or was already answered`,
              { seq: frame.seq },
            ),
          );
        }
        this.pending.delete(frame.seq);
        this.stats.callsAnswered++;
        call.resolve(frame.payload);
        return;
      }
      case OpCode.CallWrapper:
        if (role === 'controller' && !this.sawSetup) {
          return this.protocolError(
            new JitmemError('ERR_UNEXPECTED_MESSAGE', 'the executor made a call before sending Setup'),
          );
        }
        return this.handleCall(frame);
      default:
        return this.protocolError(new JitmemError('ERR_UNKNOWN_OPCODE', `unknown opcode ${frame.opcode as number}`));
    }
  }

  private handleCall(frame: Frame): void {
    const handler = this.options.handler;
    const unknown = (): JitmemError =>
      new JitmemError(
        'ERR_UNKNOWN_TAG',
        `call to unknown tag ${hex(frame.tag)} (sequence number ${frame.seq}): no service or function has that address`,
        {
          tag: frame.tag,
          seq: frame.seq,
        },
      );
    if (!handler) return this.protocolError(unknown());
    this.stats.callsHandled++;
    let result: CallResult | Promise<CallResult>;
    try {
      const gathered =
        frame.pieces && this.options.gatheredHandler
          ? this.options.gatheredHandler(frame.tag, frame.pieces, frame.seq)
          : null;
      result = gathered ?? handler(frame.tag, frame.payload, frame.seq);
    } catch (err) {
      return this.protocolError(err);
    }
    if (!(result instanceof Promise)) {
      if (result === undefined) return this.protocolError(unknown());
      this.sendFrame(OpCode.Result, frame.seq, 0, result);
      return;
    }
    const done = result.then(
      (bytes) => {
        if (bytes === undefined) this.protocolError(unknown());
        else this.sendFrame(OpCode.Result, frame.seq, 0, bytes);
      },
      (err: unknown) => this.protocolError(err),
    );
    this.inFlightHandlers.add(done);
    void done.finally(() => this.inFlightHandlers.delete(done));
  }

  private inputEnded(): void {
    if (this.ended) return;
    if (this.parser.atBoundary) {
      this.finish({ reason: 'eof' });
    } else {
      this.protocolError(
        new JitmemError(
          'ERR_UNEXPECTED_EOF',
          `unexpected end-of-file from the ${this.peerName} in the middle of a frame (${this.parser.pending} bytes of an incomplete frame were received)`,
          {
            pending: this.parser.pending,
          },
        ),
      );
    }
  }

  private protocolError(err: unknown): void {
    const error =
      err instanceof JitmemError
        ? err
        : new JitmemError(
            'ERR_INTERNAL',
            `internal error while handling a message from the ${this.peerName}: ${(err as Error)?.message ?? String(err)}`,
            {},
            { cause: err },
          );
    this.finish({ reason: 'protocol-error', error });
  }

  private lostError(): JitmemError {
    const end = this.ended;
    const why =
      end === null
        ? ''
        : end.reason === 'eof'
          ? 'it closed the connection'
          : end.reason === 'hangup'
            ? 'it hung up'
            : end.reason === 'closed'
              ? 'the session was closed'
              : (end.error?.message ?? end.reason);
    return new JitmemError(
      this.options.lostCode ?? 'ERR_CHANNEL_CLOSED',
      `the ${this.peerName} is gone (${why}); the call cannot complete`,
      {
        reason: end?.reason,
        cause: end?.error?.code,
      },
    );
  }

  private finish(end: ChannelEnd): void {
    if (this.ended) return;
    this.ended = end;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    // Keep an error listener: a late EPIPE after we stopped caring must not become an uncaught exception.
    const pendingCalls = [...this.pending.values()];
    this.pending.clear();
    const lost = this.lostError();
    for (const call of pendingCalls) call.reject(lost);
    if (!this.sawSetup) this.rejectSetup(lost);
    try {
      this.output.end();
    } catch {
      // The stream may already be destroyed; nothing left to flush then.
    }
    if ((this.input as unknown) !== this.output) this.input.destroy();
    this.resolveClosed(end);
  }
}
