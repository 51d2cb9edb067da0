// Which secret holds each encrypted volume's passphrase (lib/storage/volume-secrets.json, written
// atomically): recorded when virtstoraged creates a LUKS volume, so that a VM, a resize or a
// clone can find the passphrase from the volume alone.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Layout } from '../protocol/index.js';
import { writeFileAtomic } from '../drivers/fs/atomic-file.js';

/** The volume → secret map of one virtstoraged. */
export class VolumeSecrets {
  private map: Record<string, string> = {};
  private readonly file: string;
  private writes: Promise<void> = Promise.resolve();

  constructor(layout: Layout) {
    this.file = join(layout.state, 'storage', 'volume-secrets.json');
  }

  async load(): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as unknown;
      if (typeof parsed === 'object' && parsed !== null) this.map = Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
    } catch {
      this.map = {};
    }
  }

  /** The secret of `pool/volume`, if one was recorded. */
  get(pool: string, volume: string): string | undefined {
    return Object.hasOwn(this.map, `${pool}/${volume}`) ? this.map[`${pool}/${volume}`] : undefined;
  }

  /**
   * Records (or, with undefined, forgets) the secret of `pool/volume`. Writes the file only when
   * that changes the map: every deleted volume is forgotten, and almost none had a secret (the
   * atomic write is two fsyncs). The returned promise still waits for a write under way.
   */
  set(pool: string, volume: string, secret: string | undefined): Promise<void> {
    const key = `${pool}/${volume}`;
    if (secret === this.get(pool, volume)) return this.writes.catch(() => undefined);
    if (secret === undefined) delete this.map[key];
    else this.map[key] = secret;
    const text = `${JSON.stringify(this.map)}\n`;
    this.writes = this.writes.catch(() => undefined).then(async () => {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o755 });
      await writeFileAtomic(this.file, text, 0o600);
    });
    return this.writes;
  }
}
