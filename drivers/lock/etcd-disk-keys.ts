// Disk leases as etcd keys (docs/decisions/0030): one key per holder under the resource's dir,
//   PREFIX/disks/<sha256 of the canonical path>/x/<vm uuid>   an exclusive holder
//   PREFIX/disks/<sha256 of the canonical path>/s/<vm uuid>   a shared holder
// each bound to its host's etcd lease. A lease is one Txn whose compare is a create-revision
// range compare (`Create == 0` over the whole dir for exclusive, over `x/` for shared), so etcd,
// which serialises transactions, lets exactly one of racing hosts win. A migration's source hands a
// key over instead of deleting it (`handover: true`, still bound to its own lease), and the VM's QEMU
// on the destination re-puts it under its host's lease in one Txn: the key never disappears.
import type { Etcd3 } from 'etcd3';
import { VirtqError } from '../../protocol/errors.js';
import type { LeaseHolder, LeaseMode, LeaseOwner } from './types.js';

/** A holder key's value. */
export interface DiskKeyValue {
  host: string;
  vm: string;
  uuid: string;
  mode: LeaseMode;
  resource: string;
  qemuPid?: number;
  /**
   * Set by a migration's source at switchover (guest paused, docs/decisions/0030): it no longer
   * uses the disk, and the same VM (uuid) may take the key over from any host, atomically. The key
   * stays bound to the source host's lease until then, so the disk is never unleased.
   */
  handover?: true;
}

/** One disk lease to take: `hash` is the lockspace's resource key, `resource` the canonical path. */
export interface DiskKeyRequest {
  hash: string;
  resource: string;
  mode: LeaseMode;
}

const enc = (s: string): Buffer => Buffer.from(s);
// The end of a key range [dir, end) holding every key under `dir` (which ends with '/').
const rangeEnd = (dir: string): Buffer => enc(`${dir.slice(0, -1)}0`);

/** The etcd side of the etcd lock plugin. */
export class EtcdDiskKeys {
  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly host: string,
    private readonly callMs: number,
    private readonly endpoints: readonly string[],
  ) {}

  /**
   * Takes (or re-binds to `lease`) the key of `owner` on `req`. Keys of other VMs of this host are
   * stale when the caller holds the local lock (their QEMU is gone) and are removed; a holder on
   * another host is a LOCK_CONFLICT naming it. Never overwrites another holder, except, with
   * `takeOver`, a key of this very VM another host has handed over (a migration's switchover).
   */
  async acquire(owner: LeaseOwner, req: DiskKeyRequest, lease: string, qemuPid?: number, takeOver = false): Promise<void> {
    const dir = `${this.prefix}/disks/${req.hash}/`;
    const own = `${dir}${req.mode === 'exclusive' ? 'x' : 's'}/${owner.uuid}`;
    const guard = req.mode === 'exclusive' ? dir : `${dir}x/`;
    const value: DiskKeyValue = { host: this.host, vm: owner.vm, uuid: owner.uuid, mode: req.mode, resource: req.resource, ...(qemuPid === undefined ? {} : { qemuPid }) };
    const put = { request_put: { key: enc(own), value: enc(JSON.stringify(value)), lease } };
    for (let attempt = 0; attempt < 4; attempt++) {
      const res = await this.etcd(() => this.client.kv.txn({
        compare: [{ key: enc(guard), range_end: rangeEnd(guard), target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [put],
        failure: [{ request_range: { key: enc(guard), range_end: rangeEnd(guard) } }],
      }, { deadline: Date.now() + this.callMs }));
      if (res.succeeded) return;
      const kvs = res.responses[0]?.response_range.kvs ?? [];
      const others: Array<{ key: Buffer; v: DiskKeyValue | undefined }> = [];
      for (const kv of kvs) {
        const v = parseValue(kv.value.toString());
        if (v?.uuid === owner.uuid && v.host === this.host) continue; // ours: re-bound below
        others.push({ key: kv.key, v });
      }
      const handed = (v: DiskKeyValue | undefined): boolean => takeOver && v?.handover === true && v.uuid === owner.uuid;
      // A key in hand-over is a lease in transit even on this host (its local half is already
      // given back, so holding the local lock proves nothing about it): never stale.
      const foreign = others.filter((o) => (o.v?.host !== this.host || o.v.handover === true) && !handed(o.v));
      if (foreign.length > 0) throw this.conflict(req, foreign.map((o) => o.v));
      // Only ours, keys handed over to this VM and stale keys of this host: drop the others and put
      // ours, in one Txn that holds only if no key of the dir changed or appeared since it was read
      // (so a handed-over key moves from its source's lease to ours with no instant between).
      const seenAt = String(Number(res.header.revision) + 1);
      const drop = others.filter((o) => o.key.toString() !== own);
      const done = await this.etcd(() => this.client.kv.txn({
        compare: [
          ...kvs.map((kv) => ({ key: kv.key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(kv.mod_revision) })),
          { key: enc(guard), range_end: rangeEnd(guard), target: 'Create', result: 'Less', create_revision: seenAt },
        ],
        success: [...drop.map((o) => ({ request_delete_range: { key: o.key } })), put],
        failure: [],
      }, { deadline: Date.now() + this.callMs }));
      if (done.succeeded) return;
    }
    throw new VirtqError('CLUSTER_UNAVAILABLE', `cannot lease disk ${req.resource} in the etcd fleet: it kept changing under this host (${this.host}); retry`);
  }

  /**
   * A migration's switchover: marks `owner`'s key on `hash` as handed over (`handover: true`),
   * keeping it bound to this host's lease, so the VM's QEMU on the destination can take it over in
   * one Txn. Compared on the key's mod revision: a key changed since it was read is not marked
   * (CLUSTER_UNAVAILABLE). A key that is not this host's is left alone (LOCK_CONFLICT).
   */
  async handOver(owner: LeaseOwner, hash: string): Promise<void> {
    for (const m of ['x', 's']) {
      const key = `${this.prefix}/disks/${hash}/${m}/${owner.uuid}`;
      const res = await this.etcd(() => this.client.kv.range({ key: enc(key) }, { deadline: Date.now() + this.callMs }));
      const kv = res.kvs[0];
      if (kv === undefined) continue;
      const v = parseValue(kv.value.toString());
      if (v === undefined || v.host !== this.host) throw this.conflict({ hash, resource: v?.resource ?? key, mode: m === 'x' ? 'exclusive' : 'shared' }, [v]);
      const marked: DiskKeyValue = { ...v, handover: true };
      const done = await this.etcd(() => this.client.kv.txn({
        compare: [{ key: enc(key), target: 'Mod', result: 'Equal', mod_revision: String(kv.mod_revision) }],
        success: [{ request_put: { key: enc(key), value: enc(JSON.stringify(marked)), lease: kv.lease } }], failure: [],
      }, { deadline: Date.now() + this.callMs }));
      if (!done.succeeded) throw new VirtqError('CLUSTER_UNAVAILABLE', `the etcd key of disk ${v.resource} changed while this host (${this.host}) handed it over; the migration is rolled back`);
    }
  }

  /** Deletes `owner`'s key on `hash` (either mode) unless it records another QEMU than `qemuPid`. */
  async release(owner: LeaseOwner, hash: string, qemuPid?: number): Promise<void> {
    for (const m of ['x', 's']) {
      const key = `${this.prefix}/disks/${hash}/${m}/${owner.uuid}`;
      const res = await this.etcd(() => this.client.kv.range({ key: enc(key) }, { deadline: Date.now() + this.callMs }));
      const kv = res.kvs[0];
      if (kv === undefined) continue;
      const v = parseValue(kv.value.toString());
      if (v !== undefined && v.host !== this.host) continue;
      if (qemuPid !== undefined && v?.qemuPid !== undefined && v.qemuPid !== qemuPid) continue;
      await this.etcd(() => this.client.kv.txn({
        compare: [{ key: enc(key), target: 'Mod', result: 'Equal', mod_revision: String(kv.mod_revision) }],
        success: [{ request_delete_range: { key: enc(key) } }], failure: [],
      }, { deadline: Date.now() + this.callMs }));
    }
  }

  private conflict(req: DiskKeyRequest, values: ReadonlyArray<DiskKeyValue | undefined>): VirtqError {
    const holders: LeaseHolder[] = values.map((v) => ({ vm: v?.vm ?? '?', uuid: v?.uuid ?? '?', host: v?.host ?? 'an unreadable holder', mode: v?.mode ?? 'exclusive', ...(v?.qemuPid === undefined ? {} : { qemuPid: v.qemuPid }) }));
    const who = values.map((v, i) => {
      const h = holders[i] as LeaseHolder;
      return `VM "${h.vm}" (uuid ${h.uuid}, on host ${h.host}, ${h.mode} lease${v?.handover === true ? ', being handed over in a migration' : ''})`;
    }).join('; ');
    return new VirtqError('LOCK_CONFLICT', `cannot lease disk ${req.resource} (${req.mode}) in the etcd fleet: it is in use by ${who}`, {
      details: { resource: req.resource, mode: req.mode, holders, host: holders[0]?.host ?? '' },
    });
  }

  // etcd's own failures (unreachable, no quorum, deadline) are CLUSTER_UNAVAILABLE: fail closed.
  private async etcd<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw new VirtqError('CLUSTER_UNAVAILABLE', `this host (${this.host}) cannot reach its etcd fleet at ${this.endpoints.join(',')} to lease disks (${err instanceof Error ? err.message : String(err)}); retry when etcd is reachable`, { cause: err });
    }
  }
}

function parseValue(text: string): DiskKeyValue | undefined {
  try {
    const v = JSON.parse(text) as Partial<DiskKeyValue>;
    return typeof v.host === 'string' && typeof v.uuid === 'string' && typeof v.vm === 'string' ? v as DiskKeyValue : undefined;
  } catch {
    return undefined;
  }
}
