// The ports of virtnetworkd's networks: created for a VM NIC (or handed back when the same VM
// asks again for a MAC it already holds: a shim retrying after a crash), deleted on request, and
// released when their VM is gone. One change at a time per network, so the liveness check can
// never delete a port a shim has just been given. A port is "claimed" when created or handed
// back; the check leaves it alone for a grace period after that (the shim spawns QEMU then).
import { VirtqError, type Clock, type Logger, type NetworkEvent, type PortRow } from '../protocol/index.js';
import { KeyedMutex } from '../drivers/network/keyed-mutex.js';
import { parseMac } from '../drivers/network/mac.js';
import type { NetworkDriver } from '../drivers/network/network-driver.js';
import type { NetworkPort } from '../drivers/network/types.js';
import type { NetworkStore } from './network-store.js';

/** What the manager reports. */
export interface PortEvents {
  emit(event: Omit<NetworkEvent, 'timestamp'>): void;
  created(network: string, seconds: number): void;
  released(network: string, reason: 'deleted' | 'vm-gone' | 'network-stopped'): void;
}

/** Whether a port's VM still runs (see vm-liveness.ts). */
export type LivenessCheck = (port: NetworkPort) => Promise<boolean>;

/** What the manager is built from. */
export interface PortManagerDeps {
  driver: NetworkDriver;
  store: NetworkStore;
  clock: Clock;
  log: Logger;
  events: PortEvents;
  alive: LivenessCheck;
  /** How long after being claimed a port is kept whatever the check says, ms. */
  graceMs: number;
}

/** A port as the protocol shows it. */
export function portRow(p: NetworkPort): PortRow {
  return { id: p.id, network: p.network, vmUuid: p.vmUuid, ...(p.vmName === undefined ? {} : { vmName: p.vmName }), mac: p.mac, tap: p.tap, createdAt: p.createdAt };
}

/** The ports of one virtnetworkd. */
export class PortManager {
  private readonly locks = new KeyedMutex();
  /** When each port was last claimed; a port recovered after a restart counts from its creation. */
  private readonly claimed = new Map<string, number>();
  private reaping = false;

  constructor(private readonly d: PortManagerDeps) {}

  /** Creates a port on active network `network`, or hands back the one VM `vmUuid` holds with `mac`. */
  create(network: string, req: { vmUuid: string; vmName: string; mac?: string }): Promise<PortRow & { reused: boolean }> {
    return this.locks.run(network, async () => {
      this.d.store.active(network);
      const vmUuid = req.vmUuid.toLowerCase();
      const mac = req.mac === undefined ? undefined : parseMac(req.mac);
      const held = mac === undefined ? undefined : this.d.driver.listPorts(network).find((p) => p.mac === mac);
      if (held !== undefined && held.vmUuid === vmUuid) {
        this.claimed.set(held.id, this.d.clock.now());
        this.d.log.info({ network, port: held.id, vm: req.vmName, msgId: 'PORT_REUSED' }, 'port handed back to its VM');
        return { ...portRow(held), reused: true };
      }
      const t0 = this.d.clock.monotonic();
      const port = await this.d.driver.createPort(network, { vmUuid, vmName: req.vmName, ...(mac === undefined ? {} : { mac }) });
      this.d.events.created(network, (this.d.clock.monotonic() - t0) / 1000);
      this.claimed.set(port.id, this.d.clock.now());
      this.d.log.info({ network, port: port.id, tap: port.tap, mac: port.mac, vm: req.vmName, msgId: 'PORT_CREATED' }, 'port created');
      this.d.events.emit({ kind: 'port-created', network, port: port.id, vmUuid, vmName: req.vmName, mac: port.mac, tap: port.tap });
      return { ...portRow(port), reused: false };
    });
  }

  /** Deletes port `id` of `network`. */
  delete(network: string, id: string): Promise<void> {
    return this.locks.run(network, async () => {
      this.d.store.active(network);
      await this.remove(network, id, 'deleted');
    });
  }

  /** The ports of active network `network`. */
  list(network: string): PortRow[] {
    this.d.store.active(network);
    return this.d.driver.listPorts(network).map(portRow);
  }

  /**
   * Stops `network`: refused with IN_USE naming the VMs while it has ports, unless `force`, which
   * deletes them first (each one an event).
   */
  stopNetwork(network: string, force: boolean): Promise<void> {
    return this.locks.run(network, async () => {
      this.d.store.active(network);
      const ports = this.d.driver.listPorts(network);
      if (ports.length > 0 && !force) {
        const vms = [...new Set(ports.map((p) => p.vmName ?? p.vmUuid))];
        throw new VirtqError('IN_USE', `network "${network}" has ${ports.length} port(s) in use by VM(s) ${vms.map((v) => `"${v}"`).join(', ')}: stop those VMs (or detach their interfaces) first, or use --force to cut them off`, {
          details: { network, vms, ports: ports.map((p) => p.id) },
        });
      }
      for (const p of ports) await this.remove(network, p.id, 'network-stopped');
      await this.d.store.stop(network, false);
    });
  }

  /** Releases the ports of VMs that are gone; runs one pass at a time (a pass already under way is not doubled). */
  async reap(): Promise<number> {
    if (this.reaping) return 0;
    this.reaping = true;
    let released = 0;
    try {
      for (const cfg of this.d.driver.activeNetworks()) {
        for (const port of this.d.driver.listPorts(cfg.name)) {
          if (this.inGrace(port) || (await this.d.alive(port).catch(() => true))) continue;
          released += await this.locks.run(cfg.name, async () => {
            // Looked at again under the lock: a shim may have claimed it meanwhile.
            const still = this.d.store.isActive(cfg.name) && this.d.driver.listPorts(cfg.name).some((p) => p.id === port.id);
            if (!still || this.inGrace(port) || (await this.d.alive(port).catch(() => true))) return 0;
            this.d.log.info({ network: cfg.name, port: port.id, tap: port.tap, vm: port.vmName ?? port.vmUuid, msgId: 'PORT_RELEASED' }, 'released the port of a VM that is gone');
            await this.remove(cfg.name, port.id, 'vm-gone');
            return 1;
          }).catch((err: unknown) => {
            this.d.log.warn({ network: cfg.name, port: port.id, err: VirtqError.from(err).message }, 'cannot release port');
            return 0;
          });
        }
      }
    } finally {
      this.reaping = false;
    }
    return released;
  }

  private inGrace(port: NetworkPort): boolean {
    return this.d.clock.now() - (this.claimed.get(port.id) ?? port.createdAt) < this.d.graceMs;
  }

  private async remove(network: string, id: string, reason: 'deleted' | 'vm-gone' | 'network-stopped'): Promise<void> {
    const port = this.d.driver.listPorts(network).find((p) => p.id === id);
    await this.d.driver.deletePort(network, id);
    this.claimed.delete(id);
    this.d.events.released(network, reason);
    if (port !== undefined) {
      this.d.events.emit({ kind: 'port-deleted', network, port: id, vmUuid: port.vmUuid, ...(port.vmName === undefined ? {} : { vmName: port.vmName }), mac: port.mac, tap: port.tap, reason });
    }
  }
}
