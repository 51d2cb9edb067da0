// Figures about a process read from /proc: CPU time (utime + stime) and resident set size.
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux
const PAGE_SIZE = 4096;

/** CPU seconds and RSS bytes of `pid`; zeros when it is gone. */
export function processStats(pid: number): { cpuTimeSec: number; rssBytes: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const rssPages = Number(fields[21]);
    return { cpuTimeSec: (utime + stime) / CLOCK_TICKS, rssBytes: rssPages * PAGE_SIZE };
  } catch {
    return { cpuTimeSec: 0, rssBytes: 0 };
  }
}
