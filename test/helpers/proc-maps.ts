import { readFileSync, readlinkSync } from 'node:fs';
import { R, W, X } from '../../graph/alloc-group.js';

/** One line of /proc/PID/maps: a mapping, its protection (R=1, W=2, X=4) and what backs it. */
export interface MapsEntry {
  readonly start: number;
  readonly end: number;
  readonly prot: number;
  readonly shared: boolean;
  /** The file (or [heap], [stack], ...) behind the mapping; '' for anonymous memory. */
  readonly path: string;
}

/** The mappings of process `pid` ('self' for this one), as the kernel has them now. */
export function procMaps(pid: number | 'self'): MapsEntry[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(/\s+/);
      const [s, e] = fields[0]!.split('-').map((h) => parseInt(h, 16));
      const p = fields[1]!;
      return {
        start: s!,
        end: e!,
        prot: (p[0] === 'r' ? R : 0) | (p[1] === 'w' ? W : 0) | (p[2] === 'x' ? X : 0),
        shared: p[3] === 's',
        path: fields.slice(5).join(' '),
      };
    });
}

export function writableAndExecutable(m: MapsEntry): boolean {
  return (m.prot & W) !== 0 && (m.prot & X) !== 0;
}

/** Whether process `pid` is a Node process (whose own JIT keeps a writable and executable code space). */
export function isNodeProcess(pid: number | 'self'): boolean {
  return /(^|\/)node[^/]*$/.test(readlinkSync(`/proc/${pid}/exe`));
}
