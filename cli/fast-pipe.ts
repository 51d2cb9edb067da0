// A unix-socket connection for the CLI's one fast call (cli/fast-call.ts, decision 0028) on
// Node's own stream handle (the Pipe that node:net wraps), with no net.Socket around it. Loading
// node:net and the stream modules under it costs ~10 M instructions of a `virtq list`'s ~123 M
// (`node -e "require('node:net')"` 87.8 M against `node -e 0` 78.1; the whole bare client on a
// raw Pipe 80.9 M against 104.8 on node:net: bench/RESULTS.md, issue 15, session 14). The handle
// is reached through process.binding's allow-listed 'pipe_wrap' and 'stream_wrap', the calls
// lib/net.js makes itself. Anything not as expected (a Node without them, the permission model,
// --pending-deprecation, which would print a warning) gives undefined here, and the full CLI
// runs the command line on node:net, having printed nothing.

/** A connect or write request: lib/net.js's PipeConnectWrap and WriteWrap. */
interface Req {
  oncomplete: (status: number) => void;
  address?: string;
  handle?: PipeHandle;
}

/** The stream handle (src/pipe_wrap.cc, src/stream_wrap.cc); methods return 0 or a negative errno. */
interface PipeHandle {
  connect(req: Req, path: string): number;
  writeBuffer(req: Req, data: Uint8Array): number;
  readStart(): number;
  close(): void;
  onread: (buffer: ArrayBuffer | undefined) => void;
}

interface PipeBindings {
  Pipe: new (type: number) => PipeHandle;
  PipeConnectWrap: new () => Req;
  constants: { SOCKET: number };
}

interface StreamBindings {
  WriteWrap: new () => Req;
  /** Where the handle puts a read's length (or negative errno) and the data's offset in its buffer. */
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

type Binding = (name: string) => unknown;

/** What happens on a connection, each at most once except `data`. */
export interface PipeEvents {
  data(chunk: Buffer): void;
  /** Connecting failed with errno `status` (negative), as net.Socket's 'error' before 'connect'. */
  refused(status: number): void;
  /** Closed by the peer, or a read or write failed after connecting. */
  lost(): void;
}

/** An open connection: close() drops it (the kernel sends the peer its end). */
export interface FastPipe {
  close(): void;
}

function bindings(): { pipe: PipeBindings; stream: StreamBindings } | undefined {
  const binding = (process as unknown as { binding?: Binding }).binding;
  // --pending-deprecation wraps process.binding in a function that warns on stderr (DEP0111).
  if (typeof binding !== 'function' || binding.name !== 'binding') return undefined;
  try {
    const pipe = binding('pipe_wrap') as PipeBindings;
    const stream = binding('stream_wrap') as StreamBindings;
    if (typeof pipe.Pipe !== 'function' || typeof stream.WriteWrap !== 'function' || !(stream.streamBaseState instanceof Int32Array)) return undefined;
    return { pipe, stream };
  } catch {
    return undefined;
  }
}

/**
 * Connects to the unix socket `path`, writes `frame` once connected and reports what follows to
 * `events`; undefined when this Node offers no usable handle (the caller hands the command over).
 */
export function dialPipe(path: string, frame: Uint8Array, events: PipeEvents): FastPipe | undefined {
  const b = bindings();
  if (b === undefined) return undefined;
  const { Pipe, PipeConnectWrap, constants } = b.pipe;
  const { WriteWrap, streamBaseState: state, kReadBytesOrError, kArrayBufferOffset } = b.stream;
  const handle = new Pipe(constants.SOCKET);
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    handle.close();
  };
  const lost = (): void => {
    if (!open) return;
    close();
    events.lost();
  };
  handle.onread = (buffer) => {
    const n = state[kReadBytesOrError] ?? 0;
    // 0: nothing read this time (EAGAIN); negative: end of stream or an error.
    if (n > 0 && buffer !== undefined) events.data(Buffer.from(buffer, state[kArrayBufferOffset] ?? 0, n));
    else if (n < 0) lost();
  };
  const req = new PipeConnectWrap();
  req.address = path;
  req.oncomplete = (status) => {
    if (!open) return;
    if (status < 0) {
      close();
      events.refused(status);
      return;
    }
    const write = new WriteWrap();
    write.handle = handle;
    write.oncomplete = (s) => { if (s < 0) lost(); };
    if (handle.writeBuffer(write, frame) < 0 || handle.readStart() < 0) lost();
  };
  const status = handle.connect(req, path);
  if (status < 0) {
    // As net.Socket: a connect that fails at once is reported after this call returns.
    close();
    queueMicrotask(() => events.refused(status));
  }
  return { close };
}
