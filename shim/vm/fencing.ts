// Fencing (docs/decisions/0030): when the lock plugin says the VM's disk leases may be lost (the
// host's etcd lease is ending), the vCPUs are paused at once with reason `lease-lost`, outside the
// job lock (a long job must not delay it); when the leases are held again, the VM is resumed if,
// and only if, fencing paused it. A lease another host took meanwhile keeps the VM paused.
import type { Logger } from '../../protocol/index.js';
import type { VmLeases } from './leases.js';
import type { Vm } from './vm.js';

/** The pause reason a fenced VM reports (event `suspended`, `dominfo` reason). */
export const FENCED_REASON = 'lease-lost';

/** Watches `vm`'s leases when its lock plugin can lose them; undefined when it cannot. */
export function fenceOnLeaseLoss(vm: Vm, leases: VmLeases, log: Logger): { dispose(): void } | undefined {
  let pausedByFence = false;
  return leases.watch({
    lost: async () => {
      if (vm.state !== 'running') {
        log.error({ msgId: 'LEASE_LOST', state: vm.state }, 'the host lease is ending: disk leases may be lost (the VM is not running)');
        return;
      }
      log.error({ msgId: 'LEASE_LOST' }, 'the host lease is ending: pausing the VM so it stops writing to leased disks');
      leases.fenced = 'it is fenced: this host has no live etcd lease, so its disk leases may be lost; it resumes by itself once they are held again';
      vm.expectedPause = FENCED_REASON;
      try {
        await vm.monitor().stop();
        pausedByFence = true;
      } catch (err) {
        vm.expectedPause = undefined;
        leases.fenced = undefined;
        log.error({ err, msgId: 'FENCE_FAILED' }, 'cannot pause the VM after losing its disk leases');
      }
    },
    regained: async () => {
      log.info({ msgId: 'LEASE_REGAINED' }, 'disk leases held again');
      leases.fenced = undefined;
      if (!pausedByFence) return;
      pausedByFence = false;
      // Paused by someone else since (or stopped): left as it is.
      if (vm.state !== 'paused' || vm.reason !== FENCED_REASON) return;
      vm.expectedResume = 'lease-regained';
      await vm.monitor().cont();
    },
    takenOver: (message) => {
      pausedByFence = false;
      leases.fenced = `it is fenced for good: ${message}; another host took the disk while this host had no lease — destroy this VM`;
      log.error({ msgId: 'LEASE_TAKEN_OVER', message }, 'a disk lease was taken by another host while this host was away: the VM stays paused; destroy it (or check the other host) before using the disk here');
    },
  });
}
