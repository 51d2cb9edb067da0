// One virtqemud's membership of an etcd fleet (docs/decisions/0024): its host entry under a lease it renews itself, and
// the cluster-wide claims of its VMs' names and UUIDs. Claims are created in one etcd transaction comparing both keys'
// create revision to 0, so of any number of hosts racing for a name exactly one wins. The host is "available" only
// while its lease is certainly alive (the last renewal that etcd confirmed, counted from when it was SENT, plus the
// TTL); otherwise new defines and starts are refused with CLUSTER_UNAVAILABLE and running VMs go on.
import type { Etcd3, Lease } from 'etcd3';
import { VirtqError, type Clock, type Disposable, type Logger } from '../../protocol/index.js';
import {
  clusterKeys, nameClaimValue, parseClaim, parseHostEntry, uuidClaimValue,
  type ClusterUri, type HostEntry, type NameClaim,
} from '../../protocol/cluster.js';
import { rangeAll } from '../../client/etcd-range.js';
import { IncomingClaims } from './claim-transfer.js';
import { HostReaper } from './host-reaper.js';
import { SYNC_TIMING, SyncSchedule } from './sync-schedule.js';
import { ConflictLog, type FoundConflict } from './conflict-log.js';
import { NameTurns } from '../name-turns.js';
import { etcdClientOptions, type ClusterTls } from '../../protocol/etcd-options.js';

/**
 * How long a virtqemud keeps the claims it found in etcd at its first join that no VM of its own registry holds: a
 * shim its killed predecessor was starting may still register (its state file is written only once QEMU runs), and
 * releasing its claim first would let another host take the name (cluster chaos seed 214015). Short enough that a
 * claim with no shim behind it is released within the fleet's 20 s settling bound.
 */
const INHERITED_GRACE_MS = 10_000;

/** What virtqemud's handlers ask of the fleet (undefined when virtqemud runs without --cluster). */
export interface ClusterGate {
  /** Throws CLUSTER_UNAVAILABLE unless this host's lease is certainly alive. */
  requireAvailable(action: string): void;
  /** Claims `name` and `uuid` for this host; NAME_IN_USE / UUID_IN_USE name the host holding them. */
  claim(name: string, uuid: string): Promise<void>;
  /** Releases the claims if this host holds them (queued; a failed release is retried at the next sync). */
  release(name: string, uuid: string): void;
  /** A migration in (prepare): true when the claim stays its source host's until switchover (see claim-transfer.ts). */
  expectIncoming(name: string, uuid: string): Promise<boolean>;
  /** Switchover: moves the claim of an incoming VM here (no-op when it was claimed here at prepare). */
  takeIncoming(name: string): Promise<void>;
  /** The incoming guest runs here: its claim is this host's from now on. */
  settleIncoming(name: string): void;
  /** The incoming guest will not run here: a claim moved here goes back to its source host. */
  returnIncoming(name: string): Promise<void>;
  /**
   * A VM the registry did not know registered (a shim started before a virtqemud crash, whose
   * claim the restart's join released): claimed now, a conflict reported as at a join.
   */
  adopted(name: string, uuid: string): void;
}

/** How a membership is set up. */
export interface MembershipConfig {
  uri: ClusterUri;
  /** TLS to etcd (--cluster-cacert...); undefined: plain gRPC. */
  tls?: ClusterTls;
  hostId: string;
  ttlSec: number;
  /** How often the sync runs without cause (--cluster-sync-period); undefined: SYNC_TIMING's. */
  syncPeriodMs?: number;
  self: Pick<HostEntry, 'socket' | 'roSocket' | 'pid'>;
  clock: Clock;
  log: Logger;
  /** Free the names of hosts gone (lease expired, not back) this long; undefined: never (names outlive hosts). */
  reclaimAfterSec?: number;
  /** The VMs this host holds now (its registry): re-asserted after every join, the rest released. */
  local: () => Iterable<{ name: string; uuid: string }>;
  /** Told the lease id and until when (clock.monotonic()) it is certainly alive, after every join and renewal. */
  onLease?: (lease: string, aliveUntil: number) => void;
}

/** A host of the fleet. */
export class EtcdMembership implements ClusterGate {
  private readonly keys: ReturnType<typeof clusterKeys>;
  private lease: Lease | undefined;
  private leaseId = '';
  /** Monotonic time before which the lease is certainly alive (0: not joined). */
  private aliveUntil = 0;
  private joining: Promise<void> | undefined;
  private resync = false;
  private timer: Disposable | undefined;
  private closed = false;
  private since: number | undefined;
  private readonly turns = new NameTurns();
  private readonly incoming: IncomingClaims;
  private readonly reaper: HostReaper | undefined;
  private readonly schedule: SyncSchedule;
  private readonly conflictLog: ConflictLog;
  /** Claims of this host no local VM held at the first completed sync ("name\0uuid"), kept until inheritedUntil. */
  private inherited: Set<string> | undefined;
  private readonly inheritedUntil: number;
  private metrics: string | undefined;
  /** Orders the sync's snapshots of the local VMs and the failures of claim() (see claimIfLocal). */
  private order = 0;
  /** The order at which a claim() of "name\0uuid" last failed, kept until a sync's snapshot is newer. */
  private readonly failedClaims = new Map<string, number>();
  /** Why the last heartbeat failed (a refused certificate, no leader...): told with CLUSTER_UNAVAILABLE. */
  private lastError: string | undefined;
  conflicts: HostEntry['conflicts'] = [];

  /** A membership (not yet joined); etcd3 and gRPC are loaded only by a virtqemud given --cluster. */
  static async create(cfg: MembershipConfig): Promise<EtcdMembership> {
    const { Etcd3: Client } = await import('etcd3');
    const callMs = Math.min(3000, Math.max(500, (cfg.ttlSec * 1000) / 3));
    const client = new Client(etcdClientOptions({ endpoints: cfg.uri.endpoints, callMs, ...(cfg.tls === undefined ? {} : { tls: cfg.tls }) }));
    return new EtcdMembership(cfg, client, callMs);
  }

  private constructor(private readonly cfg: MembershipConfig, private readonly client: Etcd3, private readonly callMs: number) {
    this.keys = clusterKeys(cfg.uri.prefix);
    this.incoming = new IncomingClaims({ client, keys: this.keys, hostId: cfg.hostId, log: cfg.log, etcd: (call) => this.etcd(call) });
    this.schedule = new SyncSchedule(cfg.clock, { ...SYNC_TIMING, ...(cfg.syncPeriodMs === undefined ? {} : { periodMs: cfg.syncPeriodMs }) });
    this.conflictLog = new ConflictLog(cfg.clock, cfg.log);
    this.inheritedUntil = cfg.clock.monotonic() + INHERITED_GRACE_MS;
    this.reaper = cfg.reclaimAfterSec === undefined ? undefined : new HostReaper({ client, keys: this.keys, hostId: cfg.hostId, clock: cfg.clock, log: cfg.log, afterMs: cfg.reclaimAfterSec * 1000 });
  }

  /** Joins (waiting at most `waitMs` for the first join), then keeps the lease alive in the background. */
  async start(waitMs: number): Promise<void> {
    const first = this.tick();
    await Promise.race([first, new Promise((r) => this.cfg.clock.setTimeout(() => r(undefined), waitMs))]);
  }

  get available(): boolean {
    return !this.closed && this.cfg.clock.monotonic() < this.aliveUntil;
  }

  requireAvailable(action: string): void {
    if (this.available) return;
    const since = this.since === undefined ? 'it has not joined yet' : `its lease was last confirmed ${new Date(this.since).toISOString()}`;
    const why = this.lastError === undefined ? '' : `; last etcd error: ${this.lastError}`;
    throw new VirtqError('CLUSTER_UNAVAILABLE', `cannot ${action}: this host (${this.cfg.hostId}) has no live lease in the etcd fleet at ${this.cfg.uri.endpoints.join(',')} (${since}${why}); running VMs keep running, retry when etcd is reachable`);
  }

  async claim(name: string, uuid: string): Promise<void> {
    this.requireAvailable(`claim "${name}"`);
    // A VM migrating in: its claim is its source host's until the switchover moves it here.
    if (this.incoming.covers(name, uuid)) return;
    // Marked in the name's turn, so a sync queued behind this claim sees it (claimIfLocal).
    await this.inTurn(name, () => this.claimNow(name, uuid).catch((err: unknown) => {
      this.failedClaims.set(claimKey(name, uuid), ++this.order);
      throw err;
    }));
  }

  async expectIncoming(name: string, uuid: string): Promise<boolean> {
    this.requireAvailable(`take in VM "${name}" by migration`);
    return this.inTurn(name, () => this.incoming.expect(name, uuid));
  }

  async takeIncoming(name: string): Promise<void> {
    this.requireAvailable(`take over the claim of VM "${name}" at switchover`);
    await this.inTurn(name, () => this.incoming.take(name));
  }

  settleIncoming(name: string): void {
    this.incoming.settle(name);
  }

  async returnIncoming(name: string): Promise<void> {
    await this.inTurn(name, () => this.incoming.handBack(name)).catch((err: unknown) => {
      this.resync = true;
      throw err;
    });
  }

  release(name: string, uuid: string): void {
    void this.inTurn(name, async () => {
      // Re-taken locally meanwhile (a define right after an undefine): the claim is still needed.
      if (this.holdsLocally(name, uuid)) return;
      // An incoming VM that never ran here: a claim moved here goes back, never away.
      if (this.incoming.has(name)) await this.incoming.handBack(name);
      else await this.releaseNow(name, uuid);
    }).catch((err: unknown) => {
      this.resync = true;
      this.cfg.log.warn({ name, err: VirtqError.from(err).message, msgId: 'CLUSTER_RELEASE_FAILED' }, 'release of a cluster claim failed; retried at the next sync');
    });
  }

  adopted(name: string, uuid: string): void {
    void this.inTurn(name, () => this.claimNow(name, uuid)).catch((err: unknown) => {
      // Unreachable: retried at the next sync; held by another host: the sync reports the conflict.
      this.resync = true;
      const e = VirtqError.from(err);
      if (e.code !== 'CLUSTER_UNAVAILABLE') this.cfg.log.error({ name, err: e.message, msgId: 'CLUSTER_CLAIM_CONFLICT' }, 'an adopted VM\'s name or UUID is held by another host; left as it is');
    });
  }

  /** Publishes this host's metrics address (its --http) in its host entry, now and at every join. */
  advertise(metrics: string): void {
    this.metrics = metrics;
    if (this.lease === undefined || !this.available) return;
    this.publish().catch((err: unknown) => {
      this.cfg.log.warn({ err: VirtqError.from(err).message, msgId: 'CLUSTER_HEARTBEAT_FAILED' }, 'publishing the metrics address failed; it is published at the next join');
    });
  }

  /** The host entries of the fleet (hosts whose lease lives). */
  async hosts(): Promise<HostEntry[]> {
    const values = await this.etcd(() => rangeAll(this.client, this.keys.hostsDir));
    return values.map(([, v]) => parseHostEntry(v)).filter((e): e is HostEntry => e !== undefined);
  }

  /**
   * Leaves the fleet. The lease is not revoked: the disk keys of running VMs are bound to it, and
   * a virtqemud restarted within the TTL hands its shims a new lease before it ends (they fence
   * if none comes). The host entry goes when it expires; claims stay (the VMs keep running).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.dispose();
    this.lease?.release();
    this.client.close();
  }

  // One heartbeat: join when there is no lease, else renew it; then schedule the next.
  private async tick(): Promise<void> {
    if (this.closed) return;
    try {
      // Past the time the lease was certainly alive it may have expired on the server (a paused
      // process, a partition): a new lease, rather than hoping the old one still counts.
      if (this.lease === undefined || !this.available) await this.join();
      else await this.renew();
      if (this.resync || this.schedule.due()) await this.sync();
      this.lastError = undefined;
      // Only a host that is itself in the fleet judges others gone; never holding up the heartbeat.
      if (this.available) {
        void this.reaper?.pass().catch((err: unknown) => this.cfg.log.warn({ err: VirtqError.from(err).message, msgId: 'CLUSTER_REAPER_FAILED' }, 'looking for gone hosts failed; tried again at a later heartbeat'));
      }
    } catch (err) {
      this.lastError = (err instanceof Error ? err.message : String(err)).slice(0, 500);
      this.cfg.log.warn({ err: VirtqError.from(err).message, msgId: 'CLUSTER_HEARTBEAT_FAILED' }, 'etcd heartbeat failed');
    } finally {
      if (!this.closed) this.timer = this.cfg.clock.setTimeout(() => void this.tick(), Math.max(200, (this.cfg.ttlSec * 1000) / 3));
    }
  }

  private async renew(): Promise<void> {
    const sent = this.cfg.clock.monotonic();
    const res = await (this.lease as Lease).keepaliveOnce({ deadline: Date.now() + this.callMs });
    if (Number(res.TTL) <= 0) {
      // Expired on the server: the host entry is gone; join again with a new lease.
      this.cfg.log.error({ msgId: 'CLUSTER_LEASE_EXPIRED' }, 'the host lease expired; joining the fleet again');
      this.aliveUntil = 0;
      await this.join();
      return;
    }
    this.aliveUntil = sent + Number(res.TTL) * 1000;
    this.since = this.cfg.clock.now();
    this.cfg.onLease?.(this.leaseId, this.aliveUntil);
  }

  // A new lease, the host entry under it, then every local claim re-asserted before the host is available.
  private async join(): Promise<void> {
    this.joining ??= (async () => {
      const old = this.lease;
      this.lease = undefined;
      old?.release();
      void old?.revoke().catch(() => undefined);
      const sent = this.cfg.clock.monotonic();
      const lease = this.client.lease(this.cfg.ttlSec, { autoKeepAlive: false });
      lease.on('lost', () => undefined);
      this.leaseId = await lease.grant();
      this.lease = lease;
      await this.sync();
      await this.publish();
      this.aliveUntil = sent + this.cfg.ttlSec * 1000;
      this.since = this.cfg.clock.now();
      this.cfg.onLease?.(this.leaseId, this.aliveUntil);
      this.cfg.log.info({ host: this.cfg.hostId, msgId: 'CLUSTER_JOINED' }, 'joined the etcd fleet');
    })().finally(() => { this.joining = undefined; });
    return this.joining;
  }

  private async publish(): Promise<void> {
    const entry: HostEntry = { host: this.cfg.hostId, ...this.cfg.self, since: this.cfg.clock.now(), conflicts: this.conflicts, ...(this.metrics === undefined ? {} : { metrics: this.metrics }) };
    await (this.lease as Lease).put(this.keys.host(this.cfg.hostId)).value(JSON.stringify(entry));
  }

  // Local VMs are claimed (or found already ours); claims of ours no local VM holds are released;
  // a local VM whose name another host holds is reported in the host entry, never taken over.
  private async sync(): Promise<void> {
    this.resync = false;
    try {
      await this.syncOnce();
      this.schedule.synced();
    } catch (err) {
      // Not done: a claim left by a failed call (its release failed too) must not wait for the
      // next join to be released, so the next heartbeat tries again (found by cluster chaos).
      this.resync = true;
      throw err;
    }
  }

  private async syncOnce(): Promise<void> {
    const found = new Set<string>();
    const [held, heldUuids] = await this.etcd(() => Promise.all([rangeAll(this.client, this.keys.namesDir), rangeAll(this.client, this.keys.uuidsDir)]));
    const conflicts: FoundConflict[] = [];
    const local = new Map([...this.cfg.local()].map((r) => [r.name, r.uuid.toLowerCase()]));
    // Syncs run one after another (the heartbeat awaits each): no later one needs what is older than this snapshot.
    const snapshot = ++this.order;
    for (const [key, at] of this.failedClaims) if (at < snapshot) this.failedClaims.delete(key);
    // Claims already exactly this host's need no Txn: a periodic sync costs two reads, not one Txn per VM.
    const names = new Map(held);
    const uuids = new Map(heldUuids);
    for (const [name, uuid] of local) {
      if (this.incoming.covers(name, uuid)) continue;
      if (names.get(this.keys.name(name)) === nameClaimValue(this.cfg.hostId, uuid) && uuids.get(this.keys.uuid(uuid)) === uuidClaimValue(this.cfg.hostId, name)) continue;
      await this.inTurn(name, () => this.claimIfLocal(name, uuid, snapshot)).catch((err: unknown) => {
        const e = VirtqError.from(err);
        if (e.code === 'CLUSTER_UNAVAILABLE') throw e;
        conflicts.push({ name, uuid, heldBy: String(e.details?.['host'] ?? 'another host'), message: e.message });
      });
    }
    for (const name of this.incoming.pending((n) => local.has(n))) await this.inTurn(name, () => this.incoming.handBack(name)).catch(() => { this.resync = true; });
    for (const [key, value] of held) {
      const claim = parseClaim(value);
      const name = key.slice(this.keys.namesDir.length);
      if (this.incoming.has(name)) continue;
      if (claim?.host !== this.cfg.hostId || local.get(name) === claim.uuid) continue;
      if (this.keepInherited(name, claim.uuid, found)) continue;
      await this.inTurn(name, async () => { if (!this.holdsLocally(name, claim.uuid)) await this.releaseNow(name, claim.uuid); });
    }
    this.inherited ??= found;
    // Logged as they start and end (conflict-log.ts), not at every sync.
    this.conflictLog.found(conflicts);
    const entry = conflicts.map(({ name, uuid, heldBy }) => ({ name, uuid, heldBy }));
    const changed = JSON.stringify(entry) !== JSON.stringify(this.conflicts);
    this.conflicts = entry;
    if (changed && this.lease !== undefined && this.aliveUntil > 0) await this.publish();
  }

  private async claimNow(name: string, uuid: string): Promise<void> {
    const nameKey = this.keys.name(name);
    const uuidKey = this.keys.uuid(uuid);
    const res = await this.etcd(() => this.client
      .if(nameKey, 'Create', '==', 0).and(uuidKey, 'Create', '==', 0)
      .then(this.client.put(nameKey).value(nameClaimValue(this.cfg.hostId, uuid)), this.client.put(uuidKey).value(uuidClaimValue(this.cfg.hostId, name)))
      .else(this.client.get(nameKey), this.client.get(uuidKey))
      .commit());
    if (res.succeeded) {
      // The revision it committed at: what a chaos report or an operator checks a claim against.
      this.cfg.log.info({ name, uuid, revision: res.header.revision, msgId: 'CLUSTER_CLAIMED' }, 'claimed the VM\'s name and UUID in the etcd fleet');
      return;
    }
    const [byName, byUuid] = res.responses.map((r) => r.response_range?.kvs[0]?.value.toString());
    const nameClaim: NameClaim | undefined = byName === undefined ? undefined : parseClaim(byName);
    const uuidClaim = byUuid === undefined ? undefined : (JSON.parse(byUuid) as { host?: unknown; name?: unknown });
    const ours = nameClaim?.host === this.cfg.hostId && nameClaim.uuid === uuid.toLowerCase() && uuidClaim?.host === this.cfg.hostId && uuidClaim.name === name;
    if (ours) return;
    if (byName !== undefined) {
      const holder = nameClaim?.host ?? 'an unreadable claim';
      throw new VirtqError('NAME_IN_USE', `VM name "${name}" is claimed in the etcd fleet by host ${holder}${nameClaim === undefined ? '' : ` (uuid ${nameClaim.uuid})`}; a name is unique across the fleet`, { details: { host: holder, ...(nameClaim === undefined ? {} : { uuid: nameClaim.uuid }) } });
    }
    const holder = typeof uuidClaim?.host === 'string' ? uuidClaim.host : 'an unreadable claim';
    throw new VirtqError('UUID_IN_USE', `UUID ${uuid} is claimed in the etcd fleet by host ${holder}${typeof uuidClaim?.name === 'string' ? ` for VM "${uuidClaim.name}"` : ''}`, { details: { host: holder } });
  }

  // The sync's claim of a VM its snapshot found local: a define or undefine since then decides instead (a failed
  // define removed its VM, an undefine released it); claiming anyway would refuse the name fleet-wide until the next sync.
  // The VM's own claim (its define's or start's) failing after the snapshot decides too: a refused define removes its
  // VM only once the refusal reaches it, after this runs, and a Txn sent now can land after the other host released the
  // name, holding it against that host's next define until the release below (cluster-stale-claims, session 29).
  private async claimIfLocal(name: string, uuid: string, snapshot: number): Promise<void> {
    if ((this.failedClaims.get(claimKey(name, uuid)) ?? 0) > snapshot) return;
    if (!this.holdsLocally(name, uuid)) return;
    const failed = await this.claimNow(name, uuid).then(() => undefined, (err: unknown) => VirtqError.from(err));
    const local = this.holdsLocally(name, uuid);
    if (failed !== undefined && (local || failed.code === 'CLUSTER_UNAVAILABLE')) throw failed;
    if (failed === undefined && !local) await this.releaseNow(name, uuid);
  }

  private async releaseNow(name: string, uuid: string): Promise<void> {
    const nameKey = this.keys.name(name);
    const uuidKey = this.keys.uuid(uuid);
    await this.etcd(() => this.client
      .if(nameKey, 'Value', '==', nameClaimValue(this.cfg.hostId, uuid)).and(uuidKey, 'Value', '==', uuidClaimValue(this.cfg.hostId, name))
      .then(this.client.delete().key(nameKey), this.client.delete().key(uuidKey))
      .commit());
  }

  // A claim found by the first completed sync stays until INHERITED_GRACE_MS after this member was
  // made; the heartbeats sync until then, so it goes at the first one after.
  private keepInherited(name: string, uuid: string, found: Set<string>): boolean {
    if (this.cfg.clock.monotonic() >= this.inheritedUntil) return false;
    const key = `${name}\u0000${uuid}`;
    if (this.inherited === undefined) found.add(key);
    else if (!this.inherited.has(key)) return false;
    this.resync = true;
    return true;
  }

  private holdsLocally(name: string, uuid: string): boolean {
    for (const r of this.cfg.local()) if (r.name === name && r.uuid.toLowerCase() === uuid.toLowerCase()) return true;
    return false;
  }

  // etcd's own errors (unreachable, no leader, deadline) become CLUSTER_UNAVAILABLE.
  private async etcd<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      // It may still land (retried on another member, or proposed by a member that resumes).
      this.schedule.uncertain();
      throw new VirtqError('CLUSTER_UNAVAILABLE', `this host (${this.cfg.hostId}) cannot reach its etcd fleet at ${this.cfg.uri.endpoints.join(',')} (${err instanceof Error ? err.message : String(err)}); running VMs keep running, retry when etcd is reachable`, { cause: err });
    }
  }

  // Claims and releases of one name run one at a time, in the order they were asked for.
  private inTurn<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.turns.run(name, fn);
  }
}

function claimKey(name: string, uuid: string): string {
  return `${name}\u0000${uuid.toLowerCase()}`;
}
