// A VM's network ports, asked of virtnetworkd (through the lookup given: its public client): one
// per network interface before QEMU is spawned, one for each hot-plugged NIC, given back when the
// NIC is unplugged or the VM stops for good; and the addresses DHCP gave the VM's NICs. The port
// id and tap are kept in the interface (so in the runtime state), so a successor shim keeps them.
// A daemon or network not up yet is waited for until the deadline. The shim never runs ip or nft.
import { VirtqError, delay, type Clock, type InterfaceAddresses, type Logger, type ResolvedDefinition, type ResolvedInterface } from '../../protocol/index.js';
import type { PortedInterface, VmNics } from './vm-nics.js';

/** What the shim asks virtnetworkd. */
export interface PortLookup {
  createPort(req: { network: string; vmUuid: string; vmName: string; mac?: string }): Promise<{ id: string; tap: string; mac: string; reused: boolean }>;
  /** Deletes a port; `waitMs` bounds the wait for virtnetworkd to answer at all. */
  deletePort(network: string, id: string, waitMs?: number): Promise<void>;
  /** The IPv4 addresses DHCP gave `mac` on `network`, with the network's prefix. */
  addresses(network: string, mac: string): Promise<Array<{ ip: string; prefix: number }>>;
}

/** What the ports of one VM are handled with. */
export interface NicPortsDeps {
  vm: string;
  uuid: string;
  clock: Clock;
  log: Logger;
  /** virtnetworkd; absent: a VM with a network interface cannot start. */
  lookup: PortLookup | undefined;
  /** How long to wait for virtnetworkd, or a network not started yet. */
  waitMs: number;
}

function retryable(e: VirtqError): boolean {
  return e.code === 'NO_CONNECT' || (e.code === 'NO_NETWORK' && e.details?.['state'] === 'inactive');
}

/** The ports of one VM. */
export class NicPorts {
  constructor(private readonly d: NicPortsDeps) {}

  /** The interfaces of `def` with a port for each network interface that has none (in order; all or none). */
  async forStart(def: ResolvedDefinition): Promise<ResolvedInterface[]> {
    const out: ResolvedInterface[] = [];
    try {
      for (const iface of def.interfaces) {
        out.push(iface.type === 'network' && iface.port === undefined ? (await this.create(iface.network, iface.mac)).iface : iface);
      }
    } catch (err) {
      await this.release(out.filter((i, k) => i !== def.interfaces[k]));
      throw err;
    }
    return out;
  }

  /**
   * A port on `network` for this VM (the MAC virtnetworkd generates when none is given); `reused`
   * when virtnetworkd handed back a port this VM already held with that MAC.
   */
  async create(network: string, mac?: string): Promise<{ iface: PortedInterface; reused: boolean }> {
    const lookup = this.need();
    const what = `the port of VM "${this.d.vm}" on network "${network}"`;
    const port = await this.waiting(what, () => lookup.createPort({ network, vmUuid: this.d.uuid, vmName: this.d.vm, ...(mac === undefined ? {} : { mac }) }));
    this.d.log.info({ network, port: port.id, tap: port.tap, mac: port.mac, reused: port.reused, msgId: 'PORT_TAKEN' }, 'network port taken');
    return { iface: { type: 'network', network, mac: port.mac, port: { id: port.id, tap: port.tap } }, reused: port.reused };
  }

  /** Gives back the ports of `interfaces`; a failure is logged (virtnetworkd releases them once the VM is gone). */
  async release(interfaces: readonly ResolvedInterface[], waitMs = this.d.waitMs): Promise<void> {
    for (const iface of interfaces) {
      if (iface.type !== 'network' || iface.port === undefined || this.d.lookup === undefined) continue;
      const { id } = iface.port;
      try {
        await this.waiting(`the port ${id} of VM "${this.d.vm}"`, () => (this.d.lookup as PortLookup).deletePort(iface.network, id, waitMs), waitMs);
        this.d.log.info({ network: iface.network, port: id, msgId: 'PORT_GIVEN_BACK' }, 'network port given back');
      } catch (err) {
        const e = VirtqError.from(err);
        if (e.code === 'NO_NETWORK_PORT' || (e.code === 'NO_NETWORK' && !retryable(e))) continue;
        this.d.log.warn({ network: iface.network, port: id, code: e.code, err: e.message, msgId: 'PORT_RELEASE_FAILED' }, 'cannot give the network port back; virtnetworkd releases it once the VM is gone');
      }
    }
  }

  /** The addresses of each network interface of `def`, from its network's DHCP leases. */
  async addresses(def: ResolvedDefinition): Promise<InterfaceAddresses[]> {
    if (def.interfaces.every((i) => i.type !== 'network')) return [];
    const lookup = this.need();
    const out: InterfaceAddresses[] = [];
    for (const iface of def.interfaces) {
      if (iface.type !== 'network' || iface.mac === undefined) continue;
      const found = await lookup.addresses(iface.network, iface.mac).catch((err: unknown) => {
        if (VirtqError.from(err).code === 'NO_NETWORK') return [];
        throw err;
      });
      out.push({ name: iface.port?.tap ?? '-', mac: iface.mac, network: iface.network, addresses: found.map((a) => ({ type: 'ipv4' as const, address: a.ip, prefix: a.prefix })) });
    }
    return out;
  }

  private need(): PortLookup {
    if (this.d.lookup === undefined) throw new VirtqError('NOT_SUPPORTED', `VM "${this.d.vm}" has a network interface and this shim was started without virtnetworkd`);
    return this.d.lookup;
  }

  // Retries while virtnetworkd or the network is not up yet, until the deadline.
  private async waiting<T>(what: string, fn: () => Promise<T>, waitMs = this.d.waitMs): Promise<T> {
    const started = this.d.clock.monotonic();
    for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
      try {
        return await fn();
      } catch (err) {
        const e = VirtqError.from(err);
        const left = waitMs - (this.d.clock.monotonic() - started);
        if (!retryable(e) || left <= 0) {
          const waited = retryable(e) && waitMs > 0 ? ` (waited ${Math.round(waitMs / 1000)} s)` : '';
          throw new VirtqError(e.code, `${what}: ${e.message}${waited}`, { cause: err, ...(e.details === undefined ? {} : { details: e.details }) });
        }
        await delay(this.d.clock, Math.min(wait, left));
      }
    }
  }
}

/** A VM's NIC operations: hot-plug on a new port (given back when the plug fails), unplug then give the port back, addresses. */
export function nicOperations(vm: { readonly def: ResolvedDefinition; readonly nics: VmNics }, ports: NicPorts): {
  attach(network: string, mac: string | undefined): Promise<string>;
  detach(mac: string, timeoutMs: number): Promise<void>;
  addresses(): Promise<InterfaceAddresses[]>;
} {
  return {
    attach: async (network, mac) => {
      const { iface, reused } = await ports.create(network, mac);
      try {
        await vm.nics.attach(iface);
      } catch (err) {
        // A port handed back (reused) belongs to a NIC the VM may still have: keep it.
        if (!reused) await ports.release([iface]);
        throw err;
      }
      return iface.mac;
    },
    detach: async (mac, timeoutMs) => { await ports.release([await vm.nics.detach(mac, timeoutMs)]); },
    addresses: () => ports.addresses(vm.def),
  };
}
