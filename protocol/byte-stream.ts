// One end of a byte stream multiplexed on a connection by the serial of the call that opened
// it (the serial console, volume uploads and downloads). Bytes written go out as stream frames;
// bytes received are read as an async iterator; a null chunk ends the stream, an error frame
// ends it with an error. Flow control both ways, so a 1 GiB volume never sits in memory: a
// receiver that holds more than HIGH_WATER unread bytes stops reading its socket until the
// reader has caught up (LOW_WATER), and a sender awaits `drain()` before writing more. Bytes
// arrive in order but not in the sender's chunks: a client hands large ones on as its socket reads.
import type { VirtqError } from './errors.js';

/** Unread received bytes past which the connection stops reading its socket. */
export const STREAM_HIGH_WATER = 4 * 1024 * 1024;
/** Unread received bytes below which it reads again. */
export const STREAM_LOW_WATER = 1024 * 1024;
/**
 * Unsent bytes below which `drain()` lets a writer go on: well under the 8 MiB of unread pushed
 * bytes past which a server drops a client (MAX_UNREAD_PUSH_BYTES).
 */
export const STREAM_WRITABLE_BYTES = 4 * 1024 * 1024;

/**
 * Stream frames from this size on, when they arrive over several socket reads, reach a client's
 * streams as those reads' buffers (FramedConnection's bytePiecesFrom): a 1 MiB chunk is then not
 * copied into a fresh buffer, which costs a page fault per 4 KiB where glibc maps it anew.
 */
export const STREAM_PIECES_FROM = 64 * 1024;

/** How a stream reaches its connection. */
export interface StreamTransport {
  /** Sends a chunk; null ends the stream from this side. */
  send(data: Uint8Array | null): void;
  /** Ends the stream from this side with an error (the peer's iterator ends and `error` is set). */
  sendError?(err: VirtqError): void;
  /** Called once no more incoming data is wanted (the peer ended, or this end closed): unroutes the stream. */
  onEnd(): void;
  /** Stops / resumes reading the connection's socket (receive-side flow control). */
  pause?(): void;
  resume?(): void;
  /** Resolves when the connection can take more bytes (send-side flow control). */
  writable?(): Promise<void>;
  /** Takes back the memory of a received chunk its reader is done with (FramedConnection.recycle). */
  recycle?(chunk: Uint8Array): void;
  /** Memory for an outgoing chunk of `n` bytes inside its frame (FramedConnection.streamChunkBuffer). */
  chunkBuffer?(n: number): Uint8Array | undefined;
  /** Reads large incoming chunks into the memory `sink` gives for their size (FramedConnection.setPayloadSink). */
  payloadSink?(sink: ((n: number) => Uint8Array | undefined) | undefined): void;
}

/** Memory for `n` received bytes starting at stream offset `offset`, or undefined (ByteStream.readInto). */
export type ChunkSink = (offset: number, n: number) => Uint8Array | undefined;

/** A bidirectional byte stream over an RPC connection. */
export class ByteStream implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private waiter: ((r: IteratorResult<Uint8Array>) => void) | undefined;
  private buffered = 0;
  /** Bytes received so far: the stream offset of the next chunk to arrive. */
  private received = 0;
  private paused = false;
  private localEnded = false;
  private remoteDone = false;
  /** Set when the remote end closed the stream with an error (or the connection closed under it). */
  error: VirtqError | undefined;
  /** The reply body of the call that opened the stream (client side). */
  opened: unknown;

  constructor(private readonly transport: StreamTransport) {}

  /** Sends bytes to the peer. */
  write(data: Uint8Array | string): void {
    if (this.localEnded) return;
    this.transport.send(typeof data === 'string' ? Buffer.from(data) : data);
  }

  /**
   * Memory for the next chunk of `n` bytes this side writes, inside the frame that will carry it:
   * fill it and write() that very view, whole, and its bytes are not copied (a file read straight
   * there). Undefined when the transport cannot (then use memory of your own); a view never
   * written is simply dropped.
   */
  chunkBuffer(n: number): Uint8Array | undefined {
    return this.localEnded ? undefined : this.transport.chunkBuffer?.(n);
  }

  /** Resolves once the connection can take more bytes: await it between large writes. */
  drain(): Promise<void> {
    return this.localEnded || this.transport.writable === undefined ? Promise.resolve() : this.transport.writable();
  }

  /** Closes the stream: ends this side and stops reading (what the peer still sends is dropped). */
  end(): void {
    this.endWrite();
    this.stopReading();
  }

  /**
   * Ends this side only and keeps reading until the peer ends its own: an uploader's "that was
   * all", after which it waits for the server to end (done) or fail (refused) the stream.
   */
  endWrite(): void {
    if (this.localEnded) return;
    this.localEnded = true;
    this.transport.send(null);
  }

  /** Ends the stream with an error for the peer (a server refusing an upload midway), and stops reading. */
  fail(err: VirtqError): void {
    if (!this.localEnded) {
      this.localEnded = true;
      if (this.transport.sendError === undefined) this.transport.send(null);
      else this.transport.sendError(err);
    }
    this.stopReading();
  }

  /**
   * Tells the stream that the reader is done with `chunk` (a chunk this stream yielded, fully
   * written out and never to be read again): its memory may be read into for a later chunk.
   * Optional; a reader that keeps chunks simply never calls it.
   */
  recycle(chunk: Uint8Array): void {
    this.transport.recycle?.(chunk);
  }

  /**
   * Lets the connection read large incoming chunks straight into memory `sink` gives for the
   * stream offset they start at (an upload's staging buffers; undefined: no more). Such a chunk
   * is yielded as a view of that memory, in order with every other chunk; a sink may decline (the
   * chunk then arrives in the connection's memory), and must keep what it gave untouched until
   * the chunk has been yielded and handled. Does nothing on a transport that cannot.
   */
  readInto(sink: ChunkSink | undefined): void {
    this.transport.payloadSink?.(sink === undefined ? undefined : (n) => (this.remoteDone ? undefined : sink(this.received, n)));
  }

  /** True once this side has ended. */
  get ended(): boolean {
    return this.localEnded;
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Called by the connection when bytes arrive. */
  remoteData(data: Uint8Array): void {
    if (this.remoteDone) return;
    this.received += data.length;
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w({ value: data, done: false });
      return;
    }
    this.chunks.push(data);
    this.buffered += data.length;
    if (!this.paused && this.buffered > STREAM_HIGH_WATER && this.transport.pause !== undefined) {
      this.paused = true;
      this.transport.pause();
    }
  }

  /** Called by the connection when the peer ended the stream or the connection closed. */
  remoteEnded(err: VirtqError | undefined): void {
    if (this.remoteDone) return;
    this.error ??= err;
    // A connection that closed ends this side too: nothing more can be sent.
    if (err !== undefined) this.localEnded = true;
    this.remoteDone = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
    this.unpause();
    this.transport.onEnd();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => {
        const chunk = this.chunks.shift();
        if (chunk !== undefined) {
          this.buffered -= chunk.length;
          if (this.buffered < STREAM_LOW_WATER) this.unpause();
          return Promise.resolve({ value: chunk, done: false });
        }
        if (this.remoteDone) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => { this.waiter = resolve; });
      },
      return: () => {
        this.stopReading();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  // What the peer still sends is dropped, the iterator ends, and the socket reads on.
  private stopReading(): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.chunks.length = 0;
    this.buffered = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.({ value: undefined, done: true });
    this.unpause();
    this.transport.onEnd();
  }

  private unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.transport.resume?.();
  }
}
