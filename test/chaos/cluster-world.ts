// The world of the cluster chaos suite (issue 20): a real three-member etcd and three "hosts" —
// three virtqemud roots joined with --cluster — sharing one lockfile lockspace (as hosts share
// one on NFS) and a directory of disk images, plus the truth the invariants read: etcd's claim
// keys, each host's listing, and /proc (QEMUs per root, which disk files each QEMU has open
// read-write, which lease holders live).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { delay, systemClock, type DomainRow, type RpcClient, type TypedClient, type VirtqProgram } from '../../protocol/index.js';
import { procState } from '../../drivers/host/proc.js';
import { DaemonHarness, type RunningDaemon } from '../helpers/daemon-harness.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import type { HolderRecord } from '../../drivers/lock/lockspace.js';

const clock = systemClock();
const O_ACCMODE = 0o3;
const O_RDWR = 0o2;

/** One host: a root, its virtqemud (restartable) and a cached client. */
export class ClusterHost {
  readonly harness: DaemonHarness;
  daemon: RunningDaemon | undefined;
  private client: { rpc: RpcClient; api: TypedClient<VirtqProgram> } | undefined;

  constructor(readonly id: string, private readonly args: string[], lockspace: string) {
    this.harness = new DaemonHarness(tmpRoot('vqcc-'));
    mkdirSync(this.harness.layout.config, { recursive: true });
    writeFileSync(join(this.harness.layout.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile', lockspace }));
  }

  get root(): string {
    return this.harness.root.dir;
  }

  get up(): boolean {
    const p = this.daemon?.proc;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  async start(): Promise<void> {
    const d = await this.harness.startDaemon(this.args);
    if (!d.reply.ok) throw new Error(`virtqemud of ${this.id} refused to start: ${JSON.stringify(d.reply)}`);
    this.daemon = d;
  }

  /** kill -9 of virtqemud; resolves once it is reaped. */
  async kill(): Promise<void> {
    const d = this.daemon;
    if (d === undefined) return;
    d.proc.kill('SIGCONT');
    d.proc.kill('SIGKILL');
    await d.exited;
  }

  signal(sig: 'SIGSTOP' | 'SIGCONT'): void {
    this.daemon?.proc.kill(sig);
  }

  /** A client of this host's virtqemud, reconnected after a restart. */
  async api(): Promise<TypedClient<VirtqProgram>> {
    if (this.client !== undefined) return this.client.api;
    const c = await this.harness.client();
    this.client = c;
    c.rpc.onClose(() => { if (this.client === c) this.client = undefined; });
    return c.api;
  }

  /** The listing, or undefined when virtqemud does not answer within `ms`. */
  async list(ms = 10_000): Promise<DomainRow[] | undefined> {
    if (!this.up) return undefined;
    const api = await this.api().catch(() => undefined);
    if (api === undefined) return undefined;
    return within(api.listDomains({}).then((r) => r.domains, () => undefined), ms);
  }
}

/** A live QEMU, as /proc shows it. */
export interface QemuOnHost {
  pid: number;
  host: string;
  name: string;
  uuid: string;
  /** The shared disk images it has open read-write. */
  rwDisks: string[];
}

/** A claim key as etcd holds it. */
export interface Claim {
  host: string;
  uuid: string;
}

/** etcd, three hosts, a shared lockspace and shared disks. */
export class ClusterWorld {
  etcd!: EtcdCluster;
  readonly prefix = `cc-${randomUUID().slice(0, 8)}`;
  readonly hosts: ClusterHost[] = [];
  readonly shared: TmpRoot = tmpRoot('vqcl-');
  private reader: Etcd3 | undefined;

  constructor(private readonly ttlSec: number) {
    mkdirSync(this.lockspace, { recursive: true });
    mkdirSync(this.shared.path('disks'), { recursive: true });
  }

  get lockspace(): string {
    return this.shared.path('lockspace');
  }

  async start(hostCount: number): Promise<void> {
    this.etcd = await startEtcdCluster();
    this.reader = new Etcd3({ hosts: this.etcd.members.map((m) => `http://${m.client}`) });
    for (let i = 0; i < hostCount; i++) {
      const id = `host${i}`;
      const h = new ClusterHost(id, ['--cluster', this.etcd.uri(this.prefix), '--cluster-host', id, '--cluster-ttl', String(this.ttlSec), '--reconcile-ms', '1000'], this.lockspace);
      this.hosts.push(h);
      await h.start();
    }
  }

  /** A raw image in the shared directory. */
  disk(name: string): string {
    const path = this.shared.path('disks', `${name}.img`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, '1M']);
    return path;
  }

  /** A definition of the idle guest (a running VM that costs no CPU) with one shared disk. */
  definition(name: string, disk: string): { name: string; uuid: string; memoryMiB: number; vcpus: number; accel: 'tcg'; kernel: { path: string }; disks: Array<{ path: string; format: 'raw'; target: string }> } {
    return { name, uuid: randomUUID(), memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel }, disks: [{ path: disk, format: 'raw', target: 'vda' }] };
  }

  /** etcd's name claims and host entries, or undefined when etcd does not answer within `ms`. */
  async claims(ms = 5000): Promise<{ names: Map<string, Claim>; uuids: Map<string, { host: string; name: string }>; hosts: string[] } | undefined> {
    const r = this.reader;
    if (r === undefined) return undefined;
    const read = async () => {
      const [names, uuids, hosts] = await Promise.all(['names', 'uuids', 'hosts'].map((k) => r.getAll().prefix(`${this.prefix}/${k}/`).strings()));
      const strip = (all: Record<string, string> | undefined, k: string) => Object.entries(all ?? {}).map(([key, v]) => [key.slice(`${this.prefix}/${k}/`.length), v] as const);
      return {
        names: new Map(strip(names, 'names').map(([n, v]) => [n, JSON.parse(v) as Claim])),
        uuids: new Map(strip(uuids, 'uuids').map(([u, v]) => [u, JSON.parse(v) as { host: string; name: string }])),
        hosts: strip(hosts, 'hosts').map(([h]) => h).sort(),
      };
    };
    return within(read().catch(() => undefined), ms);
  }

  /** Every live QEMU of every host, with the shared disks it holds open read-write (fdinfo flags). */
  qemus(): QemuOnHost[] {
    const disks = this.shared.path('disks');
    const out: QemuOnHost[] = [];
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid)) continue;
      const st = procState(pid);
      if (st === undefined || st === 'Z' || st === 'X') continue;
      let args: string[];
      try {
        args = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      } catch {
        continue;
      }
      if (!(args[0] ?? '').includes('qemu-system')) continue;
      const host = this.hosts.find((h) => args.some((a) => a.includes(`${h.root}/`)));
      if (host === undefined) continue;
      const nameArg = args[args.indexOf('-name') + 1] ?? '';
      const name = (/^guest=((?:[^,]|,,)*)/.exec(nameArg)?.[1] ?? nameArg).replace(/,,/g, ',');
      out.push({ pid, host: host.id, name, uuid: (args[args.indexOf('-uuid') + 1] ?? '').toLowerCase(), rwDisks: rwFilesUnder(pid, `${disks}/`) });
    }
    return out;
  }

  /** Holder records of the shared lockspace whose holder process lives. */
  liveLeases(): HolderRecord[] {
    const out: HolderRecord[] = [];
    for (const n of readdirSync(this.lockspace)) {
      if (!n.endsWith('.holder')) continue;
      try {
        const r = JSON.parse(readFileSync(join(this.lockspace, n), 'utf8')) as HolderRecord;
        const st = procState(r.holderPid);
        if (st !== undefined && st !== 'Z' && st !== 'X') out.push(r);
      } catch {
        // Written atomically: an unreadable record is one being replaced or removed.
      }
    }
    return out;
  }

  /** etcd's current revision, or undefined when etcd does not answer within `ms`. */
  async revision(ms = 5000): Promise<string | undefined> {
    const r = this.reader;
    if (r === undefined) return undefined;
    return within(r.kv.range({ key: Buffer.from(`${this.prefix}/`) }).then((res) => res.header.revision, () => undefined), ms);
  }

  /** The name claim's key as etcd holds it (value, create revision), null when absent, undefined when etcd does not answer. */
  async nameKey(name: string, ms = 5000): Promise<{ value: string; created: string } | null | undefined> {
    const r = this.reader;
    if (r === undefined) return undefined;
    return within(r.get(`${this.prefix}/names/${name}`).exec().then((res) => {
      const kv = res.kvs[0];
      return kv === undefined ? null : { value: kv.value.toString(), created: kv.create_revision };
    }, () => undefined), ms);
  }

  async cleanup(): Promise<void> {
    this.reader?.close();
    for (const h of this.hosts) {
      h.signal('SIGCONT');
      await h.harness.cleanup();
    }
    await this.etcd?.stop();
    this.shared.remove();
  }
}

/** Files under `dir` that `pid` holds open read-write. */
function rwFilesUnder(pid: number, dir: string): string[] {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!target.startsWith(dir)) continue;
      const flags = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_ACCMODE) === O_RDWR) out.add(target);
    } catch {
      // The fd closed meanwhile.
    }
  }
  return [...out];
}

/** `p`, or undefined once `ms` have passed. */
export async function within<T>(p: Promise<T | undefined>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` (a list of problems) until it is empty or `ms` passed; returns the last problems. */
export async function converge(check: () => Promise<string[]>, ms: number): Promise<{ problems: string[]; tookMs: number }> {
  const start = clock.monotonic();
  for (;;) {
    const problems = await check();
    const tookMs = clock.monotonic() - start;
    if (problems.length === 0 || tookMs > ms) return { problems, tookMs };
    await delay(clock, 250);
  }
}
