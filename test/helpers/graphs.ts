import { allocGroup, R, W, X } from '../../graph/alloc-group.js';
import type { LinkGraph, Section } from '../../graph/link-graph.js';
import type { AllocActionCallPair } from '../../mappers/memory-mapper.js';
import * as native from '../../native/index.js';

/** x86-64: lea eax, [rdi+1]; ret. Returns its argument plus one. */
export const INC_CODE = Uint8Array.of(0x8d, 0x47, 0x01, 0xc3);
/** x86-64: lea eax, [rdi+2]; ret. */
export const ADD2_CODE = Uint8Array.of(0x8d, 0x47, 0x02, 0xc3);

export const RX = allocGroup(R | X);
export const RW = allocGroup(R | W);
export const RO = allocGroup(R);

export function section(name: string, group = RW, size = 16, alignment = 8, content?: Uint8Array): Section {
  return content ? { name, group, alignment, size: content.length, content } : { name, group, alignment, size };
}

/** A graph with the increment function, some read-only data, initialized data and bss. */
export function incGraph(name = 'inc'): LinkGraph {
  return {
    name,
    sections: [
      { name: '.text', group: RX, alignment: 16, size: INC_CODE.length, content: INC_CODE },
      { name: '.rodata', group: RO, alignment: 8, size: 8, content: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
      { name: '.data', group: RW, alignment: 8, size: 24, content: new Uint8Array(24).fill(0xab) },
      { name: '.bss', group: RW, alignment: 8, size: 200 },
    ],
  };
}

/**
 * Six segments, one per AllocGroup, in BasicLayout order (ascending id): R-- (2 pages: 5000
 * bytes), RW- (3 pages: 100 bytes and 9000 of bss), R-X (1: the increment function), then the
 * finalize-lifetime groups R-- (1), RW- (1), R-X (1: the increment function again): 9 pages.
 */
export function manySegmentGraph(name = 'many'): LinkGraph {
  const fin = (prot: number) => allocGroup(prot, 'finalize');
  return {
    name,
    sections: [
      { name: '.rodata', group: RO, alignment: 8, size: 5000, content: new Uint8Array(5000).fill(7) },
      { name: '.data', group: RW, alignment: 8, size: 100, content: new Uint8Array(100).fill(9) },
      { name: '.bss', group: RW, alignment: 8, size: 9000 },
      { name: '.text', group: RX, alignment: 16, size: INC_CODE.length, content: INC_CODE },
      { name: '.init.rodata', group: fin(R), alignment: 8, size: 16, content: new Uint8Array(16).fill(3) },
      { name: '.init.data', group: fin(R | W), alignment: 8, size: 8, content: new Uint8Array(8).fill(4) },
      { name: '.init.text', group: fin(R | X), alignment: 16, size: INC_CODE.length, content: INC_CODE },
    ],
  };
}

/** SPS arguments of the addon's trace action: (addr log, u64 capacity, u64 value). */
export function traceArgs(log: number, capacity: number, value: number): Uint8Array {
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(log), true);
  dv.setBigUint64(8, BigInt(capacity), true);
  dv.setBigUint64(16, BigInt(value), true);
  return b;
}

/** Action pairs that record finalize values f[i] and dealloc values d[i] in the log. */
export function tracePairs(log: number, capacity: number, pairs: Array<[number, number]>): AllocActionCallPair[] {
  const trace = native.actionAddresses().trace;
  return pairs.map(([f, d]) => ({
    finalize: { fn: trace, args: traceArgs(log, capacity, f) },
    dealloc: { fn: trace, args: traceArgs(log, capacity, d) },
  }));
}

/** Reads a trace log (u64 count, then entries) from this process's memory. */
export function readTraceLog(log: number): number[] {
  const count = Number(new BigUint64Array(native.view(log, 8).slice().buffer)[0]);
  const entries = new BigUint64Array(native.view(log + 8, count * 8).slice().buffer);
  return [...entries].map(Number);
}
