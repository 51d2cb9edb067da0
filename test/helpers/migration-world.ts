// Two virtq hosts on one machine for migration tests: two temporary roots, each with its own
// virtqemud, sharing one lockspace (as two hosts share one on NFS), and a disk image in a
// directory of its own. Also what the fault tests check on both sides afterwards.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LifecycleEvent, RpcClient, TypedClient, VirtqProgram } from '../../protocol/index.js';
import { connect, type Connection } from '../../client/index.js';
import { isLiveProcess } from '../../drivers/host/proc.js';
import { DaemonHarness } from './daemon-harness.js';
import { testAccel, testGuest } from './test-guest.js';
import { tmpRoot, type TmpRoot } from './tmp-root.js';

/** One holder record in the shared lockspace. */
export interface LeaseRecord {
  uuid: string;
  vm: string;
  qemuPid?: number;
  holderPid: number;
  mode: string;
}

/** Two hosts and a shared lockspace. */
export class MigrationWorld {
  readonly src = new DaemonHarness(tmpRoot('vqs-'));
  readonly dst = new DaemonHarness(tmpRoot('vqd-'));
  readonly shared: TmpRoot = tmpRoot('vql-');
  private readonly conns: Connection[] = [];
  private readonly apis = new Map<DaemonHarness, { rpc: RpcClient; api: TypedClient<VirtqProgram> }>();

  constructor(private readonly extraLock: Record<string, string> = {}) {
    for (const h of [this.src, this.dst]) {
      mkdirSync(h.layout.config, { recursive: true });
      writeFileSync(join(h.layout.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile', lockspace: this.lockspace }));
    }
    mkdirSync(this.lockspace, { recursive: true });
  }

  get lockspace(): string {
    return this.shared.path('lockspace');
  }

  /** The destination's URI, as `virtq migrate` takes it. */
  get dstUri(): string {
    return `qemu:///system?root=${this.dst.root.dir}`;
  }

  get srcUri(): string {
    return `qemu:///system?root=${this.src.root.dir}`;
  }

  /** Writes a lock.json for the destination only (e.g. a flock wrapper that refuses). */
  configureDstLock(config: Record<string, unknown>): void {
    writeFileSync(join(this.dst.layout.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile', lockspace: this.lockspace, ...this.extraLock, ...config }));
  }

  /** A raw disk image in the shared directory. */
  disk(name = 'disk.img', size = '8M'): string {
    const path = this.shared.path(name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, size]);
    return path;
  }

  /** The Linux test guest with one disk. */
  guest(name: string, disk: string, memoryMiB = 128) {
    const g = testGuest();
    return {
      name, memoryMiB, vcpus: 1, accel: testAccel(), uuid: crypto.randomUUID(),
      kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' },
      disks: [{ path: disk, format: 'raw' as const, target: 'vda' }],
    };
  }

  /** One cached client of `h`'s virqemud (reconnected after a restart). */
  async api(h: DaemonHarness): Promise<TypedClient<VirtqProgram>> {
    const cached = this.apis.get(h);
    if (cached !== undefined) return cached.api;
    const c = await h.client();
    this.apis.set(h, c);
    c.rpc.onClose(() => { if (this.apis.get(h) === c) this.apis.delete(h); });
    return c.api;
  }

  /** A client-library connection (for the console). */
  async connection(uri: string): Promise<Connection> {
    const c = await connect(uri);
    this.conns.push(c);
    return c;
  }

  /**
   * The holder records of the shared lockspace. One listed but removed before it is read (a
   * release between the two calls: the chaos samples while migrations run) is not counted.
   */
  leases(): LeaseRecord[] {
    const records: LeaseRecord[] = [];
    for (const n of readdirSync(this.lockspace).filter((f) => f.endsWith('.holder'))) {
      let text: string;
      try {
        text = readFileSync(join(this.lockspace, n), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      records.push(JSON.parse(text) as LeaseRecord);
    }
    return records;
  }

  /** Every live QEMU of `uuid` on this machine (both hosts are on it). */
  liveQemus(uuid: string): number[] {
    const marker = `\0-uuid\0${uuid}\0`;
    return readdirSync('/proc').map(Number).filter((pid) => Number.isInteger(pid) && isLiveProcess(pid, marker));
  }

  async cleanup(): Promise<void> {
    for (const c of this.conns) c.close();
    await this.src.cleanup();
    await this.dst.cleanup();
    this.shared.remove();
  }
}

/** Collects the lifecycle events pushed on `events`. */
export function collectEvents(events: AsyncIterable<{ body: unknown }>): LifecycleEvent[] {
  const got: LifecycleEvent[] = [];
  void (async () => {
    for await (const e of events) got.push(e.body as LifecycleEvent);
  })();
  return got;
}

/** The chaos suite's bound for the listings to agree with the processes after a fault. */
export const CONVERGE_MS = 10_000;

/** Which host a VM is expected to run on, and whether the check held. */
export async function runsOnlyOn(w: MigrationWorld, name: string, uuid: string, side: 'src' | 'dst'): Promise<string | undefined> {
  const [here, there] = side === 'src' ? [w.src, w.dst] : [w.dst, w.src];
  const hereApi = await w.api(here);
  const thereApi = await w.api(there);
  const row = (await hereApi.listDomains({})).domains.find((d) => d.name === name);
  if (row?.state !== 'running' || row.qemuPid === undefined) return `${side}: ${name} is ${row === undefined ? 'not listed' : `${row.state} (qemu ${row.qemuPid})`}`;
  const qemus = w.liveQemus(uuid);
  if (qemus.length !== 1 || qemus[0] !== row.qemuPid) return `live QEMUs ${JSON.stringify(qemus)}, listed ${row.qemuPid}`;
  const leases = w.leases().filter((l) => l.uuid === uuid);
  if (leases.length !== 1 || leases[0]?.qemuPid !== row.qemuPid) return `leases ${JSON.stringify(leases)}`;
  const other = (await thereApi.listDomains({})).domains.filter((d) => d.name === name || d.uuid === uuid);
  if (other.length > 0) return `the other side lists ${JSON.stringify(other)}`;
  return undefined;
}

/** Waits (within CONVERGE_MS) until the VM runs only on `side`; throws with the last discrepancy. */
export async function expectOnlyOn(w: MigrationWorld, name: string, uuid: string, side: 'src' | 'dst', ms = CONVERGE_MS): Promise<void> {
  const end = Date.now() + ms;
  let why: string | undefined = 'not checked';
  while (Date.now() < end) {
    why = await runsOnlyOn(w, name, uuid, side);
    if (why === undefined) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`VM ${name} does not run only on ${side} within ${ms} ms: ${why}`);
}
