// Processes for the lease tests: a stand-in QEMU holding the leases' lifeline, as the shim's
// spawner does, and bounded waits for what a process exit makes true.
import { spawn, type ChildProcess } from 'node:child_process';
import type { StartLeases } from '../../drivers/lock/types.js';

/** Spawns the stand-in QEMU (recorded in `procs` for the test's clean-up) and tells the leases its pid. */
export async function fakeQemu(leases: StartLeases, procs: ChildProcess[]): Promise<ChildProcess> {
  const child = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', ...leases.inheritFds], detached: true });
  procs.push(child);
  await leases.spawned(child.pid as number);
  return child;
}

/** Kills `child` and resolves once it has exited. */
export function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); });
}

/** Polls a condition that a process exit makes true; bounded, so a broken lease fails the test. */
export async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
