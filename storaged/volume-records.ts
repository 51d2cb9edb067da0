// What virtstoraged knows of the volumes it made, beyond their files: the format it made each
// one in — so a raw volume is never re-probed and a guest's bytes can never pass for a qcow2
// header naming a host file — and which secret holds a LUKS volume's passphrase, so a VM, a
// resize or a clone finds it from the volume alone.
//
// On disk (lib/storage/): `volumes.json`, a snapshot written atomically, and `volumes.log`, one
// JSON line per change since it. A change is one journal commit, where rewriting the snapshot was
// two (file, then directory). The line is written at once, on the loop's thread (a page-cache
// write of a few dozen bytes), so it is in the file before anything the caller does next — a
// volume's link, say — and survives a kill -9 of the daemon from then on; it is made durable by
// an fdatasync started on the next turn of the loop, shared by every line written meanwhile, and
// so issued alongside the caller's own fsync (a create's directory fsync): both wait on the
// same journal commit instead of two in turn. The log is folded into the snapshot when it grows
// past COMPACT_LINES, and at load (which also drops a line torn by a crash, so nothing is ever
// appended after one).
import { constants, writeSync } from 'node:fs';
import { mkdir, open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VirtqError, type Layout } from '../protocol/index.js';
import { writeFileAtomic } from '../drivers/fs/atomic-file.js';
import type { VolumeFormat } from '../drivers/storage/types.js';

/** One volume's record. */
export interface VolumeRecord {
  format?: VolumeFormat;
  secret?: string;
  /**
   * A change that holds once the file of inode `ino` (decimal) is under the volume's name: written
   * before an upload's bytes replace the volume's, so a kill between the replacement and the
   * record's next line is settled by which file is there (settleReplacements).
   */
  replacedBy?: { ino: string; format: VolumeFormat };
}

/** Changes kept in the log before it is folded into the snapshot. */
export const COMPACT_LINES = 512;

/** A record as read from disk: only the fields and values this daemon writes. */
function parseRecord(v: unknown): VolumeRecord | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as { format?: unknown; secret?: unknown; replacedBy?: { ino?: unknown; format?: unknown } | null };
  const by = r.replacedBy;
  return {
    ...(isFormat(r.format) ? { format: r.format } : {}),
    ...(typeof r.secret === 'string' ? { secret: r.secret } : {}),
    ...(typeof by === 'object' && by !== null && typeof by.ino === 'string' && isFormat(by.format) ? { replacedBy: { ino: by.ino, format: by.format } } : {}),
  };
}

const isFormat = (f: unknown): f is VolumeFormat => f === 'raw' || f === 'qcow2';

/** The volume records of one virtstoraged, by `pool/volume`. */
export class VolumeRecords {
  private map: Record<string, VolumeRecord> = {};
  private readonly file: string;
  private readonly logFile: string;
  private log: FileHandle | undefined;
  private logLines = 0;
  private writes: Promise<void> = Promise.resolve();
  /** Appends queued behind a fold or an open (written in order, after it). */
  private queued = 0;
  /** The fdatasync that will cover every line written so far, while it has not started. */
  private flushing: Promise<void> | undefined;
  /** Changes whose line is written but not yet synced, by key (settled()). */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(layout: Layout) {
    this.file = join(layout.state, 'storage', 'volumes.json');
    this.logFile = join(layout.state, 'storage', 'volumes.log');
  }

  /** Reads the snapshot and the changes logged after it; folds them together when there were any. */
  async load(): Promise<void> {
    this.map = {};
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, unknown>;
      for (const [key, v] of Object.entries(parsed)) {
        const r = parseRecord(v);
        if (r !== undefined) this.map[key] = r;
      }
    } catch {
      this.map = {};
    }
    let logged = '';
    try {
      logged = await readFile(this.logFile, 'utf8');
    } catch {
      logged = '';
    }
    // Replayed in order up to the first line that does not parse (a crash mid-append).
    for (const line of logged.split('\n')) {
      if (line === '') continue;
      let entry: { k?: unknown; r?: unknown };
      try {
        entry = JSON.parse(line) as { k?: unknown; r?: unknown };
      } catch {
        break;
      }
      if (typeof entry.k !== 'string') break;
      const r = entry.r === null ? undefined : parseRecord(entry.r);
      if (r === undefined) delete this.map[entry.k];
      else this.map[entry.k] = r;
    }
    if (logged === '') {
      // Opened now, so the first change is written at once (a failure here is met again, and
      // reported, by the first change).
      await this.openLog().catch(() => undefined);
      return;
    }
    try {
      await this.compact();
    } catch {
      // A full disk (say) must not keep the daemon from starting: the map holds every change, and
      // the next change folds first — failing as NO_SPACE while the disk stays full — so nothing is
      // ever appended after a line a crash tore (chaos seed 6: a kill -9 on a full disk).
      this.logLines = COMPACT_LINES;
    }
  }

  /** The record of `pool/volume` (empty when virtstoraged did not make it). */
  get(pool: string, volume: string): VolumeRecord {
    return Object.hasOwn(this.map, `${pool}/${volume}`) ? this.map[`${pool}/${volume}`] as VolumeRecord : {};
  }

  /**
   * Records (or, with undefined, forgets) `pool/volume`; writes only when that changes it (one
   * appended line). Resolves once the line is durable. The line is in the file when set()
   * returns, unless a fold or the log's first open is under way (then it follows those, in order).
   * `syncAfter`: the line's fdatasync starts once that resolves (a caller's own fsync under way:
   * two flushes issued together are flushed one after the other, see setWritten).
   */
  set(pool: string, volume: string, record: VolumeRecord | undefined, syncAfter?: Promise<void>): Promise<void> {
    return this.change(pool, volume, record, syncAfter).durable;
  }

  /**
   * set(), answering in two steps: resolves once the line is in the log's file (at once, unless
   * a fold or the log's first open is under way), with `durable`, which resolves once the line is
   * on the disk. A kill -9 of the daemon after the first step keeps the record; a power loss
   * before the second may lose it. settled() waits for the second. `syncAfter`: the sync starts
   * once it resolves (not alongside it: on a disk without a journal every fsync is its own cache
   * flush, and two issued together are flushed one after the other, so the caller's waited for both).
   */
  async setWritten(pool: string, volume: string, record: VolumeRecord | undefined, syncAfter?: Promise<void>): Promise<{ durable: Promise<void> }> {
    const c = this.change(pool, volume, record, syncAfter);
    await c.written;
    return { durable: c.durable };
  }

  /**
   * Settles what a kill left between the two lines of a replacement (VolumeRecord.replacedBy):
   * the change holds when the file under the volume's name (`pathOf`, following a symlink as the
   * upload did) is the replacement's inode, and is dropped otherwise. Run at start, before any
   * pool serves. A line that cannot be written (a full disk) leaves the settled map to the next
   * change's fold, as any failed line does.
   */
  async settleReplacements(pathOf: (pool: string, volume: string) => string | undefined): Promise<void> {
    for (const key of Object.keys(this.map)) {
      const cut = key.indexOf('/');
      const pool = key.slice(0, cut);
      const volume = key.slice(cut + 1);
      await this.settleReplacement(pool, volume, pathOf(pool, volume)).catch(() => undefined);
    }
  }

  /** Settles `pool/volume`'s replacement, if it has one, by the inode of `path` (see settleReplacements); resolves once the line is durable. */
  async settleReplacement(pool: string, volume: string, path: string | undefined): Promise<void> {
    const { replacedBy, ...kept } = this.get(pool, volume);
    if (replacedBy === undefined) return;
    const ino = path === undefined ? undefined : await stat(path, { bigint: true }).then((st) => String(st.ino), () => undefined);
    await this.set(pool, volume, ino === replacedBy.ino ? { ...kept, format: replacedBy.format } : kept);
  }

  /** Resolves once the last change of `pool/volume` is on the disk (or failed to get there: then logged, and folded by the next change). */
  settled(pool: string, volume: string): Promise<void> {
    return this.pending.get(`${pool}/${volume}`) ?? Promise.resolve();
  }

  private change(pool: string, volume: string, record: VolumeRecord | undefined, syncAfter?: Promise<void>): { written: Promise<void>; durable: Promise<void> } {
    const key = `${pool}/${volume}`;
    const before = Object.hasOwn(this.map, key) ? JSON.stringify(this.map[key]) : undefined;
    const after = record === undefined ? undefined : JSON.stringify(record);
    if (before === after) return { written: this.writes, durable: this.writes };
    if (record === undefined) delete this.map[key];
    else this.map[key] = { ...record };
    const line = `${JSON.stringify({ k: key, r: record === undefined ? null : record })}\n`;
    const log = this.log;
    if (log !== undefined && this.queued === 0 && this.logLines < COMPACT_LINES) {
      try {
        this.writeLine(log, line);
      } catch (err) {
        this.writes = Promise.reject(this.failed(err));
        this.writes.catch(() => undefined);
        return { written: this.writes, durable: this.writes };
      }
      this.writes = this.flushSoon(log, syncAfter);
      return { written: Promise.resolve(), durable: this.track(key, this.writes) };
    }
    this.queued += 1;
    this.writes = this.writes.catch(() => undefined).then(() => this.append(line)).finally(() => { this.queued -= 1; });
    // A queued line is written and synced in one step (append).
    return { written: this.writes, durable: this.track(key, this.writes) };
  }

  /** Remembers `durable` as the pending sync of `key` until it settles (for settled()). */
  private track(key: string, durable: Promise<void>): Promise<void> {
    const settled: Promise<void> = durable.catch(() => undefined).finally(() => {
      if (this.pending.get(key) === settled) this.pending.delete(key);
    });
    this.pending.set(key, settled);
    return durable;
  }

  /** Appends `line` now; a short or failed write makes the next change fold first. */
  private writeLine(log: FileHandle, line: string): void {
    const bytes = Buffer.from(line);
    const n = writeSync(log.fd, bytes);
    if (n !== bytes.length) throw new Error(`short write: ${n} of ${bytes.length} bytes`);
    this.logLines += 1;
  }

  /**
   * The fdatasync covering every line written before it starts: on the next turn of the loop,
   * after whatever the caller went on to start in this one (its own fsync), so on a journaled
   * filesystem both wait on one commit; or, given `after`, once that resolves (see setWritten).
   */
  private flushSoon(log: FileHandle, after?: Promise<void>): Promise<void> {
    this.flushing ??= new Promise<void>((resolve, reject) => {
      const start = (): void => {
        this.flushing = undefined;
        log.datasync().then(resolve, (err: unknown) => reject(this.failed(err)));
      };
      if (after === undefined) setImmediate(start);
      else void after.catch(() => undefined).then(() => setImmediate(start));
    });
    return this.flushing;
  }

  /** A failed append, typed; the next change folds everything into the snapshot (the map has it) and starts an empty log. */
  private failed(err: unknown): VirtqError {
    // Part of the line may be in the file: the fold drops it.
    this.logLines = COMPACT_LINES;
    if (err instanceof VirtqError) return err;
    // Typed as writeFileAtomic types the snapshot's errors (a full disk is NO_SPACE).
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return new VirtqError('NO_SPACE', `cannot write ${this.logFile}: no space left on device; free space on its filesystem and retry`, { cause: err });
    return new VirtqError('OPERATION_FAILED', `cannot write ${this.logFile}: ${(err as Error).message}`, { cause: err });
  }

  /** Closes the log (a later set() opens it again). */
  async close(): Promise<void> {
    await this.writes.catch(() => undefined);
    await this.flushing?.catch(() => undefined);
    await this.log?.close().catch(() => undefined);
    this.log = undefined;
  }

  /** An append queued behind a fold or the log's open: folds first when due, then writes and syncs. */
  private async append(line: string): Promise<void> {
    try {
      // A line written at once (set()) may be waiting for its fdatasync: the fold's truncate
      // comes after it, and the snapshot holds the line's change anyway (the map has it).
      await this.flushing?.catch(() => undefined);
      if (this.logLines >= COMPACT_LINES) await this.compact();
      const log = this.log ?? (await this.openLog());
      this.writeLine(log, line);
      await log.datasync();
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** Opens (creating) the log for appending; a log just created has its directory entry fsynced. */
  private async openLog(): Promise<FileHandle> {
    const dir = dirname(this.logFile);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const fh = await open(this.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    try {
      if ((await fh.stat()).size === 0) {
        const dh = await open(dir, 'r');
        try { await dh.sync(); } finally { await dh.close(); }
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    this.log = fh;
    return fh;
  }

  /** Writes the whole map as the snapshot (atomic, durable), then empties the log. */
  private async compact(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o755 });
    await writeFileAtomic(this.file, `${JSON.stringify(this.map)}\n`, 0o600);
    const log = this.log ?? (await this.openLog());
    await log.truncate(0);
    await log.datasync();
    this.logLines = 0;
  }
}
