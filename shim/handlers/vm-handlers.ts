// The shim's handlers for the per-VM procedures of the `virtq` program: parse at the edge
// (the server has validated the arguments), check the VM name, then call the VM with plain
// arguments. Reads answer from cached state and never queue behind a job.
import { asDefined, normalizeDisk, VirtqError, type Handlers, type InterfaceAddresses, type NormalizedDisk, type ResolvedDisk, type VirtqProgram } from '../../protocol/index.js';
import type { Vm } from '../vm/vm.js';
import { checkOperation } from '../vm/states.js';
import { interfaceMacs } from '../vm/vm-nics.js';
import type { ConsoleHub } from '../vm/console.js';
import type { VmEvents } from '../journal/vm-events.js';

/** What the handlers need besides the VM. */
export interface VmHandlerDeps {
  vm: Vm;
  console: ConsoleHub;
  shimPid: number;
  accel: string;
  /** Settles once every state change so far is in the state file; rejects when it could not be written. */
  persisted(): Promise<void>;
  /** A hot-plugged disk as QEMU needs it (a volume's path from virtstoraged). */
  resolveDisk(disk: NormalizedDisk): Promise<ResolvedDisk>;
  /** NICs on virtnetworkd's ports: hot-plug with a new port, unplug giving it back, addresses from the leases. */
  network: {
    attach(network: string, mac: string | undefined): Promise<string>;
    detach(mac: string, timeoutMs: number): Promise<void>;
    addresses(): Promise<InterfaceAddresses[]>;
  };
  /** The VM's event journal: subscriptions with replay, history, last stop. */
  events: Pick<VmEvents, 'subscribe' | 'history' | 'lastStop'>;
}

/** Builds the handlers. */
export function vmHandlers(d: VmHandlerDeps): Handlers<VirtqProgram> {
  const { vm } = d;
  const mine = (name: string): void => {
    if (name !== vm.def.name) throw new VirtqError('NO_DOMAIN', `this shim runs VM "${vm.def.name}", not "${name}"`);
  };
  // A mutating call replies only once its outcome is durable, so a shim killed right after the
  // reply leaves its successor the state the client was told.
  const stateResult = async () => { await d.persisted(); return { state: vm.state, reason: vm.reason }; };
  const done = async () => { await d.persisted(); return {}; };
  return {
    getState: ({ name }) => { mine(name); return { state: vm.state, reason: vm.reason }; },
    getInfo: ({ name }) => {
      mine(name);
      const s = vm.stats();
      const pid = vm.qemuPid;
      return {
        name: vm.def.name, uuid: vm.def.uuid, state: vm.state, reason: vm.reason,
        vcpus: vm.def.vcpus, memoryMiB: vm.def.memoryMiB, cpuTimeSec: s.cpuTimeSec,
        ...(pid === undefined ? {} : { qemuPid: pid }),
        shimPid: d.shimPid, uptimeSec: s.uptimeSec, tainted: vm.tainted, accel: d.accel,
        ...(d.events.lastStop === undefined ? {} : { lastStop: d.events.lastStop }),
      };
    },
    getDefinition: ({ name }) => { mine(name); return asDefined(vm.def); },
    shutdown: async ({ name, timeoutSec }) => { mine(name); await vm.shutdown(timeoutSec); return stateResult(); },
    destroy: async ({ name, graceMs }) => { mine(name); await vm.destroy(graceMs); return stateResult(); },
    reboot: async ({ name }) => { mine(name); await vm.reboot(); return done(); },
    reset: async ({ name }) => { mine(name); await vm.reset(); return done(); },
    suspend: async ({ name }) => { mine(name); await vm.suspend(); return stateResult(); },
    resume: async ({ name }) => { mine(name); await vm.resume(); return stateResult(); },
    attachDisk: async ({ name, disk }) => {
      mine(name);
      // Reuse the definition's defaults so hot-plugged and cold-plugged disks are the same.
      await vm.disks.attach(await d.resolveDisk(normalizeDisk(disk)));
      return done();
    },
    detachDisk: async ({ name, target, timeoutSec }) => {
      mine(name);
      await vm.disks.detach(target, (timeoutSec ?? 30) * 1000);
      return done();
    },
    blockStats: async ({ name }) => { mine(name); return { disks: await vm.disks.stats() }; },
    memoryStats: ({ name }) => { mine(name); return { memoryMiB: vm.def.memoryMiB, rssBytes: vm.stats().rssBytes }; },
    qemuMonitorCommand: async ({ name, command }) => {
      mine(name);
      const result = await vm.monitorCommand(command);
      await d.persisted();
      return { result };
    },
    attachInterface: async ({ name, network, mac }) => {
      mine(name);
      // Refused before a port is asked for: a MAC this VM has would be handed back, then deleted.
      checkOperation('attachInterface', vm.def.name, vm.state);
      if (mac !== undefined && interfaceMacs(vm.def).includes(mac.toLowerCase())) {
        throw new VirtqError('ALREADY_EXISTS', `VM "${vm.def.name}" already has a NIC with MAC ${mac.toLowerCase()}`, { details: { mac: mac.toLowerCase() } });
      }
      const attached = await d.network.attach(network, mac?.toLowerCase());
      await d.persisted();
      return { mac: attached };
    },
    detachInterface: async ({ name, mac, timeoutSec }) => {
      mine(name);
      await d.network.detach(mac, (timeoutSec ?? 30) * 1000);
      return done();
    },
    interfaceAddresses: async ({ name }) => {
      mine(name);
      checkOperation('interfaceAddresses', vm.def.name, vm.state);
      return { interfaces: await d.network.addresses() };
    },
    subscribeEvents: (args, ctx) => {
      if (args.name !== undefined) mine(args.name);
      return d.events.subscribe(ctx.client, args);
    },
    getEvents: ({ name, ...since }) => { mine(name); return d.events.history(since); },
    openConsole: ({ name }, ctx) => {
      mine(name);
      checkOperation('openConsole', vm.def.name, vm.state);
      const stream = ctx.openStream();
      // The server holds output back until the reply that opens the stream has gone out.
      const unsubscribe = d.console.subscribe((chunk) => stream.write(chunk));
      void (async () => {
        for await (const input of stream) d.console.write(input);
        unsubscribe();
      })();
      return {};
    },
  };
}
