// Helpers of connection.ts for stream frames with a byte body: a stream frame's head decoded
// alone (its byte body left where it is), the payload sinks' type, and the `onread` options that
// make a socket read into a connection's own buffers.
import type { Codec } from './codec.js';
import { bytesBodyAt } from './byte-pieces.js';

/** What readInto() needs of a connection (FramedConnection's readBuffer/onRead). */
export interface ReadTarget {
  readBuffer(): Buffer;
  onRead(n: number, buf: Uint8Array): void;
}

/** CBOR's empty byte string, standing for a byte body in pieces while the head is decoded. */
const EMPTY_BYTES_ITEM = Buffer.from([0x40]);

/**
 * The message of a stream frame whose first bytes are `head` (a frame of `frameLength` bytes
 * ending with a byte body), decoded with that body left out, and where the body starts; undefined
 * for any other frame. Throws what the codec throws.
 */
export function streamHeadOf(codec: Codec, head: Buffer, frameLength: number): { item: Record<string, unknown>; data: number } | undefined {
  const body = bytesBodyAt(head, frameLength);
  if (body === undefined) return undefined;
  const item = codec.decode(Buffer.concat([head.subarray(0, body.at), EMPTY_BYTES_ITEM]));
  if (typeof item !== 'object' || item === null || (item as { type?: unknown }).type !== 'stream') return undefined;
  return { item: item as Record<string, unknown>, data: body.data };
}

/**
 * Memory for the next `n` bytes of a stream, at the stream offset they start at, or undefined
 * (the frame is read into the connection's own memory and reaches the stream as usual). The
 * bytes then reach the stream as a chunk that is a view of the memory given: an upload's staging
 * buffer, which then copies nothing (ByteStream.readInto).
 */
export type PayloadSink = (n: number) => Uint8Array | undefined;

/**
 * Options for `net.connect` that make the socket read into the buffers of the connection
 * `target()` returns once it exists (FramedConnection.readBuffer/onRead): no 'data' events.
 * Node asks for the first buffer while connecting, before the connection is built: it gets a
 * small one that no byte can reach before then.
 */
export function readInto(target: () => ReadTarget | undefined): { onread: { buffer: () => Uint8Array; callback: (n: number, buf: Uint8Array) => boolean } } {
  const early = Buffer.allocUnsafe(16 * 1024);
  return {
    onread: {
      buffer: () => target()?.readBuffer() ?? early,
      // true: go on reading (pausing is the connection's, through socket.pause()).
      callback: (n, buf) => { target()?.onRead(n, buf); return true; },
    },
  };
}
