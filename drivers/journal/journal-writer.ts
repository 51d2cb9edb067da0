// Appends records to one VM's journal. Durability policy (docs/decisions/0019): every append is
// one write(2) made before the caller pushes the event to anyone, so a process killed with -9 at
// any point has lost nothing it told; fsync follows in batches (at most `syncDelayMs` after the
// first unsynced append), so a host crash loses at most that window, and callers that must not
// (a reply saying a VM stopped) wait for `flushed()`. Size is bounded by rotating segments.
import { closeSync, fsync, ftruncateSync, fstatSync, mkdirSync, openSync, unlinkSync, fsyncSync } from 'node:fs';
import { writeAllSync } from '../fs/write-all.js';
import { join } from 'node:path';
import type { Clock, Disposable } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import { encodeRecord, parseSegment, type JournalRecord } from './record-format.js';
import { listSegments, readSegment, segmentName } from './segments.js';

/** How a journal is placed and bounded. */
export interface JournalWriterOptions {
  dir: string;
  clock: Clock;
  /** A segment is closed once it holds this many bytes (default 256 KiB). */
  segmentBytes?: number;
  /** Segments kept, the one being written included (default 4): the journal holds at most about segmentBytes × maxSegments. */
  maxSegments?: number;
  /** The longest an append waits for its fsync (default 100 ms). */
  syncDelayMs?: number;
  /** Largest record; a bigger body is replaced by a note saying so (default 16 KiB). */
  maxRecordBytes?: number;
}

/** What opening a journal found. */
export interface JournalOpenReport {
  lastSeq: number;
  /** Bytes cut from the end of the last segment: a record torn by a crash, or garbage. */
  truncatedBytes: number;
}

/** The one writer of a VM's journal. */
export class JournalWriter {
  private fd: number;
  private size: number;
  private seq: number;
  private syncTimer: Disposable | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private appended = 0;
  private synced = 0;
  private waiters: Array<{ upto: number; resolve: () => void }> = [];
  private closed = false;
  readonly report: JournalOpenReport;

  private constructor(private readonly opts: Required<JournalWriterOptions>) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const segs = listSegments(opts.dir);
    const tail = segs.at(-1);
    let lastSeq = 0;
    let truncatedBytes = 0;
    // Earlier segments end where the next begins; only the last one may hold a torn write.
    for (let i = segs.length - 1; i >= 0 && lastSeq === 0; i--) {
      const seg = segs[i];
      if (seg === undefined) continue;
      const data = readSegment(seg.path);
      const parsed = parseSegment(data);
      lastSeq = parsed.records.at(-1)?.seq ?? 0;
      if (seg === tail) truncatedBytes = data.length - parsed.validBytes;
    }
    this.seq = lastSeq;
    this.report = { lastSeq, truncatedBytes };
    const path = tail?.path ?? join(opts.dir, segmentName(lastSeq + 1));
    this.fd = openSync(path, 'a+', 0o600);
    if (truncatedBytes > 0) {
      const keep = fstatSync(this.fd).size - truncatedBytes;
      ftruncateSync(this.fd, keep);
      fsyncSync(this.fd);
    }
    this.size = fstatSync(this.fd).size;
  }

  /** Opens (creating) the journal in `opts.dir`, cutting a torn last record. Throws OPERATION_FAILED naming the directory. */
  static open(opts: JournalWriterOptions): JournalWriter {
    try {
      return new JournalWriter({ segmentBytes: 256 * 1024, maxSegments: 4, syncDelayMs: 100, maxRecordBytes: 16 * 1024, ...opts });
    } catch (err) {
      throw new VirtqError('OPERATION_FAILED', `cannot open the event journal in ${opts.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The sequence number of the last record written (0 for an empty journal). */
  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Writes one record (write(2), not yet fsync'd) and returns it with its sequence number.
   * Throws NO_SPACE or OPERATION_FAILED; the sequence number is then not used.
   */
  append(body: Record<string, unknown>, ts = this.opts.clock.now()): JournalRecord {
    if (this.closed) throw new VirtqError('OPERATION_INVALID', `the event journal in ${this.opts.dir} is closed`);
    let rec: JournalRecord = { seq: this.seq + 1, ts, body };
    let bytes = encodeRecord(rec);
    if (bytes.length > this.opts.maxRecordBytes) {
      rec = { ...rec, body: { ...pick(body, ['name', 'uuid', 'event', 'state', 'reason', 'timestamp']), details: { truncated: true, bytes: bytes.length } } };
      bytes = encodeRecord(rec);
    }
    if (this.size > 0 && this.size + bytes.length > this.opts.segmentBytes) this.rotate(rec.seq);
    try {
      // Not writeSync alone: a record torn by a short write was counted as written, and its event
      // told with a sequence number the journal did not hold (chaos seed 28218).
      writeAllSync(this.fd, bytes);
    } catch (err) {
      // A short write leaves a torn record: cut it, so the next append starts on a line of its own.
      try { ftruncateSync(this.fd, this.size); } catch { /* the next open cuts it */ }
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC') throw new VirtqError('NO_SPACE', `cannot append to the event journal in ${this.opts.dir}: no space left on device`, { cause: err });
      throw new VirtqError('OPERATION_FAILED', `cannot append to the event journal in ${this.opts.dir}: ${(err as Error).message}`, { cause: err });
    }
    this.size += bytes.length;
    this.seq = rec.seq;
    this.appended++;
    this.scheduleSync();
    return rec;
  }

  /** Settles once every record appended so far is fsync'd (at once when all are). */
  flushed(): Promise<void> {
    if (this.synced >= this.appended) return Promise.resolve();
    const upto = this.appended;
    return new Promise((resolve) => this.waiters.push({ upto, resolve }));
  }

  /** fsyncs now what is not yet synced, and settles when that is done. */
  sync(): Promise<void> {
    this.syncTimer?.dispose();
    this.syncTimer = undefined;
    const upto = this.appended;
    const fd = this.fd;
    this.syncing = this.syncing.then(() => new Promise<void>((resolve) => {
      if (this.closed || this.synced >= upto) { resolve(); return; }
      fsync(fd, () => resolve()); // an fsync error is not the caller's to handle: the record is written
    })).then(() => {
      this.synced = Math.max(this.synced, upto);
      const ready = this.waiters.filter((w) => w.upto <= this.synced);
      this.waiters = this.waiters.filter((w) => w.upto > this.synced);
      for (const w of ready) w.resolve();
    });
    return this.syncing;
  }

  /** fsyncs what remains and closes the file. */
  close(): void {
    if (this.closed) return;
    this.syncTimer?.dispose();
    try { fsyncSync(this.fd); } catch { /* closing anyway */ }
    this.synced = this.appended;
    for (const w of this.waiters.splice(0)) w.resolve();
    this.closed = true;
    closeSync(this.fd);
  }

  private scheduleSync(): void {
    if (this.syncTimer !== undefined) return;
    this.syncTimer = this.opts.clock.setTimeout(() => { this.syncTimer = undefined; void this.sync(); }, this.opts.syncDelayMs);
  }

  // Closes the full segment (synced, so no record lives only in a file about to be deleted)
  // and starts the next one at `first`; the oldest segments beyond the bound go.
  private rotate(first: number): void {
    // The next segment is opened first: when that fails (a full disk) this one stays the writer's.
    const next = openSync(join(this.opts.dir, segmentName(first)), 'a+', 0o600);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = next;
    this.size = 0;
    const segs = listSegments(this.opts.dir);
    for (let i = 0; i < segs.length - this.opts.maxSegments; i++) {
      const seg = segs[i];
      if (seg !== undefined) {
        try { unlinkSync(seg.path); } catch { /* already gone */ }
      }
    }
  }
}

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
