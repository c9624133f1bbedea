import { readdirSync, readFileSync } from 'node:fs';

/**
 * What a process that does not finish is doing, read from /proc before it is killed: for it and
 * every descendant, each thread's kernel wait channel and the system call it is in (number and
 * first argument, i.e. the descriptor of a read or write). A hang then says which side waits on
 * what (e.g. llvm-jitlink's reader in read(5) while the executor waits in futex), where a bare
 * timeout says nothing. Linux only; elsewhere, or for a process already gone, it says so.
 */
export function describeProcessTree(rootPid: number, maxProcesses = 8): string {
  const lines: string[] = [];
  const queue = [rootPid];
  const seen = new Set<number>();
  while (queue.length > 0 && seen.size < maxProcesses) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    const comm = readProc(`/proc/${pid}/comm`);
    if (comm === undefined) {
      lines.push(`pid ${pid}: gone`);
      continue;
    }
    const threads: string[] = [];
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      // gone meanwhile
    }
    for (const tid of tids) {
      const wchan = readProc(`/proc/${pid}/task/${tid}/wchan`) ?? '?';
      const state = (readProc(`/proc/${pid}/task/${tid}/stat`) ?? '').replace(/^.*\) /, '').split(' ')[0] ?? '?';
      const syscall = (readProc(`/proc/${pid}/task/${tid}/syscall`) ?? '?').split(' ').slice(0, 2).join(' ');
      threads.push(`${tid} ${state} ${wchan === '0' ? '-' : wchan} [${syscall}]`);
      for (const child of (readProc(`/proc/${pid}/task/${tid}/children`) ?? '').split(' ')) {
        if (/^\d+$/.test(child)) queue.push(Number(child));
      }
    }
    lines.push(`pid ${pid} (${comm}): ${threads.join('; ')}`);
  }
  return lines.join('\n');
}

function readProc(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
