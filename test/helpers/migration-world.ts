// Two virtq hosts on one machine for migration tests: two temporary roots, each with its own
// virtqemud, sharing one lockspace (as two hosts share one on NFS), and a disk image in a
// directory of its own. Also what the fault tests check on both sides afterwards.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LifecycleEvent } from '../../protocol/index.js';
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

  /** A client-library connection (for the console). */
  async connection(uri: string): Promise<Connection> {
    const c = await connect(uri);
    this.conns.push(c);
    return c;
  }

  /** The holder records of the shared lockspace. */
  leases(): LeaseRecord[] {
    return readdirSync(this.lockspace).filter((n) => n.endsWith('.holder')).map((n) => JSON.parse(readFileSync(join(this.lockspace, n), 'utf8')) as LeaseRecord);
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
