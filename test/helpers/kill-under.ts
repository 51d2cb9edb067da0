// Kills every process whose command line mentions a test's temporary root: shims and QEMUs that
// daemons started detached, whatever state the test left them in.
import { readdirSync, readFileSync } from 'node:fs';

/** Live processes (zombies read an empty command line) whose command line contains `text`, this one aside. */
export function processesNaming(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(text)) found.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** SIGKILLs every process (but this one) whose command line contains `dir`; returns their pids. */
export function killProcessesUnder(dir: string): number[] {
  const killed: number[] = [];
  for (const pid of processesNaming(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Already gone.
    }
  }
  return killed;
}
