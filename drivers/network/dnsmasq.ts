// One network's dnsmasq process: started through the runner (so inside whatever namespace the
// runner runs in), judged ready when its pid file names it, found again after a daemon restart
// by its pid file and /proc cmdline, and stopped by pid (TERM, then KILL).
import { readFile } from 'node:fs/promises';
import { delay, type Clock } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { hasLetGo, isLiveProcess } from '../host/proc.js';
import { dnsmasqArgs, dnsmasqCmdlineMarker, type DnsmasqPaths } from './dnsmasq-conf.js';
import type { CommandRunner, ProcessHandle } from './runner.js';

/** How long dnsmasq may take to bind its sockets and write its pid file. */
const READY_TIMEOUT_MS = 5_000;
const POLL_MS = 10;

/** True when `pid` is a live (not zombie) process whose cmdline contains `marker`. */
export const processMatches = isLiveProcess;

/** The pid of the network's running dnsmasq, from its pid file, or undefined. */
export async function findDnsmasq(paths: DnsmasqPaths): Promise<number | undefined> {
  const pid = await readPid(paths.pid);
  return pid !== undefined && processMatches(pid, dnsmasqCmdlineMarker(paths)) ? pid : undefined;
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function logTail(file: string): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.slice(-800).trim();
  } catch {
    return '';
  }
}

/**
 * Starts dnsmasq for the conf at `paths.conf` and waits until it has bound its sockets (its pid
 * file names it). A dnsmasq that exits first, or is not ready in 5 s, is OPERATION_FAILED with
 * the end of its log.
 */
export async function startDnsmasq(runner: CommandRunner, clock: Clock, paths: DnsmasqPaths, network: string): Promise<ProcessHandle> {
  const proc = await runner.spawn('dnsmasq', dnsmasqArgs(paths), { logFile: paths.log });
  let exit: string | undefined;
  void proc.exited.then((e) => { exit = e.signal ?? `exit code ${String(e.code)}`; });
  const deadline = clock.monotonic() + READY_TIMEOUT_MS;
  while (clock.monotonic() < deadline) {
    if ((await readPid(paths.pid)) === proc.pid) return proc;
    if (exit !== undefined) break;
    await delay(clock, POLL_MS);
  }
  if (exit === undefined) killQuietly(proc.pid, 'SIGKILL');
  const tail = await logTail(paths.log);
  throw new VirtqError('OPERATION_FAILED', `dnsmasq for network "${network}" ${exit === undefined ? 'did not become ready in 5 s' : `exited (${exit})`} at start${tail === '' ? '' : `: ${tail}`}`, {
    details: { network, log: paths.log },
  });
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Stops dnsmasq `pid` if it is still the network's: TERM, up to 3 s, then KILL. Returns once it
 * has let go of its sockets (hasLetGo), so a dnsmasq started next can bind the same addresses.
 */
export async function stopDnsmasq(pid: number, paths: DnsmasqPaths, clock: Clock): Promise<void> {
  const marker = dnsmasqCmdlineMarker(paths);
  if (!processMatches(pid, marker)) return;
  killQuietly(pid, 'SIGTERM');
  let deadline = clock.monotonic() + 3_000;
  let killed = false;
  while (!hasLetGo(pid, marker)) {
    if (clock.monotonic() >= deadline) {
      if (killed) break;
      if (processMatches(pid, marker)) killQuietly(pid, 'SIGKILL');
      killed = true;
      deadline = clock.monotonic() + 3_000;
    }
    await delay(clock, POLL_MS);
  }
}
