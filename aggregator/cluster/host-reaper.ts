// Frees the names of a host that is gone (virtqemud --cluster-reclaim-after S; docs/decisions/0024,
// "A host that is gone"). A host is gone when its lease has expired (its entry vanished with it)
// and it has not come back for S seconds more. Each claim it held is then deleted by one Txn that
// also compares its host entry absent, so a host that rejoins at any moment keeps every claim the
// Txn has not yet reached, and re-asserts the rest itself. Only safe when a host that lost its
// lease has stopped writing by then (fencing, or a whole host dead): hence off by default.
import type { Etcd3 } from 'etcd3';
import type { Clock, Logger } from '../../protocol/index.js';
import { parseClaim, uuidClaimValue, type GoneEntry, type clusterKeys } from '../../protocol/cluster.js';
import { rangeAll } from '../../client/etcd-range.js';

/** What the reaper works with. */
export interface ReaperDeps {
  client: Etcd3;
  keys: ReturnType<typeof clusterKeys>;
  hostId: string;
  clock: Clock;
  log: Logger;
  /** How long past its lease a host must stay away before its names are freed. */
  afterMs: number;
}

/** Watches the fleet's host entries from one member; frees the names of hosts gone for long enough. */
export class HostReaper {
  private readonly missingSince = new Map<string, number>();
  private seen: Set<string> | undefined;
  private lastPass = -Infinity;
  private running = false;

  constructor(private readonly d: ReaperDeps) {}

  /** One pass, at most every afterMs/2: a cheap read of the host keys; the claims are read only when a host went missing. */
  async pass(): Promise<void> {
    const now = this.d.clock.monotonic();
    if (this.running || now - this.lastPass < Math.max(500, this.d.afterMs / 2)) return;
    this.lastPass = now;
    this.running = true;
    try {
      await this.look(now);
    } finally {
      this.running = false;
    }
  }

  private async look(now: number): Promise<void> {
    const { keys, client } = this.d;
    const hosts = new Set((await client.getAll().prefix(keys.hostsDir).keys()).map((k) => k.slice(keys.hostsDir.length)));
    const vanished = this.seen === undefined || [...this.seen].some((h) => !hosts.has(h));
    this.seen = hosts;
    for (const h of [...this.missingSince.keys()]) if (hosts.has(h)) this.missingSince.delete(h);
    if (vanished) {
      // Holders without an entry: missing from now (a host already missing keeps its first time).
      for (const [, v] of await rangeAll(client, keys.namesDir)) {
        const host = parseClaim(v)?.host;
        if (host !== undefined && !hosts.has(host) && !this.missingSince.has(host)) this.missingSince.set(host, now);
      }
    }
    for (const [host, since] of [...this.missingSince]) {
      if (now - since < this.d.afterMs) continue;
      this.missingSince.delete(host);
      await this.reclaim(host);
    }
  }

  private async reclaim(host: string): Promise<void> {
    const { client, keys } = this.d;
    const hostKey = keys.host(host);
    let released = 0;
    for (const [key, value] of await rangeAll(client, keys.namesDir)) {
      const claim = parseClaim(value);
      if (claim?.host !== host) continue;
      const name = key.slice(keys.namesDir.length);
      const res = await client
        .if(hostKey, 'Create', '==', 0).and(key, 'Value', '==', value).and(keys.uuid(claim.uuid), 'Value', '==', uuidClaimValue(host, name))
        .then(client.delete().key(key), client.delete().key(keys.uuid(claim.uuid)))
        .commit();
      if (res.succeeded) released++;
    }
    const gone: GoneEntry = { host, at: this.d.clock.now(), released, by: this.d.hostId };
    await client.if(hostKey, 'Create', '==', 0).then(client.put(keys.gone(host)).value(JSON.stringify(gone))).commit();
    this.d.log.warn({ host, released, msgId: 'CLUSTER_HOST_GONE' }, 'a host stayed without its lease past --cluster-reclaim-after: its names are free');
  }
}
