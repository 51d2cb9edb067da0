// Waiting for a restarting daemon's socket without a failing connect every millisecond (issue 15
// target 4, session 15). A refused connect costs the waiting Node process ~0.5–1 ms of CPU (an errno
// exception whose stack is formatted), so a bench polling that way each millisecond spent most of a
// core while the daemon it timed was starting on the same 2 vCPUs. lstat costs microseconds: poll it
// until the path names a socket other than the dead daemon's (inode and ctime), then connect.
import { lstatSync } from 'node:fs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The identity of the file at `path` (inode:ctime in ns), or undefined when there is none. */
export function socketIdentity(path) {
  try { const s = lstatSync(path, { bigint: true }); return `${s.ino}:${s.ctimeNs}`; } catch { return undefined; }
}

/**
 * Resolves `connect(path)` once the path is bound anew (its identity is not `stale`), polling every
 * `everyMs`; a connect refused in the moment between bind and listen is tried again.
 */
export async function connectWhenBound(path, connect, deadline, stale, everyMs = 1) {
  for (;;) {
    const id = socketIdentity(path);
    if (id !== undefined && id !== stale) {
      try { return await connect(path); } catch (err) { if (performance.now() > deadline) throw err; }
    } else if (performance.now() > deadline) throw new Error(`${path} was not bound anew in time`);
    await sleep(everyMs);
  }
}
