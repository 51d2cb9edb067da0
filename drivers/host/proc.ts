// Facts about host processes read from /proc: state, identity, CPU time and resident set. Exit
// of a process that is not our child is judged from here (a zombie counts as gone), never from
// kill(pid, 0), which an orphan not yet reaped by PID 1 still answers.
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

/** The state letter of /proc/PID/stat, or undefined when there is no such process. */
export function procState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

/** True for the state of a process that has ended: none, a zombie, or one being reaped. */
function endedState(state: string | undefined): boolean {
  return state === undefined || state === 'Z' || state === 'X';
}

/**
 * True when `pid` is a live (not zombie) process whose command line contains `marker`.
 * A zombie's (or a dying process's) cmdline reads empty: the kernel has released its memory, which
 * is where the command line is read from. So the command line alone answers, without reading
 * /proc/PID/stat first (a restarted virtqemud asks this for every VM's QEMU before its first
 * listing; issue 15 target 4, session 13).
 */
export function isLiveProcess(pid: number, marker: string): boolean {
  if (marker === '') {
    if (endedState(procState(pid))) return false;
  }
  return procText(`/proc/${pid}/cmdline`, marker)?.includes(marker) ?? false;
}

/** Read size for /proc text files: under Buffer's pool threshold, so a read takes no allocation of its own. */
const PROC_CHUNK = 4000;

// A /proc file (reported as size 0) read to its end in PROC_CHUNK pieces. readFileSync would
// allocate a fresh 64 KiB buffer per call for such a file and copy it out again: a restarted
// virtqemud checks every VM's QEMU this way before its first listing (~0.12 ms of CPU per VM
// saved; issue 15 target 4, session 12).
// With `until`, the read stops once the text holds it: a QEMU's command line fits one chunk, and the
// read that would only find its end is saved (one syscall per VM before a restart's first listing).
function procText(path: string, until?: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.allocUnsafe(PROC_CHUNK);
    let text = '';
    for (let n = readSync(fd, buf, 0, PROC_CHUNK, null); n > 0; n = readSync(fd, buf, 0, PROC_CHUNK, null)) {
      text += buf.toString('latin1', 0, n);
      if (until !== undefined && text.includes(until)) break;
    }
    return text;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * True once `pid` has let go of what it held (its sockets, files and their locks): it is gone, a
 * zombie, or its pid now names another program. Not the same as isLiveProcess turning false: a
 * dying process's command line reads empty from the moment its memory is released, and Linux
 * closes its files only after that (do_exit: exit_mm, then exit_files). A dnsmasq started in that
 * window found its address still bound (EADDRINUSE); a QEMU would find its images still locked.
 */
export function hasLetGo(pid: number, marker: string): boolean {
  const state = procState(pid);
  return letGo(state, state === undefined ? undefined : procText(`/proc/${pid}/cmdline`, marker), marker);
}

/** hasLetGo's judgement from a process's state letter and command line (undefined: unreadable). */
export function letGo(state: string | undefined, cmdline: string | undefined, marker: string): boolean {
  if (endedState(state)) return true;
  if (cmdline === undefined) return true; // gone between the two reads
  if (cmdline === '') return false; // exiting: memory released, files maybe not yet closed
  return !cmdline.includes(marker);
}

/** True when `pid` is a process that is not (yet) a zombie: whatever it runs. */
export function processStands(pid: number): boolean {
  return !endedState(procState(pid));
}

/** True when `pid` is a live QEMU whose command line contains `marker` (its `-uuid`, say). */
export const isLiveQemu = isLiveProcess;

/** The pid of a live QEMU started with `-uuid UUID`, if any: one scan of /proc. */
export function findLiveQemu(uuid: string): number | undefined {
  const marker = `\0-uuid\0${uuid}\0`;
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && isLiveQemu(pid, marker)) return pid;
  }
  return undefined;
}

/**
 * Every live process started with a `-uuid` argument (QEMUs), with its command line: one scan of
 * /proc, one read per process (a zombie's command line reads empty, so it is never among them).
 */
export function liveQemuCommandLines(): Array<{ pid: number; cmdline: string }> {
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const cmdline = procText(`/proc/${pid}/cmdline`);
    if (cmdline?.includes('\0-uuid\0') === true) found.push({ pid, cmdline });
  }
  return found;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
const PAGE_SIZE = 4096;

/** Clock ticks since boot, the unit of a process's start time in /proc/PID/stat. */
export function ticksSinceBoot(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * CLOCK_TICKS);
}

/** The start time of `pid` (clock ticks since boot), or undefined when it is gone or a zombie. */
export function processStart(pid: number): number | undefined {
  const fields = statFields(pid);
  if (fields === undefined || endedState(fields[0])) return undefined;
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

/** CPU seconds and RSS bytes of `pid`; zeros when it is gone. */
export function processStats(pid: number): ProcessStats {
  const fields = statFields(pid);
  if (fields === undefined) return { cpuTimeSec: 0, rssBytes: 0 };
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { cpuTimeSec: (utime + stime) / CLOCK_TICKS, rssBytes: rssPages * PAGE_SIZE };
}

/** What processStats reports. */
export interface ProcessStats {
  cpuTimeSec: number;
  rssBytes: number;
}

// The fields of /proc/PID/stat from the third (the state letter) on: the command name before
// them may contain spaces. One open, one read, one close: readFileSync adds an fstat and a
// second read to find the end of a file whose size /proc reports as 0 (17.7 against 11.7 µs per
// processStats here).
function statFields(pid: number): string[] | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.allocUnsafe(2048);
    const stat = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

const TICK_MS = 1000 / CLOCK_TICKS;

/**
 * processStats, read at most once per clock tick for each process: /proc counts CPU time in
 * ticks (10 ms), so a client polling getInfo faster than that would only read the same figures
 * again. Holds the last `maxEntries` processes asked about.
 */
export class ProcessStatsCache {
  private readonly entries = new Map<number, { at: number; stats: ProcessStats }>();

  constructor(private readonly monotonicMs: () => number, private readonly maxEntries = 1024) {}

  get(pid: number): ProcessStats {
    const now = this.monotonicMs();
    const hit = this.entries.get(pid);
    if (hit !== undefined && now - hit.at < TICK_MS) return hit.stats;
    const stats = processStats(pid);
    this.entries.delete(pid);
    this.entries.set(pid, { at: now, stats });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as number);
    return stats;
  }
}
