// The second part of a pool shim's rehearsal (shim/warm-up.ts): the VM's own objects, built once
// around a made-up VM and dropped, so their constructors and the handler tables' builders are not
// first-time code after the hand-off. A profile of warm starts (bench/shim/lazy-vqd.mjs, issue 15
// target 1, session 14) listed the Vm with its disks, NICs and monitor link, the metrics, the
// per-VM handler tables, the QEMU driver, the lock plugin check and the migration parts among the
// bundle functions V8 still compiled after the hand-off.
// Pure: the stubs below are never called, nothing listens, no timer is left, no file is opened
// (the console hub, which opens its log file, is not built: the handlers only keep a reference).
import type { Clock, ResolvedDefinition } from '../protocol/index.js';
import { rootLayout } from '../protocol/index.js';
import type { Logs } from '../daemon/log-filters.js';
import { qemuDriver } from '../drivers/hypervisor/qemu/driver.js';
import { checkLockPlugin } from '../drivers/lock/loader.js';
import { Vm } from './vm/vm.js';
import { MonitorListener } from './vm/monitor-listener.js';
import type { ConsoleHub } from './vm/console.js';
import type { VmLeases } from './vm/leases.js';
import type { Spawner } from './vm/qemu-process.js';
import { fenceOnLeaseLoss } from './vm/fencing.js';
import { noSecretDaemon } from './vm/disk-resolver.js';
import { vmHandlers } from './handlers/vm-handlers.js';
import { saveHandlers } from './handlers/save-handlers.js';
import { ShimMetrics, shimRegistry } from './metrics.js';
import { shimMigration } from './migration-setup.js';

const never = (): never => {
  throw new Error('warm-up rehearsal: not to be called');
};

/** Builds and drops the rehearsal VM's objects; returns the handler names built (for its test). */
export function rehearseVm(clock: Clock, logs: Logs, resolved: ResolvedDefinition): string[] {
  const log = logs.module('vm');
  // A lock plugin as the lockfile plugin declares itself: only its shape is checked.
  checkLockPlugin({ abiVersion: 1, name: 'rehearsal', enforcing: false, features: [], create: never }, 'rehearsal');
  // Never called by anything built here: the VM is not started.
  const leases = { acquireForStart: never, releaseAll: never, refuseWhileFenced: never, downgrade: never, upgrade: never, diskHooks: () => ({}), watch: () => undefined } as unknown as VmLeases;
  const spawner: Spawner = { spawn: never } as unknown as Spawner;
  const driver = qemuDriver({ clock, binary: '/nonexistent/qemu', accel: 'tcg', sandbox: true, monitorSocket: '/nonexistent/m.sock', consoleSocket: '/nonexistent/c.sock' });
  const vm = new Vm(resolved, {
    clock, log, spawner, driver, qemuLogFile: '/nonexistent/qemu.log', monitors: new MonitorListener('/nonexistent/m.sock'), leases,
    secrets: noSecretDaemon(resolved.name), onLifecycle: () => undefined, onQmpCommand: () => undefined,
  });
  new ShimMetrics(shimRegistry(resolved), vm, clock, logs.module('metrics'));
  fenceOnLeaseLoss(vm, leases, log)?.dispose();
  const persisted = (): Promise<void> => Promise.resolve();
  const handlers = {
    ...vmHandlers({
      vm, console: {} as ConsoleHub, shimPid: process.pid, accel: 'tcg', persisted, resolveDisk: never,
      network: { attach: never, detach: never, addresses: never }, events: { subscribe: never, history: never, lastStop: undefined },
    }),
    ...saveHandlers({ vm, clock, layout: rootLayout('/nonexistent'), monitorSocket: '/nonexistent/m.sock', persisted, leases, volumes: undefined, log }),
    ...shimMigration({ vm, leases, clock, log, layout: rootLayout('/nonexistent'), incoming: undefined }).handlers(persisted),
  };
  return Object.keys(handlers);
}
