// What virtstoraged knows of the volumes it made, beyond their files (lib/storage/volumes.json,
// written atomically): the format it made each one in — so a raw volume is never re-probed and a
// guest's bytes can never pass for a qcow2 header naming a host file — and which secret holds a
// LUKS volume's passphrase, so a VM, a resize or a clone finds it from the volume alone.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Layout } from '../protocol/index.js';
import { writeFileAtomic } from '../drivers/fs/atomic-file.js';
import type { VolumeFormat } from '../drivers/storage/types.js';

/** One volume's record. */
export interface VolumeRecord {
  format?: VolumeFormat;
  secret?: string;
}

/** The volume records of one virtstoraged, by `pool/volume`. */
export class VolumeRecords {
  private map: Record<string, VolumeRecord> = {};
  private readonly file: string;
  private writes: Promise<void> = Promise.resolve();

  constructor(layout: Layout) {
    this.file = join(layout.state, 'storage', 'volumes.json');
  }

  async load(): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, unknown>;
      this.map = {};
      for (const [key, v] of Object.entries(parsed)) {
        if (typeof v !== 'object' || v === null) continue;
        const r = v as { format?: unknown; secret?: unknown };
        this.map[key] = {
          ...(r.format === 'raw' || r.format === 'qcow2' ? { format: r.format } : {}),
          ...(typeof r.secret === 'string' ? { secret: r.secret } : {}),
        };
      }
    } catch {
      this.map = {};
    }
  }

  /** The record of `pool/volume` (empty when virtstoraged did not make it). */
  get(pool: string, volume: string): VolumeRecord {
    return Object.hasOwn(this.map, `${pool}/${volume}`) ? this.map[`${pool}/${volume}`] as VolumeRecord : {};
  }

  /** Records (or, with undefined, forgets) `pool/volume`; writes the file only when that changes it (each write is two fsyncs). */
  set(pool: string, volume: string, record: VolumeRecord | undefined): Promise<void> {
    const key = `${pool}/${volume}`;
    const before = Object.hasOwn(this.map, key) ? JSON.stringify(this.map[key]) : undefined;
    const after = record === undefined ? undefined : JSON.stringify(record);
    if (before === after) return this.writes;
    if (record === undefined) delete this.map[key];
    else this.map[key] = { ...record };
    const text = `${JSON.stringify(this.map)}\n`;
    this.writes = this.writes.catch(() => undefined).then(async () => {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o755 });
      await writeFileAtomic(this.file, text, 0o600);
    });
    return this.writes;
  }
}
