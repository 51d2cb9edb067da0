// One end of a byte stream multiplexed on a connection by the serial of the call that opened
// it (the serial console). Bytes written go out as stream frames; bytes received are read as an
// async iterator; a null chunk ends the stream.
import type { VirtqError } from './errors.js';
import { EventQueue } from './event-queue.js';

/** A bidirectional byte stream over an RPC connection. */
export class ByteStream implements AsyncIterable<Uint8Array> {
  private readonly incoming = new EventQueue<Uint8Array>(4096);
  private ended = false;
  /** Set when the remote end closed the stream with an error. */
  error: VirtqError | undefined;

  constructor(private readonly sendChunk: (data: Uint8Array | null) => void, private readonly onEnd: () => void) {}

  /** Sends bytes to the peer. */
  write(data: Uint8Array | string): void {
    if (this.ended) return;
    this.sendChunk(typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** Ends the stream from this side. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.sendChunk(null);
    this.incoming.end();
    this.onEnd();
  }

  /** Called by the connection when bytes arrive. */
  remoteData(data: Uint8Array): void {
    this.incoming.push(data);
  }

  /** Called by the connection when the peer ended the stream or the connection closed. */
  remoteEnded(err: VirtqError | undefined): void {
    this.error = err;
    this.ended = true;
    this.incoming.end();
    this.onEnd();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.incoming[Symbol.asyncIterator]();
  }
}
