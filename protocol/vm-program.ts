// The per-VM procedures: served by each VM's shim and, by VM name, forwarded by virtqemud.
// Append only; a procedure's name and meaning never change once released.
import { Type, type Static, type TProperties } from '@sinclair/typebox';
import { Definition, DiskSpec, DomainName, DomainUuid, MAC_PATTERN, NAME_PATTERN } from './definition.js';
import { proc } from './catalogue.js';
import { AnyObject, DomainRef, DomainState, Empty, StateResult } from './types.js';
import { EventHistory, GetEventsArgs, LastStop, SubscribeEventsArgs, SubscribeEventsResult } from './journal-types.js';
import { saveVmProcs, snapshotVmProcs } from './save-program.js';
import { migrationVmProcs } from './migration-procs.js';

const both = ['shim', 'aggregator'] as const;
const ref = <P extends TProperties>(extra: P) =>
  Type.Object({ name: DomainName, ...extra }, { additionalProperties: false });

/** `getInfo`'s result: state, vCPUs, memory, CPU time, pids, uptime, taint. */
export const DomainInfo = Type.Object({
  name: DomainName,
  uuid: DomainUuid,
  state: DomainState,
  reason: Type.String(),
  vcpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  /** Guest CPU time (user + system of the QEMU process) in seconds. */
  cpuTimeSec: Type.Number(),
  qemuPid: Type.Optional(Type.Integer()),
  shimPid: Type.Integer(),
  /** Seconds since QEMU started; 0 when not running. */
  uptimeSec: Type.Number(),
  /** True once raw QMP passthrough has been used on this VM. */
  tainted: Type.Boolean(),
  accel: Type.String(),
  /** How the VM last stopped (state, reason, exit details), from its event journal. */
  lastStop: Type.Optional(LastStop),
});

/** Read and write counters of one disk. */
export const BlockStat = Type.Object({
  target: Type.String(),
  rdBytes: Type.Number(), wrBytes: Type.Number(),
  rdOps: Type.Number(), wrOps: Type.Number(), flushOps: Type.Number(),
});

/** One NIC of a VM on a network, with the addresses its DHCP leases give it. */
export const InterfaceAddresses = Type.Object({
  /** The host-side tap. */
  name: Type.String(),
  mac: Type.String(),
  network: Type.String(),
  addresses: Type.Array(Type.Object({ type: Type.Literal('ipv4'), address: Type.String(), prefix: Type.Integer() })),
});

/** Per-VM procedures of 0.1, in wire order (before the host procedures in the `virtq` program). */
export const firstVmProcs = {
  getState: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: true, perVm: true, hostCache: ['inactive', 'active'], since: '0.1', cli: 'domstate',
    description: 'The VM\'s state and the reason it is in it.' }),
  getInfo: proc({ args: DomainRef, ret: DomainInfo, servers: both, readonly: true, perVm: true, hostCache: ['inactive', 'active'], since: '0.1', cli: 'dominfo',
    description: 'State, vCPUs, memory, CPU time, QEMU pid, uptime and taint of the VM.' }),
  getDefinition: proc({ args: DomainRef, ret: Definition, servers: both, readonly: true, perVm: true, hostCache: ['inactive'], since: '0.1', cli: 'dumpdef',
    description: 'The VM\'s definition, defaults filled in.' }),
  shutdown: proc({ args: ref({ timeoutSec: Type.Optional(Type.Number({ minimum: 0, maximum: 86_400 })) }), ret: StateResult,
    servers: both, readonly: false, perVm: true, states: ['running', 'paused', 'shutting-down'], since: '0.1', cli: 'shutdown',
    description: 'Presses the ACPI power button; with a timeout, destroys the VM if it has not stopped by then.' }),
  destroy: proc({ args: ref({ graceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })) }), ret: StateResult,
    servers: both, readonly: false, perVm: true, states: ['starting', 'running', 'paused', 'shutting-down'], since: '0.1', cli: 'destroy',
    description: 'Stops QEMU at once: SIGTERM, then SIGKILL after the grace period.' }),
  reboot: proc({ args: DomainRef, ret: Empty, servers: both, readonly: false, perVm: true, states: ['running'], since: '0.1', cli: 'reboot',
    description: 'Asks the guest to reboot (Ctrl-Alt-Del).' }),
  reset: proc({ args: DomainRef, ret: Empty, servers: both, readonly: false, perVm: true, states: ['running', 'paused', 'shutting-down'], since: '0.1', cli: 'reset',
    description: 'Resets the virtual hardware at once, like the reset button.' }),
  suspend: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, states: ['running'], since: '0.1', cli: 'suspend',
    description: 'Pauses the VM\'s vCPUs.' }),
  resume: proc({ args: DomainRef, ret: StateResult, servers: both, readonly: false, perVm: true, states: ['paused'], since: '0.1', cli: 'resume',
    description: 'Resumes a paused VM.' }),
  attachDisk: proc({ args: ref({ disk: DiskSpec }), ret: Empty, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.1', cli: 'attach-disk',
    description: 'Hot-plugs a disk (blockdev-add + device_add).' }),
  detachDisk: proc({ args: ref({ target: Type.String({ pattern: '^(vd|hd|sd)[a-z]{1,2}$' }), timeoutSec: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })) }),
    ret: Empty, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.1', cli: 'detach-disk',
    description: 'Hot-unplugs a disk and waits until the guest has released it.' }),
  blockStats: proc({ args: DomainRef, ret: Type.Object({ disks: Type.Array(BlockStat) }), servers: both, readonly: true, perVm: true, states: ['running', 'paused', 'shutting-down'], since: '0.1', cli: 'domblkstat',
    description: 'Read and write bytes and operations per disk.' }),
  memoryStats: proc({ args: DomainRef, ret: Type.Object({ memoryMiB: Type.Integer(), rssBytes: Type.Number() }), servers: both, readonly: true, perVm: true, since: '0.1', cli: 'dommemstat',
    description: 'Configured memory and the QEMU process\'s resident set.' }),
  qemuMonitorCommand: proc({ args: ref({ command: AnyObject }), ret: Type.Object({ result: Type.Unknown() }), servers: both, readonly: false, perVm: true, states: ['starting', 'running', 'paused', 'shutting-down'], since: '0.1', cli: 'qemu-monitor-command',
    description: 'Sends a raw QMP command (troubleshooting only: marks the VM tainted).' }),
  subscribeEvents: proc({ args: SubscribeEventsArgs, ret: SubscribeEventsResult, servers: both, readonly: true, embed: 'router', since: '0.1',
    description: 'Pushes lifecycle events to this connection (one VM, or every VM on virtqemud); with since, sinceTime or sinceByVm it first replays what the journal holds after that point, with no gap and no duplicate.' }),
  openConsole: proc({ args: DomainRef, ret: Empty, servers: both, readonly: false, perVm: true, stream: true, states: ['starting', 'running', 'paused', 'shutting-down'], since: '0.1', cli: 'console',
    description: 'Opens the serial console as a byte stream in both directions.' }),
};

/** Per-VM procedures added later: on the wire they follow the host procedures (append only). */
export const laterVmProcs = {
  attachInterface: proc({ args: ref({ network: Type.String({ pattern: NAME_PATTERN, description: 'network name' }), mac: Type.Optional(Type.String({ pattern: MAC_PATTERN })) }),
    ret: Type.Object({ mac: Type.String() }), servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.2', cli: 'attach-interface',
    description: 'Hot-plugs a virtio NIC on a port of a virtnetworkd network (MAC generated when absent).' }),
  detachInterface: proc({ args: ref({ mac: Type.String({ pattern: MAC_PATTERN }), timeoutSec: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })) }),
    ret: Empty, servers: both, readonly: false, perVm: true, states: ['running', 'paused'], since: '0.2', cli: 'detach-interface',
    description: 'Hot-unplugs the NIC with this MAC, waits until the guest has released it, and gives its port back.' }),
  interfaceAddresses: proc({ args: DomainRef, ret: Type.Object({ interfaces: Type.Array(InterfaceAddresses) }), servers: both, readonly: true, perVm: true, states: ['running', 'paused'], since: '0.2', cli: 'domifaddr',
    description: 'The addresses of the VM\'s network interfaces, from the DHCP leases of their networks (virtnetworkd).' }),
  getEvents: proc({ args: GetEventsArgs, ret: EventHistory, servers: both, readonly: true, perVm: true, since: '0.3', cli: 'domevents',
    description: 'The VM\'s event history from its journal (kept across shim and virtqemud restarts), oldest first.' }),
};

/** Per-VM procedures, keyed by name. */
export const vmProcs = { ...firstVmProcs, ...laterVmProcs, ...saveVmProcs, ...snapshotVmProcs, ...migrationVmProcs };

// Each schema above is also the name of the type it validates.
export type DomainInfo = Static<typeof DomainInfo>;
export type BlockStat = Static<typeof BlockStat>;
export type InterfaceAddresses = Static<typeof InterfaceAddresses>;
