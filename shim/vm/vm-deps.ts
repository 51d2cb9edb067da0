// What a Vm is built from and what it hands a successor: kept beside vm.ts so the class stays one job.
import type { Clock, DomainState, LifecycleEventKind, Logger } from '../../protocol/index.js';
import type { HypervisorDriver } from '../../drivers/hypervisor/types.js';
import type { MonitorListener } from './monitor-listener.js';
import type { Spawner } from './qemu-process.js';
import type { VmLeases } from './leases.js';
import type { DiskSecrets } from './disk-resolver.js';

/** What a shim's state file says of the VM, for a successor. */
export interface SavedVmState {
  state: DomainState;
  reason: string;
  tainted: boolean;
  qemuStartedAt: number | undefined;
}

/** What a VM needs from the outside world. */
export interface VmDeps {
  clock: Clock;
  log: Logger;
  spawner: Spawner;
  /** Builds the process to spawn and speaks to its monitor (QEMU's: drivers/hypervisor/qemu/driver.ts). */
  driver: HypervisorDriver;
  qemuLogFile: string;
  monitors: MonitorListener;
  /** Disk leases: taken before QEMU is spawned, given back once it has exited. */
  leases: Pick<VmLeases, 'acquireForStart' | 'releaseAll' | 'diskHooks' | 'refuseWhileFenced'>;
  /** Encrypted disks' passphrases (virtsecretd's, through the disk resolver). */
  secrets: DiskSecrets;
  /** Called after each answered QMP command (for the latency histogram). */
  onQmpCommand?: (command: string, seconds: number, ok: boolean) => void;
  /** Called after every state change, so the owner can persist and publish. */
  onLifecycle(kind: LifecycleEventKind | undefined, details?: Record<string, unknown>): void;
}

/**
 * What a start waits for before its guest runs (a rejection kills QEMU): a promise, or work to begin once QEMU
 * is spawned (it runs beside QEMU's own start).
 */
export type Claim = Promise<unknown> | (() => Promise<unknown>);

/** Begins `claim` (called right after QEMU's spawn); its failure is the start's to handle, never unhandled. */
export function beginClaim(claim: Claim | undefined): Promise<unknown> | undefined {
  const claimed = typeof claim === 'function' ? claim() : claim;
  claimed?.catch(() => undefined);
  return claimed;
}
