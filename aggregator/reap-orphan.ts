// A QEMU no state file names (its shim died between spawning it and recording it) can never be
// taken over: virtqemud has it stopped by reaping shims (virtq-shim --reap; only a shim signals a
// QEMU, decision 0013), after a failed start and after a restart's recovery.
import { VirtqError } from '../protocol/index.js';
import { isLiveQemu } from '../drivers/host/proc.js';
import type { ShimSpawner } from './spawner.js';

/** Reaping shims one QEMU is given at most: one can be killed too, and the QEMU would then run on unfound. */
const REAP_ATTEMPTS = 3;

/**
 * Has a reaping shim stop `pid`, the QEMU of VM `vm`; while it stands, again with a fresh shim
 * (chaos seed 34005: the first one was killed before it signalled). Says how it went.
 */
export async function reapOrphanQemu(spawner: Pick<ShimSpawner, 'reap'>, vm: { name: string; uuid: string }, pid: number): Promise<string> {
  let why = '';
  for (let attempt = 1; attempt <= REAP_ATTEMPTS; attempt++) {
    try {
      await spawner.reap(vm.name, vm.uuid, pid);
      return attempt === 1 ? 'was stopped by a reaping shim' : `was stopped by a reaping shim (attempt ${attempt})`;
    } catch (err) {
      why = VirtqError.from(err).message;
      if (!isLiveQemu(pid, vm.uuid)) return `is gone (its reaping shim failed: ${why})`;
    }
  }
  return `could not be stopped by ${REAP_ATTEMPTS} reaping shims (the last: ${why})`;
}
