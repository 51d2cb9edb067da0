// Moves a save's migration stream from the socket QEMU writes to into the image file without the
// bytes passing through the shim's event loop: a `cat` child gets the accepted socket as stdin
// and the image's descriptor (positioned after virtq's header) as stdout. Copying in Node cost
// 3–5× QEMU's own time under load (a 64 KiB read, a thread-pool write and a wake-up per chunk);
// `cat` is what raw QEMU's `exec:cat > FILE` runs, and no shell or path is involved.
import { spawn as nodeSpawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { VirtqError } from '../../protocol/index.js';

/** Copies everything `from` delivers until its end to `toFd` at that descriptor's offset. */
export type StreamCopier = (from: Socket, toFd: number) => Promise<void>;

/** The copier that runs `cat` (found on PATH, or `binary`). `from` must not have been read from (a server with pauseOnConnect). */
export function catCopier(binary = 'cat', spawn: typeof nodeSpawn = nodeSpawn): StreamCopier {
  return (from, toFd) => new Promise<void>((resolve, reject) => {
    // The C locale: cat reads no locale files at start (a dozen opens under a UTF-8 LANG).
    const child = spawn(binary, [], { stdio: [from, toFd, 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C' } });
    // The child holds its own copy of the socket now; ours would keep QEMU's peer open.
    from.destroy();
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < 2048) stderr += s; });
    child.once('error', (err) => reject(new VirtqError('OPERATION_FAILED', `cannot run ${binary} to copy the memory state: ${err.message}`, { cause: err })));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new VirtqError('OPERATION_FAILED', `${binary} copying the memory state ended with ${signal ?? `code ${String(code)}`}: ${stderr.trim()}`));
    });
  });
}
