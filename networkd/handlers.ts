// virtnetworkd's handlers: the `network` program over the network store (definitions, start and
// stop through the driver) and the port manager (ports, their release). Rows are built here.
import { type Handlers, type LeaseRow, type Logger, type NetworkProgram, type NetworkRow } from '../protocol/index.js';
import { parseMac } from '../drivers/network/mac.js';
import type { NetworkDriver } from '../drivers/network/network-driver.js';
import type { NetworkEntry, NetworkStore } from './network-store.js';
import type { PortManager } from './port-manager.js';

/** What the handlers work with. */
export interface NetworkDeps {
  store: NetworkStore;
  ports: PortManager;
  driver: NetworkDriver;
  log: Logger;
}

/** A network as listed. */
export function networkRow(d: Pick<NetworkDeps, 'store' | 'driver'>, e: NetworkEntry): NetworkRow {
  const c = e.config;
  const status = d.store.isActive(c.name) ? d.driver.networkStatus(c.name) : undefined;
  return {
    name: c.name, uuid: c.uuid, type: c.type, bridge: c.bridge,
    ...(c.ipv4 === undefined ? {} : { ipv4: c.ipv4 }), ...(c.domain === undefined ? {} : { domain: c.domain }),
    state: status === undefined ? 'inactive' : 'active', autostart: e.autostart, ports: status?.ports ?? 0,
    ...(status?.dnsmasqPid === undefined ? {} : { dnsmasqPid: status.dnsmasqPid }), dnsmasqRestarts: status?.dnsmasqRestarts ?? 0,
  };
}

/** Builds the network program's handlers. */
export function networkHandlers(d: NetworkDeps): Handlers<NetworkProgram> {
  const { store, ports, driver } = d;
  const row = (name: string): NetworkRow => networkRow(d, store.get(name));
  return {
    listNetworks: () => ({ networks: store.all().map((e) => networkRow(d, e)) }),
    getNetwork: ({ name }) => row(name),
    defineNetwork: async ({ definition }) => {
      const e = await store.define(definition);
      d.log.info({ network: e.config.name, type: e.config.type, bridge: e.config.bridge, msgId: 'NETWORK_DEFINED' }, 'network defined');
      return networkRow(d, e);
    },
    undefineNetwork: async ({ name }) => { await store.undefine(name); return {}; },
    startNetwork: async ({ name }) => { await store.start(name); return row(name); },
    stopNetwork: async ({ name, force }) => { await ports.stopNetwork(name, force === true); return row(name); },
    setNetworkAutostart: async ({ name, autostart }) => { await store.setAutostart(name, autostart); return {}; },
    listLeases: async ({ network, mac }) => {
      const e = store.active(network);
      const wanted = mac === undefined ? undefined : parseMac(mac);
      const owners = new Map(driver.listPorts(network).map((p) => [p.mac, p]));
      const leases = (await driver.leases(network)).filter((l) => wanted === undefined || l.mac === wanted);
      return {
        leases: leases.map((l): LeaseRow => {
          const p = owners.get(l.mac);
          return {
            network, mac: l.mac, ip: l.ip, prefix: e.config.ipv4?.prefix ?? 32, expiresAt: l.expiresAt,
            ...(l.hostname === undefined ? {} : { hostname: l.hostname }), ...(l.clientId === undefined ? {} : { clientId: l.clientId }),
            ...(p === undefined ? {} : { vmUuid: p.vmUuid, ...(p.vmName === undefined ? {} : { vmName: p.vmName }) }),
          };
        }),
      };
    },
    createPort: ({ network, vmUuid, vmName, mac }) => ports.create(network, { vmUuid, vmName, ...(mac === undefined ? {} : { mac }) }),
    deletePort: async ({ network, id }) => { await ports.delete(network, id); return {}; },
    listPorts: ({ network }) => ({ ports: ports.list(network) }),
    subscribeEvents: (_args, ctx) => {
      ctx.client.subscriptions.add('network');
      return {};
    },
  };
}
