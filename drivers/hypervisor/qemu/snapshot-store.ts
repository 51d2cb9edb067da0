// Snapshot metadata per VM under a daemon's state dir: one JSON file per snapshot
// (`lib/snapshots/VM/snap-NAME.json`) and a pointer to the current one (`current.json`), each
// written atomically. The shim writes it as it takes, reverts and deletes snapshots; virtqemud
// reads it to list them whether the VM runs or not.
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../fs/atomic-file.js';
import { VirtqError } from '../../../protocol/errors.js';

/** One disk of a snapshot (see SnapshotMeta.disks). */
export interface SnapshotDisk {
  target: string;
  path: string;
  overlay?: string;
  overlaySource?: VolumeRef;
  format?: string;
  source?: VolumeRef;
}

/** A volume of virtstoraged. */
export interface VolumeRef { pool: string; volume: string }

/** What is stored per snapshot (protocol/save-program.ts's SnapshotInfo without `current`, which is derived). */
export interface SnapshotMeta {
  name: string;
  vm: string;
  parent?: string;
  createdAt: number;
  state: string;
  memory: boolean;
  kind: 'internal' | 'external';
  /**
   * `overlay`/`overlaySource`: an external snapshot's new top image per disk; `format`/`source`:
   * the format and volume of the image under it (`path`), which a delete moves the disk back onto.
   */
  disks: SnapshotDisk[];
}

/** A snapshot as listed. */
export type SnapshotInfo = SnapshotMeta & { current: boolean };

/** The snapshots of one VM. */
export class SnapshotStore {
  private readonly dir: string;

  constructor(stateDir: string, private readonly vm: string) {
    this.dir = join(stateDir, 'snapshots', vm);
  }

  /** Every snapshot, oldest first. */
  async list(): Promise<SnapshotInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const current = await this.current();
    const metas = await Promise.all(names.filter((n) => n.startsWith('snap-') && n.endsWith('.json'))
      .map(async (n) => JSON.parse(await readFile(join(this.dir, n), 'utf8')) as SnapshotMeta));
    return metas.sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name)).map((m) => ({ ...m, current: m.name === current }));
  }

  /** One snapshot; NO_DOMAIN_SNAPSHOT when there is none of that name. */
  async get(name: string): Promise<SnapshotInfo> {
    const found = (await this.list()).find((s) => s.name === name);
    if (found === undefined) throw new VirtqError('NO_DOMAIN_SNAPSHOT', `VM "${this.vm}" has no snapshot "${name}"`, { details: { vm: this.vm, snapshot: name } });
    return found;
  }

  /** The current snapshot's name, if any. */
  async current(): Promise<string | undefined> {
    try {
      return (JSON.parse(await readFile(join(this.dir, 'current.json'), 'utf8')) as { current?: string }).current;
    } catch {
      return undefined;
    }
  }

  async put(meta: SnapshotMeta): Promise<void> {
    await writeFileAtomic(join(this.dir, `snap-${meta.name}.json`), `${JSON.stringify(meta, null, 2)}\n`, 0o600, { durable: true });
  }

  async setCurrent(name: string | undefined): Promise<void> {
    await writeFileAtomic(join(this.dir, 'current.json'), `${JSON.stringify(name === undefined ? {} : { current: name })}\n`, 0o600, { durable: true });
  }

  /** Removes one snapshot's metadata: its children take its parent, and it stops being current. */
  async remove(name: string): Promise<void> {
    const all = await this.list();
    const gone = all.find((s) => s.name === name);
    if (gone === undefined) return;
    for (const child of all.filter((s) => s.parent === name)) {
      const { current: _c, parent: _p, ...rest } = child;
      await this.put({ ...rest, ...(gone.parent === undefined ? {} : { parent: gone.parent }) });
    }
    if (gone.current) await this.setCurrent(gone.parent);
    await rm(join(this.dir, `snap-${name}.json`), { force: true });
  }

  /** Removes every snapshot's metadata (undefine --snapshots-metadata). */
  async removeAll(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Reverting to an external snapshot is refused (as libvirt does for a running VM); the message says how to go back by hand. */
export function externalRevertRefused(vm: string, snap: Pick<SnapshotMeta, 'name' | 'disks'>, state: string): VirtqError {
  const images = snap.disks.map((d) => `${d.target} on ${d.path}`).join(', ');
  return new VirtqError('OPERATION_INVALID', `cannot revert ${state} VM "${vm}" to disk-only snapshot "${snap.name}": reverting an external snapshot is not supported; to go back to it, shut the VM off and define it with its disks on the snapshot's images (${images}), then delete the snapshot with --metadata (the overlays keep what was written since)`, { details: { state, snapshot: snap.name } });
}
