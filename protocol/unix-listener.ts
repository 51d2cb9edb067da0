// Binding a unix socket without ever taking over a live one. The socket is bound under a
// temporary name, given its mode, then hard-linked to its real path: link(2) fails if the
// path exists, so two daemons racing for one path cannot both win, and a stale socket file
// (nobody accepting) is removed only after a connect attempt proves it dead. Regular files
// and other non-sockets at the path are never removed.
import { chmodSync, linkSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { lstat, unlink, stat } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { VirtqError } from './errors.js';
import { tempSuffix } from './node-crypto.js';

/** The longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH = 107;

/** Identity of a bound socket file, so a daemon only ever unlinks its own. */
export interface BoundSocket {
  path: string;
  ino: number;
  dev: number;
  /** Handed to this process already listening (socket activation): whoever bound it removes it, never this process. */
  inherited?: boolean;
}

/** Binds `server` at `path` with `mode`; throws SOCKET_IN_USE when a live process serves it. */
export async function listenUnix(server: Server, path: string, mode: number): Promise<BoundSocket> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new VirtqError('INVALID_ARG', `socket path is longer than ${MAX_SOCKET_PATH} bytes: ${path}`);
  }
  const tmp = join(dirname(path), `.${tempSuffix()}.tmp`);
  await bind(server, Buffer.byteLength(tmp) <= MAX_SOCKET_PATH ? tmp : path);
  const bound = Buffer.byteLength(tmp) <= MAX_SOCKET_PATH ? tmp : path;
  // chmod, link, unlink and stat are synchronous: microseconds each in a local directory, where four
  // thread-pool round trips awaited in turn cost a VM start (a shim binds five sockets before QEMU)
  // a scheduling wait each on a loaded host (issue 15). A path already taken goes the slow way below.
  try {
    chmodSync(bound, mode);
    if (bound === tmp) await linkClaim(tmp, path);
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  } finally {
    if (bound === tmp) try { unlinkSync(tmp); } catch { /* already gone */ }
  }
  const st = statSync(path);
  return { path, ino: st.ino, dev: st.dev };
}

/**
 * Serves `server` on the listening socket `fd` a service manager handed over (systemd socket
 * activation) for `path`. Nothing is bound, chmod'ed or claimed: the socket unit did that, and it
 * keeps the socket (and the clients queued on it) across this process's restarts.
 */
export function listenInherited(server: Server, fd: number, path: string, owned = false): Promise<BoundSocket> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new VirtqError('INVALID_ARG', `cannot serve ${path} on the inherited file descriptor ${fd}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    try {
      server.listen({ fd }, () => {
        server.off('error', onError);
        // `owned`: handed over by the shim this one replaces, which bound it; this one removes it in the end.
        if (!owned) resolve({ path, ino: 0, dev: 0, inherited: true });
        else stat(path).then((st) => resolve({ path, ino: st.ino, dev: st.dev }), () => resolve({ path, ino: 0, dev: 0, inherited: true }));
      });
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
    }
  });
}

/** Removes the socket file only if it is still the one this process bound (never an inherited one). */
export async function unlinkIfOurs(sock: BoundSocket): Promise<void> {
  if (sock.inherited === true) return;
  try {
    const st = await lstat(sock.path);
    if (st.ino === sock.ino && st.dev === sock.dev) await unlink(sock.path);
  } catch {
    // Already gone.
  }
}

/** Resolves true when something accepts connections at `path`. */
export function isLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => { s.destroy(); resolve(true); }, timeoutMs);
    timer.unref();
    s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // EAGAIN: the backlog is full, which means somebody is listening.
      resolve(err.code === 'EAGAIN');
    });
  });
}

function bind(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new VirtqError('SOCKET_IN_USE', `socket path ${path} is in use`)
        : new VirtqError('INTERNAL', `cannot listen on ${path}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

// A daemon restarted after kill -9 finds each of its sockets stale: the lstat and unlink here are
// synchronous too (the connect that proves the socket dead is not), as above: each thread-pool
// round trip was a scheduling wait before a restarted virtqemud's first listing (issue 15 target 4).
async function linkClaim(tmp: string, path: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      linkSync(tmp, path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let st;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    if (st === undefined) continue;
    if (!st.isSocket()) {
      throw new VirtqError('SOCKET_IN_USE', `${path} exists and is not a socket; refusing to replace it`);
    }
    if (await isLive(path)) {
      throw new VirtqError('SOCKET_IN_USE', `another process is serving ${path} (is ${basename(path, '.sock').replace(/-(ro|admin)$/, '')} already running?)`);
    }
    try { unlinkSync(path); } catch { /* gone already */ }
  }
  throw new VirtqError('SOCKET_IN_USE', `could not claim ${path}: it keeps being recreated`);
}
