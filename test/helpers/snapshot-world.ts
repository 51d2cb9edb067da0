// What the snapshot integration tests share: one temporary root with virtqemud (and, for volume
// disks, virtstoraged and virtsecretd), the test guest booted to its ready line with its console
// kept for the test, and the probes that read a disk both from inside the guest and from outside.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, connectStorage, type Connection, type StorageClient } from '../../client/index.js';
import type { Definition, DiskSpec } from '../../protocol/index.js';
import { ServiceHarness } from './service-harness.js';
import { guestConsole, type GuestConsole } from './guest-console.js';
import { testAccel, testGuest } from './test-guest.js';
import { tmpRoot } from './tmp-root.js';

export const MiB = 1024 * 1024;

/** The test guest with `disks` (the first one is the guest's /dev/vda). */
export function guestDef(name: string, disks: DiskSpec[]): Definition {
  const g = testGuest();
  return { name, memoryMiB: 128, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' }, disks };
}

/** The first four bytes of /dev/vda as the guest reads them (`?` when unreadable). */
export async function diskHead(con: GuestConsole): Promise<string> {
  const from = con.serial.mark();
  await con.run('echo HEAD=$(head -c 4 /dev/vda)=E\'\'ND', '=END');
  return /HEAD=([A-Z]*)=END/.exec(con.serial.output.slice(from))?.[1] ?? '?';
}

/** The guest writes `text` at the start of /dev/vda and syncs. */
export const writeHead = (con: GuestConsole, text: string): Promise<void> => con.run(`printf ${text} > /dev/vda; sync; echo W-O''K`, 'W-OK');

/** qemu-img's view of an image QEMU may hold open (-U: no lock taken). */
export const imageInfo = (file: string): { format: string; 'backing-filename'?: string; 'backing-filename-format'?: string } =>
  JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file]).toString()) as never;

/** One test's daemons, connection and guest consoles, all closed by `close()`. */
export class SnapshotWorld {
  readonly h = new ServiceHarness(tmpRoot());
  private conn: Connection | undefined;
  private readonly consoles: GuestConsole[] = [];

  /** virtqemud, with virtstoraged and virtsecretd first when the VMs' disks are volumes. */
  async up(opts: { storage?: boolean } = {}): Promise<Connection> {
    if (opts.storage === true) {
      await this.h.start('virtstoraged');
      await this.h.start('virtsecretd');
    }
    await this.h.start('virtqemud');
    this.conn = await connect(this.h.uri('qemu'));
    return this.conn;
  }

  storage(): Promise<StorageClient> {
    return connectStorage(this.h.uri('qemu'));
  }

  /** Starts `name` and waits for the guest's ready line on its console. */
  async boot(name: string): Promise<GuestConsole> {
    if (this.conn === undefined) throw new Error('SnapshotWorld.boot before up()');
    await this.conn.virtq.start({ name });
    const con = await guestConsole(this.conn, name);
    this.consoles.push(con);
    await con.serial.waitFor('GUEST-READY', 60_000);
    return con;
  }

  /** The guest-visible first bytes of an image (a qcow2 chain read through; -U: QEMU may hold it). */
  headOf(file: string): string {
    const out = this.h.root.path(`head-${Date.now()}.raw`);
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', file, out]);
    return readFileSync(out).subarray(0, 4).toString('latin1');
  }

  async close(): Promise<void> {
    for (const c of this.consoles) c.close();
    this.conn?.close();
    await this.h.cleanup();
  }
}
