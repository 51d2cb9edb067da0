// The shim's view of virtstoraged, virtsecretd and virtnetworkd: volume, secret and port calls over their public
// clients, exactly as a management application would call them. A connection is opened per
// lookup and closed after it (a shim must not hold one open for the VM's whole life), waiting up
// to a deadline for a daemon that is still starting.
import { connectStorage } from '../client/storage-client.js';
import { connectSecret } from '../client/secret-client.js';
import { connectNetwork } from '../client/network-client.js';
import { VirtqError, type Clock } from '../protocol/index.js';
import type { SecretLookup, VolumeLookup } from './vm/disk-resolver.js';
import type { PortLookup } from './vm/nic-ports.js';

/** Where the daemons are and how long to wait for each connection. */
export interface DaemonUris {
  storage: string;
  secret: string;
  /** virtnetworkd; absent for callers that need no ports. */
  network?: string;
  clock: Clock;
  /** How long one connection attempt waits for its daemon to come up. */
  connectWaitMs: number;
}

/** Volume lookups through virtstoraged. */
export function storageLookup(u: DaemonUris): VolumeLookup {
  const connect = () => connectStorage(u.storage, { clock: u.clock, waitMs: u.connectWaitMs, timeoutMs: 30_000 });
  return {
    async createOverlay(pool, backing, name) {
      const client = await connect();
      try {
        const base = await client.api.getVolume({ pool, name: backing });
        return { path: (await client.api.createVolume({ pool, name, format: 'qcow2', capacity: base.capacity, backing: { pool, name: backing } })).path };
      } finally {
        client.close();
      }
    },
    async deleteVolume(pool, name) {
      const client = await connect();
      try {
        await client.api.deleteVolume({ pool, name });
      } finally {
        client.close();
      }
    },
    async volume(pool, volume) {
      const client = await connect();
      try {
        const v = await client.api.getVolume({ pool, name: volume });
        return { path: v.path, format: v.format, formatProbed: v.formatProbed === true, encrypted: v.encrypted, ...(v.secret === undefined ? {} : { secret: v.secret }) };
      } finally {
        client.close();
      }
    },
  };
}

/** Secret lookups through virtsecretd. */
export function secretLookup(u: DaemonUris): SecretLookup {
  return {
    async value(uuid, consumer) {
      const client = await connectSecret(u.secret, { clock: u.clock, waitMs: u.connectWaitMs, timeoutMs: 30_000 });
      try {
        return (await client.api.useValue({ uuid, consumer })).value;
      } finally {
        client.close();
      }
    },
    async forVolume(pool, volume) {
      const client = await connectSecret(u.secret, { clock: u.clock, waitMs: u.connectWaitMs, timeoutMs: 30_000 });
      try {
        return (await client.api.lookupSecretByUsage({ usage: { type: 'volume', volume: `${pool}/${volume}` } })).uuid;
      } catch (err) {
        if (VirtqError.from(err).code === 'NO_SECRET') return undefined;
        throw err;
      } finally {
        client.close();
      }
    },
  };
}

/** Port calls through virtnetworkd. */
export function networkLookup(u: DaemonUris & { network: string }): PortLookup {
  const connect = (waitMs = u.connectWaitMs) => connectNetwork(u.network, { clock: u.clock, waitMs, timeoutMs: 30_000 });
  return {
    async createPort(req) {
      const client = await connect();
      try {
        const p = await client.api.createPort(req);
        return { id: p.id, tap: p.tap, mac: p.mac, reused: p.reused };
      } finally {
        client.close();
      }
    },
    async deletePort(network, id, waitMs) {
      const client = await connect(waitMs);
      try {
        await client.api.deletePort({ network, id });
      } finally {
        client.close();
      }
    },
    async addresses(network, mac) {
      const client = await connect();
      try {
        return (await client.api.listLeases({ network, mac })).leases.map((l) => ({ ip: l.ip, prefix: l.prefix }));
      } finally {
        client.close();
      }
    },
  };
}
