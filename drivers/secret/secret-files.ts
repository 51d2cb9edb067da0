// The secrets directory (0700): `<uuid>.json` holds a persistent secret's metadata and
// `<uuid>.value` its sealed value, each replaced atomically. Ephemeral secrets never get a file.
// Leftover temp files of interrupted writes are removed on scan; other names are left alone.
import { chmod, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { isTempName, writeFileAtomic } from '../fs/atomic-file.js';
import { MAX_SECRET_VALUE_BYTES, type SecretUsage } from './types.js';
import { checkDescription, checkUsage, parseUuid } from './validate.js';
import { SEALED_OVERHEAD } from './value-cipher.js';

const NAME_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(json|value)$/;
const MAX_META_BYTES = 64 * 1024;
const META_FORMAT = 1;

/** What a metadata file holds (a persistent secret: `ephemeral` is implied false). */
export interface StoredMeta {
  uuid: string;
  usage: SecretUsage | undefined;
  description: string | undefined;
  private: boolean;
}

/** The directory's secrets, by file kind. */
export interface DirScan {
  metaUuids: string[];
  valueUuids: string[];
  tempFilesRemoved: number;
}

/** Turns a failed write into NO_SPACE when the disk is full; otherwise keeps the error. */
function mapWriteError(err: unknown): VirtqError {
  const e = VirtqError.from(err);
  const errno = (e.cause as NodeJS.ErrnoException | undefined)?.code;
  return errno === 'ENOSPC' ? new VirtqError('NO_SPACE', e.message, { cause: err }) : e;
}

/** One secrets directory. */
export class SecretFiles {
  constructor(readonly dir: string) {}

  metaFile(uuid: string): string {
    return join(this.dir, `${uuid}.json`);
  }

  valueFile(uuid: string): string {
    return join(this.dir, `${uuid}.value`);
  }

  /** Creates the directory (0700) or tightens an existing one to 0700. */
  async prepare(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700);
    } catch (err) {
      throw new VirtqError('OPERATION_FAILED', `cannot prepare secrets directory ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Lists the secrets' files and removes temp files left by a crash between write and rename. */
  async scan(): Promise<DirScan> {
    const out: DirScan = { metaUuids: [], valueUuids: [], tempFilesRemoved: 0 };
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      if (isTempName(entry.name)) {
        // A temp file never holds the current state (rename had not happened), so it is dropped.
        const removed = await unlink(join(this.dir, entry.name)).then(() => true, () => false);
        if (removed) out.tempFilesRemoved++;
        continue;
      }
      const m = NAME_RE.exec(entry.name);
      if (m?.[1] === undefined) continue;
      (m[2] === 'json' ? out.metaUuids : out.valueUuids).push(m[1]);
    }
    out.metaUuids.sort();
    out.valueUuids.sort();
    return out;
  }

  /** Reads and checks one metadata file; throws a plain Error saying what is wrong. */
  async readMeta(uuid: string): Promise<StoredMeta> {
    const file = this.metaFile(uuid);
    if ((await stat(file)).size > MAX_META_BYTES) throw new Error(`larger than ${MAX_META_BYTES} bytes`);
    const doc: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not a JSON object');
    const d = doc as Record<string, unknown>;
    if (d['format'] !== META_FORMAT) throw new Error(`unknown format ${JSON.stringify(d['format'])} (this virtq reads format ${META_FORMAT})`);
    if (parseUuid(d['uuid']) !== uuid) throw new Error(`names UUID ${String(d['uuid'])}, not the one in its file name`);
    if (typeof d['private'] !== 'boolean') throw new Error('"private" is not true or false');
    return { uuid, usage: checkUsage(d['usage']), description: checkDescription(d['description']), private: d['private'] };
  }

  /** Reads one sealed value, refusing a file larger than any sealed value can be. */
  async readValue(uuid: string): Promise<Buffer> {
    const file = this.valueFile(uuid);
    const limit = MAX_SECRET_VALUE_BYTES + SEALED_OVERHEAD;
    const size = (await stat(file)).size;
    if (size > limit) throw new Error(`is ${size} bytes, larger than any sealed value (${limit})`);
    return readFile(file);
  }

  /** Writes a metadata file atomically. */
  async writeMeta(meta: StoredMeta): Promise<void> {
    const doc = { format: META_FORMAT, uuid: meta.uuid, usage: meta.usage, description: meta.description, private: meta.private };
    await writeFileAtomic(this.metaFile(meta.uuid), `${JSON.stringify(doc, null, 2)}\n`, 0o600).catch((err: unknown) => {
      throw mapWriteError(err);
    });
  }

  /** Writes a sealed value atomically. */
  async writeValue(uuid: string, sealed: Uint8Array): Promise<void> {
    await writeFileAtomic(this.valueFile(uuid), sealed, 0o600).catch((err: unknown) => {
      throw mapWriteError(err);
    });
  }

  /**
   * Removes a secret's files, value first: a crash in between leaves a secret without a value,
   * never a value file without its metadata.
   */
  async remove(uuid: string): Promise<void> {
    await this.unlinkIfPresent(this.valueFile(uuid));
    await this.unlinkIfPresent(this.metaFile(uuid));
    await this.syncDir();
  }

  /** Removes a value file if there is one (a leftover no metadata claims). */
  async removeValue(uuid: string): Promise<void> {
    if (await this.unlinkIfPresent(this.valueFile(uuid))) await this.syncDir();
  }

  /** Unlinks `file`; false when there was none. */
  private async unlinkIfPresent(file: string): Promise<boolean> {
    try {
      await unlink(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new VirtqError('OPERATION_FAILED', `cannot remove ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async syncDir(): Promise<void> {
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
