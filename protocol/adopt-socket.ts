// A unix socket net.Server accepted, re-made as a socket that reads into buffers we give (net's
// `onread`). net.Server has no `onread` option: its sockets read through 'data', a fresh 64 KiB
// buffer and a JS call per read, so a 1 GiB upload reached the daemon as 16384 pieces, each
// its own trip through the stream's promises (bench/RESULTS.md, issue #13 session 12). Read into
// the frame's own buffer instead, a 1 MiB chunk arrives whole, read by the kernel where it stays.
// The accepted socket must come paused (createServer's `pauseOnConnect`): no byte is read
// before its handle moves to the new socket.
import { Socket, type OnReadOpts } from 'node:net';

/** The part of a net.Socket's internals this moves: its libuv handle (Node's own `handle` option takes it). */
interface WithHandle {
  _handle: object | null;
}

/**
 * Returns a socket on `accepted`'s connection that reads through `onread`, and retires
 * `accepted` (its server counts it closed). When the handle cannot be taken (another runtime's
 * internals), returns `accepted` itself, resumed, reading through 'data' as before.
 */
export function adoptReadingInto(accepted: Socket, onread: OnReadOpts): Socket {
  const inner = accepted as unknown as WithHandle;
  const handle = inner._handle;
  if (handle === null || typeof handle !== 'object' || typeof (handle as { readStart?: unknown }).readStart !== 'function') {
    accepted.resume();
    return accepted;
  }
  // Detached first, so that destroy() closes nothing: it only ends the old object (and lowers
  // the server's connection count, which virtq's servers do not use: they count their clients).
  inner._handle = null;
  accepted.destroy();
  const opts = { handle, readable: true, writable: true, allowHalfOpen: false, onread };
  return new Socket(opts as ConstructorParameters<typeof Socket>[0]);
}
