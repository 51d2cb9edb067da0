// Whether a shim can hand its VM over now (decision 0021), asked before an upgrade takes the VM's
// job lock. A shim serves its admin socket from the moment its name is its own, which for a
// successor is before it has re-attached to QEMU: an upgrade asked in that window waits (bounded)
// for the bring-up instead of finding no QEMU pid and refusing with the VM's state, which read
// "running" and told nobody what to do (CI, session 12). A shim that is exiting, stopped or
// already replaced by a successor, refuses at once and says where the VM is served now.
import { VirtqError, type Clock, type DomainState } from '../../protocol/index.js';
import { settlesWithin } from '../vm/timing.js';

/** What of a shim the check reads. */
export interface ReadinessParts {
  vm: { def: { name: string }; state: DomainState; qemuPid: number | undefined };
  clock: Clock;
  /** True once the shim is stopping (SIGTERM), its VM has ended, or it handed the VM over. */
  stopping(): boolean;
  /** Settles once the shim has brought its VM up: started QEMU, or (a successor) re-attached to it. */
  up: Promise<void>;
}

/** Resolves when `p` can be upgraded; OPERATION_INVALID, with what to do, when it cannot. */
export async function awaitUpgradable(p: ReadinessParts, upMs: number): Promise<void> {
  const name = p.vm.def.name;
  if (p.stopping()) throw exiting(name);
  if (!await settlesWithin(p.clock, p.up, upMs)) {
    throw new VirtqError('OPERATION_INVALID', `the shim of VM "${name}" (pid ${process.pid}) has not finished bringing the VM up within ${upMs} ms (it is ${p.vm.state}, ${p.vm.qemuPid === undefined ? 'no QEMU attached yet' : `QEMU pid ${p.vm.qemuPid}`}); see its log, and upgrade it once \`virtq dominfo ${name}\` shows a QEMU pid`);
  }
  upgradableNow(p);
}

/** The checks an upgrade repeats once it holds the VM's job lock (nothing may have changed meanwhile). */
export function upgradableNow(p: Omit<ReadinessParts, 'up' | 'clock'>): void {
  const name = p.vm.def.name;
  if (p.stopping()) throw exiting(name);
  if (p.vm.state !== 'running' && p.vm.state !== 'paused') {
    throw new VirtqError('OPERATION_INVALID', `the shim of VM "${name}" can be upgraded only while the VM is running or paused (it is ${p.vm.state})`);
  }
  if (p.vm.qemuPid === undefined) throw new VirtqError('OPERATION_INVALID', `the shim of VM "${name}" (pid ${process.pid}) has no QEMU process attached (the VM is ${p.vm.state}); try again in a second`);
}

function exiting(name: string): VirtqError {
  return new VirtqError('OPERATION_INVALID', `the shim (pid ${process.pid}) no longer serves VM "${name}": it is exiting, stopped or replaced by its successor; connect to the VM's sockets again (virtqemud does) to reach the shim that serves it now`);
}
