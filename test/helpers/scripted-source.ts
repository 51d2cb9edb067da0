// A MigrationSource over a scripted VM and destination link, as the source's unit tests build it:
// its lease handover and take-back are pushed onto `order`, beside what the script pushes itself.
import { silentLogger, systemClock } from '../../protocol/index.js';
import { MigrationSource, type MigrationSourceDeps } from '../../shim/vm/migration-source.js';
import type { Vm } from '../../shim/vm/vm.js';
import type { DestinationLink } from '../../shim/migration-link.js';

export function scriptedSource(vm: unknown, link: DestinationLink, order: string[], extra: Partial<Pick<MigrationSourceDeps, 'wakeups' | 'destCheckMs' | 'undefineSource'>>): MigrationSource {
  return new MigrationSource({
    vm: vm as Vm,
    leases: {
      handOver: () => { order.push('released'); return Promise.resolve(); },
      acquireAllForRunning: () => { order.push('leases back'); return Promise.resolve(); },
    },
    clock: systemClock(), log: silentLogger(), connect: () => Promise.resolve(link), undefineSource: () => Promise.resolve(),
    ...extra,
  });
}
