/**
 * Cost counters of this process: the operations a transport's time is made of, counted where
 * they happen (the native wrappers count system calls and copies, the channel counts frames and
 * bytes). Counts do not depend on the machine's load, so a change in them is a change in what
 * the code does. One set per process: the controller and the executor each keep their own, and
 * the executor reports its set through a jitmem service.
 */

export interface OsCounts {
  /** mmap calls (anonymous reservations and shared mappings). */
  mmap: number;
  mprotect: number;
  munmap: number;
  /** POSIX shared-memory objects created. */
  shmCreated: number;
  /** Instruction-cache flushes requested (a no-op instruction on x86-64, counted all the same). */
  icacheFlushes: number;
  /** Bytes moved by memcpy/memmove between native memory and JS buffers or within native memory. */
  bytesCopied: number;
}

const counts: OsCounts = { mmap: 0, mprotect: 0, munmap: 0, shmCreated: 0, icacheFlushes: 0, bytesCopied: 0 };

/** The live counters: the layers that do the operations add to them. */
export const osCounts: OsCounts = counts;

/** A copy of this process's OS counters. */
export function osCountsSnapshot(): OsCounts {
  return { ...counts };
}

/** The names of OsCounts, in a fixed order (the wire form of the executor's counters uses it). */
export const OS_COUNT_NAMES: ReadonlyArray<keyof OsCounts> = [
  'mmap',
  'mprotect',
  'munmap',
  'shmCreated',
  'icacheFlushes',
  'bytesCopied',
];

/** Every counter of one process: the OS counts above, the wire, and getrusage's. */
export interface ProcessCostCounters extends OsCounts {
  /** Calls made over the wire (controller) or handled (executor). */
  roundTrips: number;
  wireBytesOut: number;
  wireBytesIn: number;
  minorFaults: number;
  voluntarySwitches: number;
  /**
   * Nanoseconds spent inside call handlers: the executor's time from a call's frame read to its
   * result written. The controller handles no calls of its own (0); LLVM's executor has no
   * counters at all. Last in the wire order, so an executor that sends eleven values is still read.
   */
  handlerNs: number;
}

/** The names of ProcessCostCounters in the order the executor's counter service sends them. */
export const PROCESS_COST_COUNTER_NAMES: ReadonlyArray<keyof ProcessCostCounters> = [
  'roundTrips',
  'wireBytesOut',
  'wireBytesIn',
  'bytesCopied',
  'mmap',
  'mprotect',
  'munmap',
  'shmCreated',
  'icacheFlushes',
  'minorFaults',
  'voluntarySwitches',
  'handlerNs',
];

/** This process's counters now, given its wire traffic (zeros for a process with no channel). */
export function processCostCounters(
  wire: { roundTrips: number; bytesOut: number; bytesIn: number } = { roundTrips: 0, bytesOut: 0, bytesIn: 0 },
): ProcessCostCounters {
  const usage = process.resourceUsage();
  return {
    ...counts,
    roundTrips: wire.roundTrips,
    wireBytesOut: wire.bytesOut,
    wireBytesIn: wire.bytesIn,
    minorFaults: usage.minorPageFault,
    voluntarySwitches: usage.voluntaryContextSwitches,
    handlerNs: 0,
  };
}

/** after - before, counter by counter. */
export function costCountersDelta(after: ProcessCostCounters, before: ProcessCostCounters): ProcessCostCounters {
  const out = { ...after };
  for (const k of PROCESS_COST_COUNTER_NAMES) out[k] = after[k] - before[k];
  return out;
}
