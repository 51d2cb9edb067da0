// The cluster-wide claim of a VM migrating into this host (docs/decisions/0024, "Migration between
// hosts"). The claim stays the source host's while the destination prepares and receives memory;
// at switchover, with the guest paused on both sides, one etcd Txn moves both keys to this host if
// they are still exactly what prepare read (same mod revisions): of a define racing on a third
// host, of a source that released, of a second migration, at most one can ever succeed. If the
// guest cannot then be run here, the claim is handed back to the source by the same kind of Txn
// before this host's record of the VM goes, so there is no moment when no host holds it.
import type { Etcd3 } from 'etcd3';
import { VirtqError, type Logger } from '../../protocol/index.js';
import { nameClaimValue, parseClaim, uuidClaimValue, type clusterKeys } from '../../protocol/cluster.js';

/** One incoming claim: whose it was at prepare, at which revisions; `taken` once the Txn moved it here. */
interface Transfer {
  uuid: string;
  from: string;
  nameRev: string;
  uuidRev: string;
  /** true: moved here; 'unknown': the Txn's outcome could not be read back (treated as moved when handing back). */
  taken: boolean | 'unknown';
}

/** What the transfers work with (the membership's client, keys and etcd error mapping). */
export interface TransferDeps {
  client: Etcd3;
  keys: ReturnType<typeof clusterKeys>;
  hostId: string;
  log: Logger;
  etcd<T>(call: () => Promise<T>): Promise<T>;
}

/** The incoming claims of one host. */
export class IncomingClaims {
  private readonly transfers = new Map<string, Transfer>();

  constructor(private readonly d: TransferDeps) {}

  /** Whether `name` is migrating in with its claim still the source's (this host must not claim it itself). */
  covers(name: string, uuid: string): boolean {
    const t = this.transfers.get(name);
    return t !== undefined && t.uuid === uuid.toLowerCase() && t.taken === false;
  }

  has(name: string): boolean {
    return this.transfers.has(name);
  }

  /**
   * Prepare: reads who holds `name` and `uuid`. Held by another host for this very VM: recorded
   * as a transfer (true). Not held, or held here: false (the start claims as any start does).
   * Held for another VM: NAME_IN_USE / UUID_IN_USE naming the holder.
   */
  async expect(name: string, uuid: string): Promise<boolean> {
    const { client, keys } = this.d;
    const id = uuid.toLowerCase();
    const [byName, byUuid] = await this.d.etcd(() => Promise.all([client.get(keys.name(name)).exec(), client.get(keys.uuid(id)).exec()]));
    const nameKv = byName.kvs[0];
    const uuidKv = byUuid.kvs[0];
    if (nameKv === undefined && uuidKv === undefined) return false;
    const claim = nameKv === undefined ? undefined : parseClaim(nameKv.value.toString());
    const holder = claim?.host ?? 'an unreadable claim';
    if (nameKv === undefined || claim?.uuid !== id) {
      if (nameKv !== undefined) throw new VirtqError('NAME_IN_USE', `VM name "${name}" is claimed in the etcd fleet by host ${holder} for another VM (uuid ${claim?.uuid ?? '?'}): it cannot migrate here`, { details: { host: holder } });
      throw new VirtqError('UUID_IN_USE', `UUID ${id} is claimed in the etcd fleet under another name: VM "${name}" cannot migrate here`);
    }
    if (uuidKv?.value.toString() !== uuidClaimValue(claim.host, name)) {
      throw new VirtqError('UUID_IN_USE', `UUID ${id} is not claimed by host ${claim.host} for VM "${name}" in the etcd fleet: it cannot migrate here`);
    }
    if (claim.host === this.d.hostId) return false;
    this.transfers.set(name, { uuid: id, from: claim.host, nameRev: nameKv.mod_revision, uuidRev: uuidKv.mod_revision, taken: false });
    this.d.log.info({ name, from: claim.host, msgId: 'CLUSTER_CLAIM_INCOMING' }, 'a VM migrates in: its claim stays with its source host until the switchover');
    return true;
  }

  /** Switchover: moves both keys here if they are still what prepare read; else fails, the claim staying the source's. */
  async take(name: string): Promise<void> {
    const t = this.transfers.get(name);
    if (t === undefined || t.taken === true) return;
    const { client, keys, hostId } = this.d;
    const nameKey = keys.name(name);
    const uuidKey = keys.uuid(t.uuid);
    let res;
    try {
      res = await this.d.etcd(() => client
        .if(nameKey, 'Mod', '==', t.nameRev).and(uuidKey, 'Mod', '==', t.uuidRev)
        .then(client.put(nameKey).value(nameClaimValue(hostId, t.uuid)), client.put(uuidKey).value(uuidClaimValue(hostId, name)))
        .commit());
    } catch (err) {
      // The Txn may have been applied even though its answer was lost: read what etcd holds.
      const now = await this.d.etcd(() => client.get(nameKey).string()).catch(() => undefined);
      if (now === nameClaimValue(hostId, t.uuid)) {
        t.taken = true;
        return;
      }
      if (now === undefined) t.taken = 'unknown';
      throw err;
    }
    if (!res.succeeded) {
      throw new VirtqError('CLUSTER_UNAVAILABLE', `the claim of VM "${name}" changed in the etcd fleet during its migration from host ${t.from}: it stays there`);
    }
    t.taken = true;
    this.d.log.info({ name, from: t.from, msgId: 'CLUSTER_CLAIM_MIGRATED' }, 'the VM\'s claim moved to this host at switchover');
  }

  /** The guest runs here: the claim is this host's like any other. */
  settle(name: string): void {
    this.transfers.delete(name);
  }

  /**
   * The guest will not run here: a claim moved here goes back to the source (compared on this
   * host's exact values, so only a claim this host holds moves). Throws CLUSTER_UNAVAILABLE when
   * etcd cannot be reached; the transfer is then kept, and handed back at the next sync.
   */
  async handBack(name: string): Promise<void> {
    const t = this.transfers.get(name);
    if (t === undefined) return;
    if (t.taken !== false) {
      const { client, keys, hostId } = this.d;
      const nameKey = keys.name(name);
      const uuidKey = keys.uuid(t.uuid);
      await this.d.etcd(() => client
        .if(nameKey, 'Value', '==', nameClaimValue(hostId, t.uuid)).and(uuidKey, 'Value', '==', uuidClaimValue(hostId, name))
        .then(client.put(nameKey).value(nameClaimValue(t.from, t.uuid)), client.put(uuidKey).value(uuidClaimValue(t.from, name)))
        .commit());
      this.d.log.warn({ name, to: t.from, msgId: 'CLUSTER_CLAIM_HANDED_BACK' }, 'the migration failed at switchover: the claim went back to the source host');
    }
    this.transfers.delete(name);
  }

  /** Names whose claim must go back to their source (their record here is gone). */
  pending(isLocal: (name: string) => boolean): string[] {
    return [...this.transfers.keys()].filter((n) => !isLocal(n));
  }
}
