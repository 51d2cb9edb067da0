// The `network` program, served by virtnetworkd: networks (nat, isolated, or a host bridge), the
// ports VMs are given on them (one tap each), DHCP leases, and events when ports or networks
// change. Append only.
import { Type, type Static } from '@sinclair/typebox';
import { DomainName, DomainUuid, NAME_PATTERN } from './definition.js';
import { defineProgram, event, proc } from './catalogue.js';
import { Empty } from './types.js';

const networkd = ['network'] as const;

/** Network names: as VM names. */
export const NetworkName = Type.String({ pattern: NAME_PATTERN, description: 'network name' });
/** A port's id (a UUID). */
export const PortId = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', description: 'network port id' });
/** A NIC's MAC as given: checked (unicast, not all zero) by virtnetworkd, which answers it lowercase with colons. */
export const Mac = Type.String({ minLength: 1, maxLength: 32, description: 'MAC address, e.g. 52:54:00:12:34:56' });
const Ipv4 = Type.String({ minLength: 1, maxLength: 15, description: 'IPv4 address, dotted quad' });
const UuidAnyCase = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'RFC 4122 UUID' });

/** The IPv4 side of a nat or isolated network: the bridge's own address, the prefix, and the DHCP pool. */
export const NetworkIpv4 = Type.Object({
  address: Ipv4,
  prefix: Type.Integer({ minimum: 1, maximum: 32 }),
  dhcp: Type.Optional(Type.Object({ start: Ipv4, end: Ipv4 }, { additionalProperties: false })),
}, { additionalProperties: false });

/** A network as defined (`net-define FILE`). */
export const NetworkDefinition = Type.Object({
  name: NetworkName,
  /** Generated when absent. */
  uuid: Type.Optional(UuidAnyCase),
  /** nat: bridge + DHCP/DNS + masquerading; isolated: the same without NAT; bridge: taps on an existing host bridge. */
  type: Type.Union([Type.Literal('nat'), Type.Literal('isolated'), Type.Literal('bridge')]),
  /** The Linux bridge (at most 15 bytes); required for `bridge`, chosen (virtqbrN) for the others when absent. */
  bridge: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** Required for nat and isolated networks. */
  ipv4: Type.Optional(NetworkIpv4),
  /** DNS domain dnsmasq answers for (nat and isolated). */
  domain: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
}, { additionalProperties: false });

/** A network as listed. */
export const NetworkRow = Type.Object({
  name: NetworkName,
  uuid: Type.String(),
  type: Type.Union([Type.Literal('nat'), Type.Literal('isolated'), Type.Literal('bridge')]),
  bridge: Type.String(),
  ipv4: Type.Optional(NetworkIpv4),
  domain: Type.Optional(Type.String()),
  state: Type.Union([Type.Literal('active'), Type.Literal('inactive')]),
  autostart: Type.Boolean(),
  /** Ports on the network (0 while inactive). */
  ports: Type.Integer({ minimum: 0 }),
  /** dnsmasq's pid while it runs (nat and isolated). */
  dnsmasqPid: Type.Optional(Type.Integer()),
  /** Times dnsmasq was restarted after dying since virtnetworkd took the network. */
  dnsmasqRestarts: Type.Integer({ minimum: 0 }),
});

/** One network port: a tap on the network's bridge for one VM NIC. */
export const PortRow = Type.Object({
  id: PortId,
  network: NetworkName,
  vmUuid: Type.String(),
  vmName: Type.Optional(DomainName),
  mac: Type.String(),
  /** The tap QEMU opens (`-netdev tap,ifname=TAP`). */
  tap: Type.String(),
  /** Milliseconds since the epoch. */
  createdAt: Type.Number(),
});

/** One DHCP lease, with the port holding its MAC when there is one. */
export const LeaseRow = Type.Object({
  network: NetworkName,
  mac: Type.String(),
  ip: Type.String(),
  /** The network's prefix length. */
  prefix: Type.Integer(),
  hostname: Type.Optional(Type.String()),
  clientId: Type.Optional(Type.String()),
  /** Milliseconds since the epoch; null for an infinite lease. */
  expiresAt: Type.Union([Type.Number(), Type.Null()]),
  vmName: Type.Optional(DomainName),
  vmUuid: Type.Optional(Type.String()),
});

/** What changed on a network, pushed to connections that called subscribeEvents. */
export const NetworkEvent = Type.Object({
  kind: Type.Union([
    Type.Literal('defined'), Type.Literal('undefined'), Type.Literal('started'), Type.Literal('stopped'),
    Type.Literal('port-created'), Type.Literal('port-deleted'), Type.Literal('dnsmasq-restarted'),
  ]),
  network: NetworkName,
  port: Type.Optional(PortId),
  vmUuid: Type.Optional(Type.String()),
  vmName: Type.Optional(DomainName),
  mac: Type.Optional(Type.String()),
  tap: Type.Optional(Type.String()),
  /** Why a port went: `deleted` (asked for), `vm-gone` (its VM no longer runs), `network-stopped` (net-destroy --force). */
  reason: Type.Optional(Type.String()),
  timestamp: Type.Number(),
});

const NetRef = Type.Object({ name: NetworkName }, { additionalProperties: false });

export const networkProgram = defineProgram('network', 'Networks (NAT, isolated, host bridge), the ports VMs use on them, and DHCP leases.', {
  listNetworks: proc({ args: Empty, ret: Type.Object({ networks: Type.Array(NetworkRow) }), servers: networkd, readonly: true, since: '0.2', cli: 'net-list',
    description: 'Every network, active or not.' }),
  getNetwork: proc({ args: NetRef, ret: NetworkRow, servers: networkd, readonly: true, since: '0.2', cli: 'net-info',
    description: 'One network: type, bridge, addresses, state, ports, dnsmasq.' }),
  defineNetwork: proc({ args: Type.Object({ definition: NetworkDefinition }, { additionalProperties: false }), ret: NetworkRow, servers: networkd, readonly: false, since: '0.2', cli: 'net-define',
    description: 'Defines a network (inactive until started), or replaces an inactive network\'s definition; a subnet or bridge another network uses is IN_USE.' }),
  undefineNetwork: proc({ args: NetRef, ret: Empty, servers: networkd, readonly: false, since: '0.2', cli: 'net-undefine',
    description: 'Forgets an inactive network.' }),
  startNetwork: proc({ args: NetRef, ret: NetworkRow, servers: networkd, readonly: false, since: '0.2', cli: 'net-start',
    description: 'Starts a network: its bridge, dnsmasq and NAT table (a missing tool is NOT_SUPPORTED naming its package).' }),
  stopNetwork: proc({ args: Type.Object({ name: NetworkName, force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), ret: NetworkRow, servers: networkd, readonly: false, since: '0.2', cli: 'net-destroy',
    description: 'Stops a network; refused with IN_USE, naming the VMs, while it has ports, unless force (which deletes them).' }),
  setNetworkAutostart: proc({ args: Type.Object({ name: NetworkName, autostart: Type.Boolean() }, { additionalProperties: false }), ret: Empty, servers: networkd, readonly: false, since: '0.2', cli: 'net-autostart',
    description: 'Starts the network whenever virtnetworkd starts.' }),
  listLeases: proc({ args: Type.Object({ network: NetworkName, mac: Type.Optional(Mac) }, { additionalProperties: false }), ret: Type.Object({ leases: Type.Array(LeaseRow) }), servers: networkd, readonly: true, since: '0.2', cli: 'net-dhcp-leases',
    description: 'The DHCP leases dnsmasq handed out on an active network (optionally for one MAC).' }),
  createPort: proc({
    args: Type.Object({ network: NetworkName, vmUuid: DomainUuid, vmName: DomainName, mac: Type.Optional(Mac) }, { additionalProperties: false }),
    ret: Type.Object({ ...PortRow.properties, reused: Type.Boolean() }), servers: networkd, readonly: false, since: '0.2',
    description: 'Creates a port (a tap on the bridge) for a VM NIC; the MAC is generated when absent. A MAC already held by a port of the same VM returns that port (reused); of another VM, ALREADY_EXISTS.' }),
  deletePort: proc({ args: Type.Object({ network: NetworkName, id: PortId }, { additionalProperties: false }), ret: Empty, servers: networkd, readonly: false, since: '0.2',
    description: 'Deletes a port and its tap.' }),
  listPorts: proc({ args: Type.Object({ network: NetworkName }, { additionalProperties: false }), ret: Type.Object({ ports: Type.Array(PortRow) }), servers: networkd, readonly: true, since: '0.2', cli: 'net-port-list',
    description: 'The ports of an active network, oldest first.' }),
  subscribeEvents: proc({ args: Empty, ret: Empty, servers: networkd, readonly: true, since: '0.2',
    description: 'Pushes network events (networks started and stopped, ports created and deleted, dnsmasq restarted) to this connection.' }),
}, {
  event: event({ body: NetworkEvent, since: '0.2', description: 'A network or port changed; pushed to connections that called subscribeEvents.' }),
});
export type NetworkProgram = typeof networkProgram;

// Each schema above is also the name of the type it validates.
export type NetworkDefinition = Static<typeof NetworkDefinition>;
export type NetworkRow = Static<typeof NetworkRow>;
export type PortRow = Static<typeof PortRow>;
export type LeaseRow = Static<typeof LeaseRow>;
export type NetworkEvent = Static<typeof NetworkEvent>;
