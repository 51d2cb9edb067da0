// The only file that imports the CBOR library. Plain CBOR (no cbor-x records or structure
// sharing), maps decoded as plain objects, so any CBOR peer can speak the protocol. Messages go
// through plain-cbor.ts first: the same values, in far less code for an idle daemon to wake.
import { Encoder } from 'cbor-x';
import { checkCborLimits, type CborLimits } from './cbor-limits.js';
import { VirtqError } from './errors.js';
import { encodeFrame, FRAME_HEADER_BYTES, sealFrame } from './framing.js';
import { decodePlainCbor, encodePlainCbor, NotPlainCbor, type PlainLimits } from './plain-cbor.js';

/** Encodes and decodes one CBOR item. Each connection owns one (cbor-x keeps scratch buffers). */
export interface Codec {
  encode(value: unknown): Uint8Array;
  /** `value` as one frame (framing.ts's encodeFrame of its encoding); FRAME_TOO_LARGE past `maxFrameBytes`. */
  frame(value: unknown, maxFrameBytes: number): Buffer;
  /** Decodes exactly one item; throws MALFORMED_FRAME on any failure, FRAME_TOO_LARGE past the limits. */
  decode(bytes: Uint8Array): unknown;
}

/**
 * Items up to this size are tried as plain CBOR first: a call or reply is far smaller, and the
 * plain decoder makes a Latin-1 copy of what it reads, which a 16 MiB frame should not cost.
 */
export const PLAIN_DECODE_MAX_BYTES = 256 * 1024;
/** Without limits of the caller's (a client reading replies), the plain decoder still bounds nesting; deeper goes to cbor-x. */
const PLAIN_ONLY_NESTING: PlainLimits = { maxItems: Infinity, maxDepth: 64 };

/** A fresh codec; with `limits`, every item is checked against them before it is decoded. */
export function createCodec(limits?: CborLimits): Codec {
  const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, structuredClone: false, tagUint8Array: false });
  const plainLimits = limits ?? PLAIN_ONLY_NESTING;
  return {
    encode(value) {
      try {
        return encodePlainCbor(value);
      } catch (err) {
        if (!(err instanceof NotPlainCbor)) throw err;
        return cbor.encode(value);
      }
    },
    frame(value, maxFrameBytes) {
      let out: Buffer;
      try {
        out = encodePlainCbor(value, FRAME_HEADER_BYTES);
      } catch (err) {
        if (!(err instanceof NotPlainCbor)) throw err;
        return encodeFrame(cbor.encode(value), maxFrameBytes);
      }
      return sealFrame(out, maxFrameBytes);
    },
    decode(bytes) {
      // Past its limits too, the plain decoder stops and leaves the item to the walk below, which
      // refuses it with the error it always gave.
      if (bytes.length <= PLAIN_DECODE_MAX_BYTES) {
        try {
          return decodePlainCbor(bytes, plainLimits);
        } catch (err) {
          if (!(err instanceof NotPlainCbor)) throw err;
        }
      }
      if (limits !== undefined) checkCborLimits(bytes, limits);
      try {
        return cbor.decode(bytes);
      } catch (err) {
        throw new VirtqError('MALFORMED_FRAME', `frame is not valid CBOR: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  };
}
