// Kills every process whose command line mentions a test's temporary root: shims and QEMUs that
// daemons started detached, whatever state the test left them in.
import { readdirSync, readFileSync } from 'node:fs';

/** SIGKILLs every process (but this one) whose command line contains `dir`; returns their pids. */
export function killProcessesUnder(dir: string): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!cmdline.includes(dir)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Already gone.
    }
  }
  return killed;
}
