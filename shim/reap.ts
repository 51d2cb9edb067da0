// `virtq-shim --reap`: the shim's last duty towards a QEMU that no shim can run any more — one
// whose shim died while starting it, before any state file recorded it. Only a shim kills
// QEMU; virtqemud asks for it this way instead of signalling the process itself. The QEMU is
// identified by pid and the VM's UUID on its command line (a recycled pid is never signalled),
// stopped with SIGTERM, then SIGKILL, and judged gone from /proc (it is not our child).
import { VirtqError, delay, type Clock } from '../protocol/index.js';
import { hasLetGo, isLiveQemu } from '../drivers/host/proc.js';

/** What to reap. */
export interface ReapRequest {
  name: string;
  uuid: string;
  pid: number;
  clock: Clock;
  /** How long QEMU may take after SIGTERM before SIGKILL (default 1000 ms). */
  graceMs?: number;
}

/** Stops the orphan QEMU; resolves with true when one was stopped, false when it was already gone. */
export async function reapOrphan(r: ReapRequest): Promise<boolean> {
  const marker = `\0-uuid\0${r.uuid.toLowerCase()}\0`;
  if (!isLiveQemu(r.pid, marker)) return false;
  // Gone once its images' locks are released, so the VM can be started again at once.
  const gone = async (ms: number): Promise<boolean> => {
    for (let waited = 0; waited < ms; waited += 20) {
      if (hasLetGo(r.pid, marker)) return true;
      await delay(r.clock, 20);
    }
    return hasLetGo(r.pid, marker);
  };
  signal(r.pid, 'SIGTERM');
  if (await gone(r.graceMs ?? 1000)) return true;
  if (isLiveQemu(r.pid, marker)) signal(r.pid, 'SIGKILL');
  if (await gone(5000)) return true;
  throw new VirtqError('OPERATION_FAILED', `QEMU pid ${r.pid} of VM "${r.name}" did not exit after SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone between the check and the signal.
  }
}
