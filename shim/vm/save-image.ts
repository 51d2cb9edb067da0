// QEMU's memory state to and from a virtq save image (drivers/hypervisor/qemu/save-image-header.ts).
// Save: QEMU migrates over a unix socket the shim listens on and a `cat` child copies the stream
// into the file after virtq's header (stream-copy.ts), so the header, the length and the
// temp-then-rename write are virtq's and no shell or path goes into a QEMU URI. Restore: QEMU
// inherits the checked image's descriptor, positioned at the stream, and reads it itself
// (`-incoming fd:N`). Kept apart from vm.ts so live migration can share the QMP helpers.
import { closeSync, fdatasync, fstatSync, fsync, linkSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { writeAllSync } from '../../drivers/fs/write-all.js';
import { promisify } from 'node:util';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, basename, join } from 'node:path';
import { catCopier, type StreamCopier } from './stream-copy.js';
import { VirtqError, type Clock } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { encodeSaveHeader, payloadLengthBytes, type SaveImageMeta } from '../../drivers/hypervisor/qemu/save-image-header.js';

/** No bandwidth cap for a save to a local file (QEMU's default is 32 MiB/s, made for networks). */
const UNLIMITED_BANDWIDTH = 2 ** 40;
const POLL_MS = 10;
/** A save starts writing back what the copier wrote each time this much more has been sent. */
const WRITE_BEHIND_BYTES = 16 * 2 ** 20;
const fsyncP = promisify(fsync);
const fdatasyncP = promisify(fdatasync);

/** A migration's progress, from `query-migrate`. */
export interface MigrationProgress {
  status: string;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
}

/** `query-migrate`, parsed. */
export async function queryMigrate(mon: HypervisorMonitor): Promise<MigrationProgress & { error?: string }> {
  const r = (await mon.raw({ execute: 'query-migrate' })) as { status?: string; 'error-desc'?: string; ram?: { transferred?: number; remaining?: number; total?: number } };
  return {
    status: r.status ?? 'none', transferredBytes: r.ram?.transferred ?? 0, remainingBytes: r.ram?.remaining ?? 0, totalBytes: r.ram?.total ?? 0,
    ...(r['error-desc'] === undefined ? {} : { error: r['error-desc'] }),
  };
}

/** Polls `query-migrate` until the migration completed; OPERATION_FAILED with QEMU's reason when it failed or was cancelled. */
export async function waitMigration(mon: HypervisorMonitor, clock: Clock, what: string, onProgress?: (p: MigrationProgress) => void): Promise<void> {
  for (;;) {
    const p = await queryMigrate(mon);
    onProgress?.(p);
    if (p.status === 'completed') return;
    if (p.status === 'failed' || p.status === 'cancelled') throw new VirtqError('OPERATION_FAILED', `${what} failed in QEMU: ${p.error ?? p.status}`);
    await new Promise<void>((resolve) => clock.setTimeout(resolve, POLL_MS));
  }
}

function listenOnce(path: string): Promise<{ server: Server; accepted: Promise<Socket> }> {
  return new Promise((resolve, reject) => {
    // Paused: the copier's child reads the connection, the shim never does.
    const server = createServer({ pauseOnConnect: true });
    const accepted = new Promise<Socket>((ok) => server.once('connection', (s) => { server.close(); ok(s); }));
    server.once('error', reject);
    server.listen(path, () => resolve({ server, accepted }));
  });
}

/** What a save needs. */
export interface SaveToFile {
  mon: HypervisorMonitor;
  clock: Clock;
  /** The final image path; written as a temp file beside it and renamed once complete. */
  file: string;
  meta: SaveImageMeta;
  /** A unix socket path the shim may use for QEMU's stream. */
  socket: string;
  onProgress?: (p: MigrationProgress) => void;
  /** Moves the stream into the file; `cat` by default. */
  copy?: StreamCopier;
}

/** A save's result: the image's length and, when it replaced one, the old image's last name. */
export interface SavedFile {
  bytes: number;
  /**
   * The image that was at `file` before, still linked here (a hidden name beside it): the caller
   * removes it once the save is answered (removeSuperseded). Freeing a large file's blocks takes
   * ext4 40+ ms (bench/RESULTS.md, session 15), which a rename over it would spend before the VM
   * counts as saved; raw QEMU's `exec:cat > FILE` spends it too, in its O_TRUNC.
   */
  superseded?: string;
}

/**
 * Writes the header, then QEMU's stream (the vCPUs should be paused), then the payload length,
 * fsyncs and renames into place. On any failure the temp file is removed and `file` is as it was.
 * The quick file calls (open, link, the header, stat, the length, rename, close) are made on the
 * event loop's thread: each costs less than a thread-pool round trip and its wake-up, and the
 * shim's one pool thread may be busy with the event journal's fsync. Only the fsyncs go there.
 */
export async function saveToFile(s: SaveToFile): Promise<SavedFile> {
  const temp = join(dirname(s.file), `.${basename(s.file)}.${process.pid}.partial`);
  const old = join(dirname(s.file), `.${basename(s.file)}.${process.pid}.old`);
  const header = encodeSaveHeader(s.meta);
  const copy = s.copy ?? catCopier();
  // A live migration leaves pause-before-switchover on in this QEMU when it failed or was rolled
  // back (shim/vm/migration-qmp.ts sets it for the lease handover): a save must not stop there,
  // nobody would continue it. Sent with the parameters, while the shim sets up its socket and file.
  const qemuReady = Promise.all([
    s.mon.raw({ execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'pause-before-switchover', state: false }] } }),
    s.mon.raw({ execute: 'migrate-set-parameters', arguments: { 'max-bandwidth': UNLIMITED_BANDWIDTH } }),
  ]);
  qemuReady.catch(() => undefined);
  rmSync(s.socket, { force: true });
  const listening = listenOnce(s.socket);
  listening.catch(() => undefined);
  let fd: number | undefined;
  let superseded: string | undefined;
  let flushing: Promise<void> | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    const out = fd;
    // An image already at `file` keeps a second name until the new one is renamed over it, so
    // the rename only drops a link and the old blocks are freed after the reply. Where links are
    // refused (another filesystem kind) or nothing is there, the rename frees them as before.
    superseded = linkIfAny(s.file, old);
    // At the descriptor's offset, which ends after the header, where the copier writes.
    writeAllSync(out, header);
    const [{ accepted }] = await Promise.all([listening, qemuReady]);
    await s.mon.raw({ execute: 'migrate', arguments: { uri: `unix:${s.socket}` } });
    // The copy ends when QEMU closes the stream; a migration that fails before it connects is
    // seen by waitMigration, so nothing waits on a connection that never comes.
    const copied = accepted.then((sock) => copy(sock, out));
    copied.catch(() => undefined);
    // Write-behind: the image must be on disk before the VM counts as saved, and flushing while
    // QEMU still streams leaves the final fsync little to do (it was a third of a save).
    let flushedTo = 0;
    await waitMigration(s.mon, s.clock, 'saving the memory state', (p) => {
      s.onProgress?.(p);
      if (flushing !== undefined || p.transferredBytes - flushedTo < WRITE_BEHIND_BYTES) return;
      flushedTo = p.transferredBytes;
      flushing = fdatasyncP(out).catch(() => undefined).then(() => { flushing = undefined; });
    });
    await copied;
    const payload = fstatSync(out).size - header.length;
    const len = payloadLengthBytes(payload);
    writeSync(out, len.bytes, 0, len.bytes.length, len.position);
    await flushing;
    await fsyncP(out);
    renameSync(temp, s.file);
    return { bytes: header.length + payload, ...(superseded === undefined ? {} : { superseded }) };
  } catch (err) {
    rmSync(temp, { force: true });
    // The old image is still at `file`: dropping its second name frees nothing.
    if (superseded !== undefined) rmSync(superseded, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VirtqError('OPERATION_INVALID', `another save to ${s.file} is in progress`);
    throw err instanceof VirtqError ? err : new VirtqError('OPERATION_FAILED', `cannot save to ${s.file}: ${(err as Error).message}`, { cause: err });
  } finally {
    // A write-behind still running uses the descriptor: it is closed after it.
    await flushing;
    if (fd !== undefined) closeSync(fd);
    await listening.then(({ server }) => { server.close(); }, () => undefined);
    rmSync(s.socket, { force: true });
  }
}

// `from`'s inode under the name `to` as well; undefined when there is nothing at `from` or the
// filesystem refuses a link (the save then simply renames over it).
function linkIfAny(from: string, to: string): string | undefined {
  try {
    linkSync(from, to);
    return to;
  } catch {
    return undefined;
  }
}

/**
 * Removes an image a save replaced (SavedFile.superseded) without holding up anything: the unlink
 * runs on the thread pool, started after the current turn of the event loop (the save's reply is
 * written by then). A failure is only logged: it leaves a hidden file, not a wrong image.
 */
export function removeSuperseded(file: string | undefined, onError: (err: unknown) => void): void {
  if (file === undefined) return;
  setImmediate(() => { rm(file, { force: true }).catch(onError); });
}

/**
 * Waits until a QEMU started with `-incoming fd:N` on a checked image (its inherited copy of the
 * image's descriptor, positioned at the stream) has loaded it (the vCPUs stay paused; the caller
 * continues them). QEMU reads the file itself: no byte passes through the shim.
 */
export async function waitLoaded(mon: HypervisorMonitor, clock: Clock, file: string): Promise<void> {
  await waitMigration(mon, clock, `restoring from ${file}`);
}

/** The shim's socket for a VM's save or restore stream, beside its monitor socket. */
export function saveSocketPath(monitorSocket: string): string {
  return monitorSocket.replace(/-qmp\.sock$/, '-save.sock');
}
