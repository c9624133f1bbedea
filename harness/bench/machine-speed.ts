import { performance } from 'node:perf_hooks';
import * as native from '../../native/index.js';
import { quantile } from '../statistics.js';
import type { MachineSpeed, MachineSpeedFigures } from '../report/report.js';

/**
 * How fast the machine itself ran through a bench: a fixed piece of work (native.machineSpeedWalk,
 * no code of ours in it) timed by the controller before every round, of the matrix (on the CPU
 * the round's cells run on) and of the run pattern. Rounds cannot agree more closely than the
 * machine lets a thread run: on a 2-vCPU VM whose host is shared, the walk took 1.4-1.5 ms for
 * minutes, then 2.1-2.3 ms for as long, with spells of tenths of a second between, its CPU time
 * as long as its wall time (the CPU ran slower; nothing else had it), and 1.3-1.6x longer
 * whenever the other vCPU was busy, with a spinning loop as much as with a walk of its own (as
 * if the two shared a core). So it holds whatever slowed a thread at that moment, the VM's host
 * and the work on the other CPUs, this run's own processes among them. The report keeps every
 * timing, and the summary says how far apart the fast and slow moments were, so that a wide
 * interval can be told apart from a noisy piece of code.
 */

/** Where a timing was taken: before a round of the matrix, or of the run pattern. */
export type MachineSpeedPart = 'matrix' | 'run';

/** One timing of the walk, milliseconds. */
export interface MachineSpeedSample {
  /** When, since the monitor started. */
  readonly atMs: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly part: MachineSpeedPart;
}

/** A timing whose CPU time is less than this share of its wall time waited for the CPU (another thread had it). */
const WAITED_BELOW = 0.9;
/** Fast and slow moments within this ratio (95th over 5th percentile): the machine held still. */
export const STEADY_SPREAD = 1.1;
/** Fewer timings than this give no percentiles worth stating. */
const MIN_SAMPLES = 5;

export class MachineSpeedMonitor {
  private readonly samples: MachineSpeedSample[] = [];
  private readonly started = performance.now();
  private work: string | undefined;

  /** Times the walk once, before a round of `part`. */
  sample(part: MachineSpeedPart): void {
    const w = native.machineSpeedWalk();
    this.work ??= `a walk over ${w.bytes / (1 << 20)} MiB, one byte of each 64-byte line read and written, ${w.passes} passes`;
    this.samples.push({
      atMs: Math.round((performance.now() - this.started) * 10) / 10,
      wallMs: w.wallNs / 1e6,
      cpuMs: w.cpuNs / 1e6,
      part,
    });
  }

  /** The figures of the timings so far; none with too few of them. */
  summary(): MachineSpeed | undefined {
    return this.work === undefined ? undefined : summarizeMachineSpeed(this.work, this.samples);
  }
}

const us = (ms: number) => Math.round(ms * 1000) / 1000;

/** One part's figures, or none under MIN_SAMPLES timings. */
function partFigures(part: MachineSpeedPart, samples: readonly MachineSpeedSample[]): MachineSpeedFigures | undefined {
  if (samples.length < MIN_SAMPLES) return undefined;
  const wall = samples.map((s) => s.wallMs);
  const cpu = samples.map((s) => s.cpuMs);
  const p5 = quantile(wall, 0.05);
  const p95 = quantile(wall, 0.95);
  return {
    part,
    samples: samples.length,
    wallMs: {
      p50: us(quantile(wall, 0.5)),
      p5: us(p5),
      p95: us(p95),
      min: us(Math.min(...wall)),
      max: us(Math.max(...wall)),
    },
    cpuMsP50: us(quantile(cpu, 0.5)),
    spread: p95 / p5,
    waitedForCpu: samples.filter((s) => s.cpuMs < WAITED_BELOW * s.wallMs).length,
  };
}

/**
 * The report's figures of a run's timings of the walk, part by part in the order they ran: before
 * the run pattern's rounds, whose processes run unpinned, the walk took 4.1-4.5 ms at the median
 * in three default runs, before the matrix's pinned rounds 2.9, and one distribution over both
 * would read their difference as the machine's spread. None when no part has MIN_SAMPLES timings.
 */
export function summarizeMachineSpeed(work: string, samples: readonly MachineSpeedSample[]): MachineSpeed | undefined {
  const of = (part: MachineSpeedPart) => samples.filter((s) => s.part === part);
  const parts = [...new Set(samples.map((s) => s.part))].flatMap((part) => partFigures(part, of(part)) ?? []);
  if (parts.length === 0) return undefined;
  return {
    work,
    parts,
    series: samples.map((s) => ({ atMs: s.atMs, wallMs: us(s.wallMs), cpuMs: us(s.cpuMs), part: s.part })),
  };
}

const PART_NAMES: Record<MachineSpeedPart, string> = { matrix: 'the matrix', run: 'the run pattern' };

/** What the walk took, how far apart its times were, and what that means for the rounds (the page's paragraph). */
export function machineSpeedText(m: MachineSpeed): string {
  const f = (x: number) => x.toFixed(2);
  const part = (p: MachineSpeedFigures) =>
    `before the rounds of ${PART_NAMES[p.part]} (n = ${p.samples}) ${f(p.wallMs.p50)} ms at the median, ` +
    `${f(p.wallMs.p5)}-${f(p.wallMs.p95)} ms from the 5th to the 95th percentile (${p.spread.toFixed(2)}x; ` +
    `${f(p.wallMs.min)}-${f(p.wallMs.max)} ms in all), CPU time ${f(p.cpuMsP50)} ms at the median` +
    (p.waitedForCpu
      ? `, ${p.waitedForCpu} of them waiting for the CPU (CPU time under 90% of the wall time: another thread had it)`
      : '');
  const widest = Math.max(...m.parts.map((p) => p.spread));
  const reading =
    widest <= STEADY_SPREAD
      ? `the machine held still to within ${((STEADY_SPREAD - 1) * 100).toFixed(0)}%`
      : `the speed a thread got from the machine moved that much (the host, and the work on the other CPUs), so rounds can disagree by as much whatever they measure`;
  return `${m.work[0]!.toUpperCase()}${m.work.slice(1)}, timed ${m.parts.map(part).join('; ')}: ${reading}.`;
}

/** The summary's line. */
export function machineSpeedLine(m: MachineSpeed): string {
  const text = machineSpeedText(m);
  return `machine speed: ${text[0]!.toLowerCase()}${text.slice(1)}`;
}
