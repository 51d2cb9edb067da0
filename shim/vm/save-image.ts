// QEMU's memory state to and from a virtq save image (drivers/hypervisor/qemu/save-image-header.ts):
// QEMU migrates over a unix socket the shim listens on (save) or dials (restore), and the shim
// moves the bytes between that socket and the file, so the file's header, its length and the
// temp-then-rename write are virtq's, and no shell or path ever goes into a QEMU URI but the
// shim's own socket. Kept apart from vm.ts so live migration can share the QMP helpers below.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VirtqError, type Clock } from '../../protocol/index.js';
import type { HypervisorMonitor } from '../../drivers/hypervisor/types.js';
import { encodeSaveHeader, payloadLengthBytes, type SaveImage, type SaveImageMeta } from '../../drivers/hypervisor/qemu/save-image-header.js';

/** No bandwidth cap for a save to a local file (QEMU's default is 32 MiB/s, made for networks). */
const UNLIMITED_BANDWIDTH = 2 ** 40;
const POLL_MS = 10;

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
    const server = createServer();
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
}

/**
 * Writes the header, then QEMU's stream (the vCPUs should be paused), then the payload length,
 * fsyncs and renames into place. On any failure the temp file is removed and nothing is at `file`.
 */
export async function saveToFile(s: SaveToFile): Promise<{ bytes: number }> {
  const temp = join(dirname(s.file), `.${basename(s.file)}.${process.pid}.partial`);
  const header = encodeSaveHeader(s.meta);
  await rm(s.socket, { force: true });
  const { server, accepted } = await listenOnce(s.socket);
  try {
    const fh = await open(temp, 'wx', 0o600);
    try {
      await fh.write(header, 0, header.length, 0);
    } finally {
      await fh.close();
    }
    await s.mon.raw({ execute: 'migrate-set-parameters', arguments: { 'max-bandwidth': UNLIMITED_BANDWIDTH } });
    await s.mon.raw({ execute: 'migrate', arguments: { uri: `unix:${s.socket}` } });
    // A stream of its own (a FileHandle's stream would keep the handle from closing).
    const out = createWriteStream(temp, { flags: 'r+', start: header.length });
    // The copy ends when QEMU closes the stream; a migration that fails before it connects is
    // seen by waitMigration, so nothing waits on a connection that never comes.
    const copied = accepted.then((sock) => pipeline(sock, out));
    copied.catch(() => undefined);
    await waitMigration(s.mon, s.clock, 'saving the memory state', s.onProgress);
    await copied;
    const payload = out.bytesWritten;
    const len = payloadLengthBytes(payload);
    const done = await open(temp, 'r+');
    try {
      await done.write(len.bytes, 0, len.bytes.length, len.position);
      await done.sync();
    } finally {
      await done.close();
    }
    await rename(temp, s.file);
    return { bytes: header.length + payload };
  } catch (err) {
    await rm(temp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VirtqError('OPERATION_INVALID', `another save to ${s.file} is in progress`);
    throw err instanceof VirtqError ? err : new VirtqError('OPERATION_FAILED', `cannot save to ${s.file}: ${(err as Error).message}`, { cause: err });
  } finally {
    server.close();
    await rm(s.socket, { force: true });
  }
}

/**
 * Feeds a checked image's stream to a QEMU started with `-incoming defer`, and waits until QEMU
 * has loaded it (the vCPUs stay paused; the caller continues them).
 */
export async function loadFromFile(mon: HypervisorMonitor, clock: Clock, image: SaveImage, socket: string): Promise<void> {
  await rm(socket, { force: true });
  await mon.raw({ execute: 'migrate-incoming', arguments: { uri: `unix:${socket}` } });
  try {
    const sock = connect(socket);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    const fed = pipeline(createReadStream(image.file, { start: image.payloadOffset, end: image.payloadOffset + image.payloadBytes - 1 }), sock);
    await waitMigration(mon, clock, `restoring from ${image.file}`);
    await fed;
  } finally {
    await rm(socket, { force: true });
  }
}

/** The shim's socket for a VM's save or restore stream, beside its monitor socket. */
export function saveSocketPath(monitorSocket: string): string {
  return monitorSocket.replace(/-qmp\.sock$/, '-save.sock');
}
