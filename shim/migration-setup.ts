// How a shim takes part in migrations, kept out of shim.ts: the source side every shim has, and
// for a shim started with --incoming, a QEMU launched with `-incoming defer` and no disk lease
// (only the lifeline the leases taken at switchover will be bound to).
import { RpcClient, daemonSockets, migrationSocket, typedClient, virtqProgram, type Clock, type Handlers, type Layout, type Logger, type VirtqProgram } from '../protocol/index.js';
import type { HypervisorDriver } from '../drivers/hypervisor/types.js';
import type { Vm, VmDeps } from './vm/vm.js';
import type { VmLeases } from './vm/leases.js';
import { MigrationSource } from './vm/migration-source.js';
import { INCOMING_REASON, MigrationIncoming } from './vm/migration-incoming.js';
import { migrationHandlers } from './handlers/migration-handlers.js';
import { connectDestination } from './migration-link.js';

/** The leases and driver of a shim's VM, changed for an incoming migration. */
export function incomingLaunch(driver: HypervisorDriver, leases: VmLeases): { driver: HypervisorDriver; leases: VmDeps['leases'] } {
  return {
    driver: {
      ...driver,
      prepareLaunch: async (def, options) => {
        const plan = await driver.prepareLaunch(def, options);
        return { ...plan, argv: [...plan.argv, '-incoming', 'defer'] };
      },
    },
    leases: {
      // The disks are the source's until switchover: QEMU gets only the lifeline.
      acquireForStart: (def) => leases.acquireForStart({ ...def, disks: [] }),
      releaseAll: (def, qemuPid) => leases.releaseAll(def, qemuPid),
      diskHooks: (vm) => leases.diskHooks(vm),
    },
  };
}

/** A shim's migration parts. */
export interface ShimMigration {
  /** Present when the shim was started for an incoming migration. */
  incoming: MigrationIncoming | undefined;
  /** The pause reason the VM starts with (incoming) or undefined. */
  pausedReason: string | undefined;
  handlers(persisted: () => Promise<void>): Handlers<VirtqProgram>;
  /** The VM ended by moving away, or its incoming migration never ran it: no end to record here. */
  leavesNoRecord(): boolean;
  /** After re-attaching: cancels a migration the predecessor left running in QEMU. */
  recover(): Promise<void>;
}

/** Builds the migration parts of the shim of `vm`. */
export function shimMigration(o: { vm: Vm; leases: VmLeases; clock: Clock; log: Logger; layout: Layout; incoming: boolean }): ShimMigration {
  const { vm, leases, clock, log, layout } = o;
  const source = new MigrationSource({
    vm, leases, clock, log,
    connect: (uri) => connectDestination(uri, clock),
    undefineSource: async (name) => {
      const rpc = await RpcClient.connect(daemonSockets(layout).rw, { clock, defaultTimeoutMs: 30_000 });
      try {
        await typedClient(virtqProgram, rpc).undefine({ name });
      } finally {
        rpc.close();
      }
    },
  });
  const incoming = o.incoming ? new MigrationIncoming({ vm, leases, clock, log, socketPath: migrationSocket(layout, vm.def.name) }) : undefined;
  return {
    incoming,
    pausedReason: o.incoming ? INCOMING_REASON : undefined,
    handlers: (persisted) => migrationHandlers({ vm, source, incoming, persisted }),
    recover: () => source.recover(),
    leavesNoRecord: () => (vm.state === 'shutoff' && vm.reason === 'migrated') || (incoming !== undefined && !incoming.ran),
  };
}
