// A full clone's byte-for-byte copy, made in the kernel: GNU cp (≥ 9.0 copies with
// copy_file_range and keeps the source's holes by SEEK_DATA/SEEK_HOLE) into the clone's temp
// file, as a child killed when the operation is aborted; its progress is the temp file's size,
// polled. Against `qemu-img convert -t none -W -m 16` (today's path until session 11): 1 GiB in
// ~0.3 s to the page cache plus ~0.6 s of fsync, 9 extents instead of ~95, a third of the CPU;
// a Node read/write loop in the thread pool took 3× cp's time to the cache and ~9× its CPU
// (bench/RESULTS.md, session 11, f-vol-copy).
//
// cp takes none of QEMU's image locks, where convert refused (IN_USE) a source a running VM
// writes. So the copy runs only while the kernel's lock table shows no lock on the source's
// inode over the bytes QEMU marks a writer with — checked before, on every poll and once more
// after the copy — and reports `locked` otherwise: the caller then copies through qemu-img
// convert, which decides as before. VMs reading the source as a backing image lock other bytes
// and forbid writers meanwhile (QEMU's byte 201), so a golden image keeps the fast path.
import { readFile, stat } from 'node:fs/promises';
import { VirtqError } from '../../protocol/errors.js';
import { abortedError, spawnQemuImg, type QemuImgSpawn } from './qemu-img.js';

/** Starts `binary` with `args` (stdin closed, stdout and stderr piped, LC_ALL=C): qemu-img's spawn serves cp too. */
export type CopySpawn = QemuImgSpawn;

/** Reads the kernel's lock table (the text of /proc/locks). */
export type LockTable = () => Promise<string>;

/** One copy. */
export interface CopyCall {
  /** What the copy is for, for messages: `cloning volume "a" to "b" in pool "p"`. */
  what: string;
  signal?: AbortSignal;
  /** The bytes the copy will have made (the source's size): the progress total. */
  totalBytes: number;
  onProgress?(doneBytes: number, totalBytes: number): void;
}

/** How a copy ended: `copied`, or `locked` (someone locks the source: nothing left behind, copy it otherwise). */
export type CopyOutcome = 'copied' | 'locked';

/**
 * How often the temp file's size and the lock table are read while cp runs: often enough for a
 * progress bar, rarely enough to cost little (each poll is a few thread-pool calls).
 */
const POLL_MS = 250;
const STDERR_KEEP = 4000;

/**
 * QEMU's image locks (block/file-posix.c): byte 100 + n held means "I use permission n", byte
 * 200 + n held "nobody else may". qemu-img convert reads with CONSISTENT_READ (0) and lets
 * nobody WRITE (1) or RESIZE (3) meanwhile, so it fails on bytes 101, 103 and 200.
 */
const CONVERT_CONFLICTS = [101, 103, 200];
const LOCK_LINE = /\s[0-9a-f]+:[0-9a-f]+:(\d+)\s+(\d+)\s+(\d+|EOF)\s*$/;

/**
 * True when `table` (/proc/locks) has a lock, or a waiter, on inode `ino` over a byte qemu-img
 * convert would fail on. Matched on the inode alone (any device) and any lock type: it can only
 * over-report, which costs the slow path, never a copy of an image being written.
 */
export function writerLocked(table: string, ino: bigint): boolean {
  const id = ino.toString();
  for (const line of table.split('\n')) {
    const m = LOCK_LINE.exec(line);
    if (m === null || m[1] !== id) continue;
    const start = Number(m[2]);
    const end = m[3] === 'EOF' ? Infinity : Number(m[3]);
    if (CONVERT_CONFLICTS.some((b) => b >= start && b <= end)) return true;
  }
  return false;
}

/** Maps a failed cp's stderr to a typed error. */
export function copyError(what: string, exit: { code: number | null; signal: string | null }, stderr: string): VirtqError {
  const text = stderr.trim().replace(/^cp: /gm, '');
  const details = { exitCode: exit.code, signal: exit.signal, stderr: text };
  if (/No space left on device|Disk quota exceeded/i.test(text)) {
    return new VirtqError('NO_SPACE', `${what}: no space left on the pool's filesystem; free space or use another pool`, { details });
  }
  if (/Permission denied|Operation not permitted|Read-only file system/i.test(text)) {
    return new VirtqError('PERMISSION_DENIED', `${what}: ${text.split('\n')[0] ?? ''}`, { details });
  }
  const how = exit.signal !== null ? `killed by ${exit.signal}` : `exit ${String(exit.code)}`;
  return new VirtqError('OPERATION_FAILED', `${what}: cp failed (${how}): ${text.split('\n')[0] || 'no message'}`, { details });
}

/** Copies files with cp. */
export class FileCopier {
  readonly binary: string;
  private readonly spawn: CopySpawn;
  private readonly lockTable: LockTable;

  constructor(options: { binary?: string; spawn?: CopySpawn; lockTable?: LockTable } = {}) {
    this.binary = options.binary ?? 'cp';
    this.spawn = options.spawn ?? spawnQemuImg;
    this.lockTable = options.lockTable ?? (() => readFile('/proc/locks', 'utf8'));
  }

  /** True when a process on this host may write inode `ino` under QEMU's locks (an unreadable table counts as one). */
  private async locked(ino: bigint): Promise<boolean> {
    try {
      return writerLocked(await this.lockTable(), ino);
    } catch {
      return true;
    }
  }

  /**
   * Copies `src` to `dst` (which must not exist: cp makes it, with the daemon's umask; the caller
   * sets its mode). Resolves `locked` when the source is or becomes locked (dst may then exist:
   * the caller removes it), throws OPERATION_ABORTED once cp is dead when `call.signal` aborts,
   * and the mapped error when cp fails. Never fsyncs: the commit does.
   */
  async copy(src: string, dst: string, call: CopyCall): Promise<CopyOutcome> {
    if (call.signal?.aborted === true) throw abortedError(call.what);
    const ino = (await stat(src, { bigint: true })).ino;
    if (await this.locked(ino)) return 'locked';
    // --reflink=auto: a filesystem that shares extents (xfs, btrfs) makes the copy at once.
    // --sparse=auto: holes in the source stay holes. -T: dst is the file, never a directory.
    const proc = this.spawn(this.binary, ['--reflink=auto', '--sparse=auto', '-T', '--', src, dst]);
    let stderr = '';
    proc.stdout.resume();
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_KEEP); });
    let stopped: 'aborted' | 'locked' | undefined;
    const stop = (why: 'aborted' | 'locked'): void => {
      if (stopped !== undefined) return;
      stopped = why;
      proc.kill();
    };
    const onAbort = (): void => { stop('aborted'); };
    call.signal?.addEventListener('abort', onAbort, { once: true });
    let polling = false;
    let finished = false;
    const timer = setInterval(() => {
      if (polling) return; // a slow stat or read: skip a beat rather than pile up
      polling = true;
      void this.poll(dst, ino, call, () => finished, () => stop('locked')).finally(() => { polling = false; });
    }, POLL_MS);
    let exit;
    try {
      exit = await proc.exited;
    } finally {
      finished = true;
      clearInterval(timer);
      call.signal?.removeEventListener('abort', onAbort);
    }
    if (stopped === 'aborted') throw abortedError(call.what);
    if (stopped === 'locked') return 'locked';
    if (exit.error !== undefined) {
      throw new VirtqError('OPERATION_FAILED', `${call.what}: cannot run ${this.binary}: ${exit.error.message}`, { cause: exit.error });
    }
    if (exit.code !== 0) throw copyError(call.what, exit, stderr);
    // Checked once more now cp is done: a writer missed here would have had to start and stop
    // between two polls (POLL_MS), far less than any VM's life.
    if (await this.locked(ino)) return 'locked';
    call.onProgress?.(call.totalBytes, call.totalBytes);
    return 'copied';
  }

  /** One poll: the progress so far, and whether the source got locked. */
  private async poll(dst: string, ino: bigint, call: CopyCall, finished: () => boolean, onLocked: () => void): Promise<void> {
    if (await this.locked(ino)) {
      if (!finished()) onLocked();
      return;
    }
    try {
      const size = (await stat(dst)).size;
      if (size > 0 && !finished()) call.onProgress?.(Math.min(size, call.totalBytes), call.totalBytes);
    } catch {
      // Not made yet, or removed after an abort: no progress to tell.
    }
  }
}
