import type { BenchPlan, BenchProgress } from './run-bench.js';

/**
 * What a bench run shows while it runs, on stderr.
 *
 * On a terminal: one line redrawn in place, a bar of the cells done (finished cells plus the
 * rounds measured of the cells in flight), `k/n cells`, the cell being measured, elapsed time
 * and an estimate of the time left. Redraws are throttled to one per `minRedrawMs` (100 ms:
 * ten a second), whatever the rate of events; the last state is drawn when the throttle window
 * closes, so the line is never stale for longer than that.
 *
 * Not on a terminal (CI logs, pipes): the opening line, then one plain line per finished cell
 * in the order they finish, and a line saying where the run is whenever `heartbeatMs` (10 s)
 * passed without one (cells measured in interleaved rounds all finish at the end of their
 * group, so a log would otherwise stay silent for the group's whole time).
 *
 * The estimate: every part of the run has an expected time (the plan: a cell's sampling time,
 * warm-up and transport start; the run pattern's processes). Once a cell has measured a round,
 * its own rounds say how long the rest of it takes; cells not yet started take their expected
 * time scaled by how the measured ones compared with theirs. Time goes to the cell the last
 * event came from, so the estimate counts down between events, and it never goes below zero.
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
  /** Without a terminal: the longest silence before a line saying where the run is (ms). */
  readonly heartbeatMs?: number;
  /** Schedules the trailing redraw; tests pass their own. */
  readonly setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

const DEFAULT_MIN_REDRAW_MS = 100;

function newRunCell(expectedMs: number, iterations: number): RunCellState {
  return { expectedMs, iterations, done: 0, finished: false, firstSpent: 0, laterSpent: 0, laterDone: 0 };
}
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

interface RunCellState {
  readonly expectedMs: number;
  readonly iterations: number;
  done: number;
  /**
   * Reported done (done of done): counted once among the finished cells. With a precision target
   * a cell's count of iterations is open until then, so `done` reaches its last value first.
   */
  finished: boolean;
  /** Time of the first reported iteration(s), and of those after it, with how many. */
  firstSpent: number;
  laterSpent: number;
  laterDone: number;
}

interface CellState {
  readonly expectedMs: number;
  /**
   * With a precision target: the cell's part of its group's time budget. The group runs rounds
   * until it is spent, so the cell takes its expected time whatever the pace of its rounds.
   */
  readonly budgetMs: number | undefined;
  /** Wall time spent on this cell so far (ms), and at the start of its latest round. */
  spent: number;
  spentAtRound: number;
  /** Rounds finished (the round index of its latest event). */
  round: number;
  started: boolean;
  done: boolean;
}

/** How much the plan counts (as ms at ratio 1) against what was measured: one cell's round outweighs it. */
const PRIOR_MS = 500;
const DEFAULT_HEARTBEAT_MS = 10_000;
/** The same for the run pattern's pace: a few processes outweigh it. */
const RUN_PRIOR_MS = 2000;

export class BenchProgressView {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly minRedrawMs: number;
  private readonly heartbeatMs: number;
  private readonly setTimer: NonNullable<ProgressViewOptions['setTimer']>;
  private readonly started: number;
  private total = 0;
  private done = 0;
  /** Fraction measured (0..1) of each cell in flight, by cell index: for a run without a plan. */
  private readonly inFlight = new Map<number, number>();
  private current = '';
  private lastDraw = -Infinity;
  private lastLine: number;
  private pending: { cancel(): void } | undefined;
  private drawn = false;
  private plan: BenchPlan | undefined;
  private readonly cells = new Map<number, CellState>();
  private rounds = 1;
  /**
   * The run pattern: its set-up's expected ms and the time spent before its first cell reported
   * (set-up: start-up figures, warm-up processes), the time not yet given to a cell (each report
   * comes after an iteration, so the time since the last report was that iteration's), and per
   * cell its plan, the iterations done and the time they took: the first separately, since a
   * cell's first iteration carries its warm-up (a warm controller) or the first round's colder
   * caches, and its later ones are what the rest of it takes.
   */
  private run:
    | {
        setupMs: number;
        /** With a precision target: the run pattern's share of the time budget, which it takes on any machine. */
        budgetMs: number | undefined;
        setupSpent: number;
        unattributed: number;
        started: boolean;
        cells: Map<string, RunCellState>;
      }
    | undefined;
  /** What the time since the last event is spent on: a matrix cell's index, or the run block. */
  private active: number | 'run' | undefined;
  private lastEventAt: number;
  private bar = 0;
  /** Lines written in place so far (a test reads it). */
  redraws = 0;

  constructor(options: ProgressViewOptions) {
    this.stream = options.stream;
    this.tty = options.tty ?? options.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.minRedrawMs = options.minRedrawMs ?? DEFAULT_MIN_REDRAW_MS;
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.setTimer = options.setTimer ?? defaultTimer;
    this.started = this.now();
    this.lastEventAt = this.started;
    this.lastLine = this.started;
  }

  /** A run-pattern cell's progress (the run pattern comes before the matrix's cells): its cell by name, its count. */
  private onRunProgress(e: Extract<BenchProgress, { kind: 'run' }>): void {
    this.active = 'run';
    this.current = `${e.cell} ${e.done}/${e.total}`;
    let finishedNow = e.done === e.total;
    if (this.run) {
      const r = this.run;
      const cell = r.cells.get(e.cell) ?? r.cells.set(e.cell, newRunCell(0, e.total)).get(e.cell)!;
      const before = cell.done;
      cell.done = Math.max(cell.done, e.done);
      if (!r.started) {
        // What came before the first report was set-up (with that report's own iteration).
        r.started = true;
        r.setupSpent = r.unattributed;
      } else if (before === 0) cell.firstSpent += r.unattributed;
      else {
        cell.laterSpent += r.unattributed;
        cell.laterDone += cell.done - before;
      }
      r.unattributed = 0;
      finishedNow &&= !cell.finished;
      if (finishedNow) {
        cell.finished = true;
        this.done++;
      }
    }
    if (this.tty) this.schedule();
    else if (finishedNow)
      this.printLine(
        `[${this.run ? `${this.done}/${this.total}` : 'run'}] ${e.cell}: ${e.done} verified (${this.times()})`,
      );
    else this.heartbeat();
  }

  /** Gives the time since the last event to what was running then. */
  private account(): void {
    const t = this.now();
    const dt = t - this.lastEventAt;
    this.lastEventAt = t;
    if (this.active === 'run') {
      if (this.run) this.run.unattributed += dt;
    } else if (this.active !== undefined) {
      const c = this.cells.get(this.active);
      if (c) c.spent += dt;
    }
  }

  /** The bench's progress callback. */
  readonly onProgress = (e: BenchProgress): void => {
    this.account();
    if (e.kind === 'plan') {
      this.plan = e.plan;
      this.rounds = Math.max(1, e.plan.rounds);
      e.plan.cells.forEach((c, i) =>
        this.cells.set(i, {
          expectedMs: c.expectedMs,
          budgetMs: c.budgetMs,
          spent: 0,
          spentAtRound: 0,
          round: 0,
          started: false,
          done: false,
        }),
      );
      const run = e.plan.run;
      if (run) {
        this.run = {
          setupMs: run.setupMs,
          budgetMs: run.budgetMs,
          setupSpent: 0,
          unattributed: 0,
          started: false,
          cells: new Map(run.cells.map((c) => [c.name, newRunCell(c.expectedMs, c.iterations)])),
        };
      }
      this.total = e.plan.cells.length + (run?.cells.length ?? 0);
      // One short line (a log is read at 100 columns): the count, the estimate, then what the cells are.
      const matrix = `${e.plan.cells.length} in ${this.rounds} interleaved round${this.rounds === 1 ? '' : 's'}`;
      const what = !run
        ? [matrix]
        : e.plan.cells.length === 0
          ? [`${run.cells.length} end to end`]
          : [`${run.cells.length} end to end`, `then ${matrix}`];
      this.stream.write(
        `bench: ${this.total} cells, expected to take about ${clockTime(this.remainingMs() / 1000)} (${what.join(', ')})\n`,
      );
      this.lastLine = this.now();
      // The run pattern goes first (its start-up figures and warm-up before its first cell).
      if (this.run) this.active = 'run';
      return;
    }
    if (e.kind === 'run') {
      this.onRunProgress(e);
      return;
    }
    if (!this.plan) this.total = e.total;
    const cell = this.cells.get(e.index);
    this.active = e.index;
    if (e.kind === 'cell-start') {
      this.inFlight.set(e.index, 0);
      this.current = e.cell;
      if (cell) cell.started = true;
    } else if (e.kind === 'iteration') {
      if (e.rounds) this.inFlight.set(e.index, Math.min(1, e.round! / e.rounds));
      this.current = e.cell;
      if (cell && e.round !== undefined && e.round > cell.round) {
        cell.round = e.round;
        cell.spentAtRound = cell.spent;
      }
    } else {
      this.inFlight.delete(e.index);
      this.done++;
      if (cell) cell.done = true;
      if (!this.tty) {
        this.printLine(
          `[${this.done}/${this.total}] ${e.cell}: p50 ${formatMs(e.row.latency.p50)} ms, n=${e.row.latency.samplesCount} (${this.times()})`,
        );
        return;
      }
    }
    if (this.tty) this.schedule();
    else this.heartbeat();
  };

  private printLine(text: string): void {
    this.stream.write(text + '\n');
    this.lastLine = this.now();
  }

  /** Without a terminal: a line saying where the run is when none was written for a while. */
  private heartbeat(): void {
    if (this.now() - this.lastLine < this.heartbeatMs) return;
    this.printLine(`[${this.done}/${this.total}] measuring ${this.current} (${this.times()})`);
  }

  private times(): string {
    const elapsed = (this.now() - this.started) / 1000;
    const eta = this.etaSeconds();
    return `at ${clockTime(elapsed)}${eta === undefined ? '' : `, ~${clockTime(eta)} left`}`;
  }

  /**
   * How the measured work compares with the plan: wall time over expected time of the rounds
   * finished so far, with the plan itself counted as PRIOR_MS of evidence at ratio 1.
   */
  private scale(): number {
    let spent = PRIOR_MS;
    let expected = PRIOR_MS;
    for (const c of this.cells.values()) {
      // A cell sampled to a time budget takes its budget on any machine: it says nothing of the pace.
      if (c.budgetMs !== undefined) continue;
      if (c.done) {
        spent += c.spent;
        expected += c.expectedMs;
      } else if (c.round > 0) {
        spent += c.spentAtRound;
        expected += (c.expectedMs * c.round) / this.rounds;
      }
    }
    return Math.min(10, Math.max(0.1, spent / expected));
  }

  /** Expected milliseconds left, counting the time since the last event as spent on what was running. */
  private remainingMs(): number {
    const since = this.now() - this.lastEventAt;
    const scale = this.scale();
    let left = 0;
    for (const [index, c] of this.cells) {
      if (c.done) continue;
      const spent = c.spent + (this.active === index ? since : 0);
      // Its time budget (wall time: not scaled), or its own rounds once it has measured one; otherwise its
      // plan, scaled.
      const whole =
        c.budgetMs !== undefined
          ? c.expectedMs
          : c.round > 0
            ? (c.spentAtRound / c.round) * this.rounds
            : c.expectedMs * scale;
      // A cell past its estimate still has something left: a tenth of a round.
      left += Math.max(whole / this.rounds / 10, whole - spent);
    }
    if (this.run) left += this.runRemainingMs(this.run, scale, this.active === 'run' ? since : 0);
    return Math.max(0, left);
  }

  /**
   * The run pattern's time left: a cell that has reported iterations after its first goes on at
   * their pace; the others take their plan at the pace of everything measured so far (the plan
   * itself counted as RUN_PRIOR_MS of evidence at the scale of the matrix's cells measured so far,
   * none when the run pattern goes first, as the bench runs it). `live` ms since the last report
   * are under way.
   */
  private runRemainingMs(r: NonNullable<BenchProgressView['run']>, scale: number, live: number): number {
    if (r.budgetMs !== undefined) {
      // Sampled to a time budget: its budget, less what it spent (not less than a twentieth of it until it is done).
      const cells = [...r.cells.values()];
      if (cells.length > 0 && cells.every((c) => c.finished)) return 0;
      let spent = r.setupSpent + r.unattributed + live;
      for (const c of cells) spent += c.firstSpent + c.laterSpent;
      return Math.max(r.budgetMs / 20, r.budgetMs - spent);
    }
    const perIteration = (c: RunCellState) => c.expectedMs / Math.max(1, c.iterations);
    if (!r.started) {
      let planned = 0;
      for (const c of r.cells.values()) planned += c.expectedMs;
      return Math.max((r.setupMs * scale) / 10, r.setupMs * scale - r.unattributed - live) + planned * scale;
    }
    // Cells of one kind (the linker and controller in the name's brackets: a warm controller's
    // iterations are not a fresh process's) share a pace: of their iterations after each cell's
    // first once there are any (a first iteration's extra is paid once per cell), else of their
    // first iterations; the plan counts as RUN_PRIOR_MS of evidence at the matrix's scale.
    const kindOf = (name: string) => /\[[^\]]*\]\s*$/.exec(name)?.[0] ?? '';
    const pace = new Map<string, number>();
    for (const kind of new Set([...r.cells.keys()].map(kindOf))) {
      const cells = [...r.cells].filter(([name]) => kindOf(name) === kind).map(([, c]) => c);
      const later = cells.some((c) => c.laterDone > 0);
      let spent = RUN_PRIOR_MS * scale;
      let expected = RUN_PRIOR_MS;
      for (const c of cells) {
        spent += later ? c.laterSpent : c.firstSpent;
        expected += perIteration(c) * (later ? c.laterDone : c.firstSpent > 0 ? 1 : 0);
      }
      pace.set(kind, spent / expected);
    }
    let left = 0;
    for (const [name, c] of r.cells) {
      const remaining = Math.max(0, c.iterations - c.done);
      left += remaining * (c.laterDone > 0 ? c.laterSpent / c.laterDone : perIteration(c) * pace.get(kindOf(name))!);
    }
    return left > 0 ? Math.max(left * 0.05, left - live) : 0;
  }

  /** Seconds left, from the plan and what was measured; undefined without a plan before a tenth of the cells. */
  etaSeconds(): number | undefined {
    if (this.plan) return this.remainingMs() / 1000;
    const f = this.fraction();
    const elapsed = (this.now() - this.started) / 1000;
    return f > 0.1 ? Math.max(0, (elapsed / f) * (1 - f)) : undefined;
  }

  /** Fraction of the run measured: by time with a plan, else finished cells plus the rounds done of cells in flight. */
  fraction(): number {
    if (this.plan) {
      const elapsed = this.now() - this.started;
      const f = elapsed / (elapsed + this.remainingMs());
      // The bar never shrinks when an estimate grows.
      this.bar = Math.max(this.bar, Math.min(1, f));
      return this.done === this.total ? 1 : this.bar;
    }
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
    const left = this.etaSeconds();
    const eta = left === undefined ? '?' : clockTime(left);
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
