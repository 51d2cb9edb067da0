// NICs of a running VM: hot-plug of a NIC on a port virtnetworkd made, and unplug by MAC (any NIC,
// cold- or hot-plugged), through the hypervisor's monitor under the VM's job lock. Ports are the
// caller's business (nic-ports.ts); the VM is known only through the narrow NicHost below.
import { VirtqError, derivedMac, type Clock, type DomainState, type InterfacePort, type NetworkInterface, type ResolvedDefinition, type ResolvedInterface } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { checkOperation } from './states.js';
import type { JobLock } from './jobs.js';
import { DeviceWaiters } from './device-waiters.js';

/** A network interface with its port: what is plugged. */
export type PortedInterface = NetworkInterface & { mac: string; port: InterfacePort };

/** What the NICs see of their VM. */
export interface NicHost {
  readonly def: ResolvedDefinition;
  readonly state: DomainState;
  readonly jobs: JobLock;
  monitor(): HypervisorMonitor;
  /** The definition's interface list changed (the VM keeps the definition and reports the change). */
  setDevices(change: { interfaces: ResolvedInterface[] }): void;
}

/** The MAC of each interface of `def`, in order (given, or derived as the command line derives it). */
export function interfaceMacs(def: ResolvedDefinition): string[] {
  return def.interfaces.map((iface, i) => (iface.mac ?? derivedMac(def.uuid, i)).toLowerCase());
}

/** One VM's hot-pluggable NICs. */
export class VmNics {
  private readonly unplugs: DeviceWaiters;

  constructor(private readonly vm: NicHost, clock: Clock) {
    this.unplugs = new DeviceWaiters(clock);
  }

  /** The hypervisor reported a device deleted: an unplug waiting for it goes on. */
  deviceDeleted(id: string): void {
    this.unplugs.deleted(id);
  }

  /** Plugs a NIC on `iface`'s port into the running VM; the definition gains it. */
  attach(iface: PortedInterface): Promise<void> {
    const { vm } = this;
    return vm.jobs.run('attachInterface', async () => {
      checkOperation('attachInterface', vm.def.name, vm.state);
      if (interfaceMacs(vm.def).includes(iface.mac)) {
        throw new VirtqError('ALREADY_EXISTS', `VM "${vm.def.name}" already has a NIC with MAC ${iface.mac}`, { details: { mac: iface.mac } });
      }
      await vm.monitor().plugNic(vm.def, { mac: iface.mac, tap: iface.port.tap });
      vm.setDevices({ interfaces: [...vm.def.interfaces, iface] });
    });
  }

  /** Unplugs the NIC with `mac`, waits for the guest to release it, and returns its interface. */
  detach(mac: string, timeoutMs: number): Promise<ResolvedInterface> {
    const { vm } = this;
    const wanted = mac.toLowerCase();
    return vm.jobs.run('detachInterface', async () => {
      checkOperation('detachInterface', vm.def.name, vm.state);
      const macs = interfaceMacs(vm.def);
      const index = macs.indexOf(wanted);
      const iface = vm.def.interfaces[index];
      if (iface === undefined) throw new VirtqError('INVALID_ARG', `VM "${vm.def.name}" has no NIC with MAC ${wanted}`, { details: { mac: wanted } });
      await vm.monitor().unplugNic(wanted, (id) => this.unplugs.wait(id, timeoutMs));
      // The others keep the MACs they have: a derived one would change with its index.
      vm.setDevices({ interfaces: vm.def.interfaces.flatMap((f, i) => (i === index ? [] : [{ ...f, mac: macs[i] ?? '' }])) });
      return iface;
    });
  }
}
