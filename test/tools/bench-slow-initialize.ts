import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { presetSelection } from '../../harness/bench/matrix.js';
import { openHandle } from '../../harness/bench/mapper-handles.js';
import { DEFAULT_ROUNDS, runBench } from '../../harness/bench/run-bench.js';
import { formatReportJson } from '../../harness/report/report.js';
import { ChecksumOnInitializeMapper, hashMsPerByte, type ExtraWork } from '../helpers/power.js';

/**
 * `jitmem bench --quick` through the library API, with the shared mapper of each workload
 * wrapped so that its initialize hashes the working memory: enough passes to add the given
 * milliseconds per iteration. Usage: node bench-slow-initialize.js OUT.json '{"python": 2.1}'
 */
const [out, extraJson] = process.argv.slice(2) as [string, string];
const extra = JSON.parse(extraJson || '{}') as ExtraWork;
const msPerByte = Object.keys(extra).length ? hashMsPerByte() : 0;
const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const { report } = await runBench({
  selection: presetSelection('quick'),
  preset: 'quick',
  seed: 1,
  cold: false,
  // As the CI gate's runs and the committed baseline its thresholds come from: one CPU for both processes.
  pin: 'same',
  granularity: 1024 ** 3,
  churnGranularity: 4 << 20,
  rounds: DEFAULT_ROUNDS,
  workloadOptions: {},
  repoDir,
  command: ['bench-slow-initialize', out, extraJson ?? '{}'],
  openHandle: async (mapper, executor, options) => {
    const handle = await openHandle(mapper, executor, options);
    const work = options.cell ? extra[options.cell.workload] : undefined;
    if (mapper !== 'shared' || !work || !(work.contentBytes > 0)) return handle;
    // Passes over the content such that one iteration hashes extraMs worth of bytes.
    const passes = work.extraMs / msPerByte / work.contentBytes;
    return { ...handle, memoryMapper: new ChecksumOnInitializeMapper(handle.memoryMapper, passes) };
  },
});
writeFileSync(out, formatReportJson(report));
