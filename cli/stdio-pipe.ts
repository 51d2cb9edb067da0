// `virtq proxy`'s byte pump: dial a local unix socket, say so on stdout with the proxy banner, then
// copy bytes both ways until either side ends. It reads nothing of the protocol it carries.
import { connect as netConnect } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { VirtqError } from '../protocol/index.js';
import { okBanner } from '../client/proxy-banner.js';

/**
 * Joins `stdin` and `stdout` to the unix socket at `path`. Rejects with NO_CONNECT or
 * PERMISSION_DENIED (naming the socket) when it cannot be dialled; resolves once the copying ends.
 */
export function pipeStdioTo(path: string, stdin: Readable, stdout: Writable, uid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(path);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      if (err.code === 'EACCES') {
        reject(new VirtqError('PERMISSION_DENIED', `cannot connect to ${path}: permission denied for uid ${uid} (the read-write socket needs its owner or group; use ?readonly=1 for the read-only one)`, { details: { socket: path } }));
        return;
      }
      const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'nothing is listening' : err.message;
      reject(new VirtqError('NO_CONNECT', `cannot connect to ${path}: ${why} (is the daemon running there?)`, { details: { socket: path } }));
    });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      // Errors after this point just end the pipe: the client sees its connection close.
      socket.on('error', () => socket.destroy());
      stdout.on('error', () => socket.destroy());
      stdout.write(okBanner(path));
      stdin.pipe(socket);
      socket.pipe(stdout);
      socket.once('close', () => { stdin.unpipe(socket); resolve(); });
    });
  });
}
