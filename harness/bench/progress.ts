import type { BenchProgress } from './run-bench.js';

/**
 * What a bench run shows while it runs, on stderr.
 *
 * On a terminal: one line redrawn in place, a bar of the cells done (finished cells plus the
 * rounds measured of the cells in flight), `k/n cells`, the cell being measured, elapsed time
 * and an estimate of the time left. Redraws are throttled to one per `minRedrawMs` (100 ms:
 * ten a second), whatever the rate of events; the last state is drawn when the throttle window
 * closes, so the line is never stale for longer than that.
 *
 * Not on a terminal (CI logs, pipes): one plain line per finished cell, in the order they
 * finish, and nothing else, so a log holds n lines for n cells.
 *
 * The counter is the number of finished cells, which only goes up: cells are measured in
 * interleaved rounds, so "the cell being measured" moves back and forth within a group, and
 * is shown by name only.
 */

export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressViewOptions {
  readonly stream: ProgressStream;
  /** Redraw in place (a terminal) or print a line per finished cell. Default: stream.isTTY. */
  readonly tty?: boolean;
  /** Milliseconds since some origin; tests pass a fake clock. */
  readonly now?: () => number;
  readonly minRedrawMs?: number;
  /** Schedules the trailing redraw; tests pass their own. */
  readonly setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

const DEFAULT_MIN_REDRAW_MS = 100;
const BAR_WIDTH = 16;

/** 75 → "1:15", 3725 → "1:02:05". */
export function clockTime(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function defaultTimer(fn: () => void, ms: number): { cancel(): void } {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
}

export class BenchProgressView {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly minRedrawMs: number;
  private readonly setTimer: NonNullable<ProgressViewOptions['setTimer']>;
  private readonly started: number;
  private total = 0;
  private done = 0;
  /** Fraction measured (0..1) of each cell in flight, by cell index. */
  private readonly inFlight = new Map<number, number>();
  private current = '';
  private lastDraw = -Infinity;
  private pending: { cancel(): void } | undefined;
  private drawn = false;
  /** Lines written in place so far (a test reads it). */
  redraws = 0;

  constructor(options: ProgressViewOptions) {
    this.stream = options.stream;
    this.tty = options.tty ?? options.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.minRedrawMs = options.minRedrawMs ?? DEFAULT_MIN_REDRAW_MS;
    this.setTimer = options.setTimer ?? defaultTimer;
    this.started = this.now();
  }

  /** The bench's progress callback. */
  readonly onProgress = (e: BenchProgress): void => {
    if (e.kind === 'run') {
      // The run pattern comes after the matrix's cells: its cell by name and its iterations.
      this.current = `${e.cell} ${e.done}/${e.total}`;
      if (this.tty) this.schedule();
      else if (e.done === e.total) this.stream.write(`[run] ${e.cell}: ${e.done} iterations verified (${clockTime((this.now() - this.started) / 1000)} elapsed)\n`);
      return;
    }
    this.total = e.total;
    if (e.kind === 'cell-start') {
      this.inFlight.set(e.index, 0);
      this.current = e.cell;
    } else if (e.kind === 'iteration') {
      if (e.rounds) this.inFlight.set(e.index, Math.min(1, e.round! / e.rounds));
      this.current = e.cell;
    } else {
      this.inFlight.delete(e.index);
      this.done++;
      if (!this.tty) {
        const s = (this.now() - this.started) / 1000;
        this.stream.write(`[${this.done}/${this.total}] ${e.cell}: p50 ${formatMs(e.row.latency.p50)} ms, ${e.row.latency.samplesCount} iterations (${clockTime(s)} elapsed)\n`);
        return;
      }
    }
    if (this.tty) this.schedule();
  };

  /** Fraction of the run measured: finished cells plus the rounds done of cells in flight. */
  fraction(): number {
    if (this.total === 0) return 0;
    let partial = 0;
    for (const f of this.inFlight.values()) partial += f;
    return Math.min(1, (this.done + partial) / this.total);
  }

  /** The line drawn in place, at most `columns - 1` characters (a wrapped line cannot be redrawn with \r). */
  line(columns: number): string {
    const f = this.fraction();
    const filled = Math.round(f * BAR_WIDTH);
    const elapsed = (this.now() - this.started) / 1000;
    const eta = f > 0.02 ? clockTime((elapsed / f) * (1 - f)) : '?';
    const text = `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)} ${this.done}/${this.total} cells  ${clockTime(elapsed)}, ETA ${eta}  ${this.current}`;
    return text.length < columns ? text : text.slice(0, Math.max(0, columns - 2)) + '…';
  }

  private schedule(): void {
    if (this.pending) return;
    const wait = this.lastDraw + this.minRedrawMs - this.now();
    if (wait <= 0) {
      this.draw();
      return;
    }
    this.pending = this.setTimer(() => {
      this.pending = undefined;
      this.draw();
    }, wait);
  }

  private draw(): void {
    this.lastDraw = this.now();
    this.redraws++;
    this.drawn = true;
    this.stream.write(`\r\x1b[K${this.line(this.stream.columns || 80)}`);
  }

  /** Stops redrawing and clears the line (a terminal), so the summary starts on a clean line. */
  finish(): void {
    this.pending?.cancel();
    this.pending = undefined;
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
  }
}

function formatMs(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}
