// The file descriptors under Node's sockets and servers, for a shim upgrade: the old shim passes
// them to its successor as extra stdio slots (child_process dups them into the child), and the
// successor serves the same kernel sockets. Node exposes no public API for this: a stream
// handle's `fd` and `readStop()` are libuv's, stable on POSIX since Node 0.x, read here through
// one narrow type so no other module touches Node internals.
import { Socket, type Server } from 'node:net';
import { VirtqError } from '../../protocol/errors.js';

interface UvHandle {
  fd?: number;
  readStop?: () => number;
  readStart?: () => number;
  /** Node's own record of whether libuv reads: it restarts reading on resume() only when this is false. */
  reading?: boolean;
}

function handleOf(obj: Server | Socket): UvHandle | undefined {
  return (obj as unknown as { _handle?: UvHandle | null })._handle ?? undefined;
}

/** The fd of a listening server or a connected socket; INTERNAL when it has none (closed, not a fd-backed handle). */
export function fdOf(obj: Server | Socket, what: string): number {
  const fd = handleOf(obj)?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new VirtqError('INTERNAL', `${what} has no file descriptor to hand over`);
  return fd;
}

/**
 * Stops reading `socket` at once: libuv reads no more, so whatever the peer sends next stays in
 * the kernel's buffer for whoever reads the fd next. The stream is also paused, so nothing in
 * Node starts reading again. A flowing socket has delivered everything it read, so nothing is
 * held in Node's buffer either (readableLength is checked).
 */
export function stopReading(socket: Socket): void {
  socket.pause();
  const handle = handleOf(socket);
  if (handle?.readStop !== undefined) {
    handle.readStop();
    handle.reading = false; // so a later resume() (a rolled-back upgrade) starts reading again
  }
  if (socket.readableLength > 0) throw new VirtqError('INTERNAL', `socket still holds ${socket.readableLength} unread bytes; cannot hand it over`);
}

/**
 * Undoes stopReading (a rolled-back upgrade): the stream flows and libuv reads again. Started on
 * the handle itself: the stream still counts its last read request as pending, so resume() alone
 * would never ask the handle again.
 */
export function resumeReading(socket: Socket): void {
  socket.resume();
  const handle = handleOf(socket);
  if (handle?.readStart !== undefined && handle.reading !== true) {
    handle.readStart();
    handle.reading = true;
  }
}

/** A connected unix stream socket passed in as `fd` (a handed-over QEMU connection). */
export function socketFromFd(fd: number): Socket {
  return new Socket({ fd, readable: true, writable: true, allowHalfOpen: false });
}
