// Whether a SIGSTOPped process has really stopped: every thread of it in state T. kill(2) returns
// once the signal is queued; a thread in an uninterruptible call (an etcd member's WAL fsync on a
// loaded disk) runs on until the call returns. The quorum-loss probes (Q1) are sent only after.
import { readdirSync, readFileSync } from 'node:fs';
import { delay, systemClock } from '../../protocol/index.js';

const clock = systemClock();

/** Threads of `pid` not (yet) in state T, as "tid:state"; [] when all are stopped (or it is gone). */
export function runningThreads(pid: number): string[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'T' && state !== 't') out.push(`${tid}:${state}`);
    } catch {
      // The thread exited meanwhile.
    }
  }
  return out;
}

/** Until every thread of every pid is stopped; the threads still running after `ms` ([] when all stopped). */
export async function waitStopped(pids: number[], ms = 10_000): Promise<string[]> {
  const end = clock.monotonic() + ms;
  for (;;) {
    const left = pids.flatMap((p) => runningThreads(p).map((t) => `${p}/${t}`));
    if (left.length === 0 || clock.monotonic() > end) return left;
    await delay(clock, 10);
  }
}
