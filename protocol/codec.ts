// The only file that imports the CBOR library. Plain CBOR (no cbor-x records or structure
// sharing), maps decoded as plain objects, so any CBOR peer can speak the protocol.
import { Encoder } from 'cbor-x';
import { checkCborLimits, type CborLimits } from './cbor-limits.js';
import { VirtqError } from './errors.js';

/** Encodes and decodes one CBOR item. Each connection owns one (cbor-x keeps scratch buffers). */
export interface Codec {
  encode(value: unknown): Uint8Array;
  /** Decodes exactly one item; throws MALFORMED_FRAME on any failure, FRAME_TOO_LARGE past the limits. */
  decode(bytes: Uint8Array): unknown;
}

/** A fresh codec; with `limits`, every item is checked against them before it is decoded. */
export function createCodec(limits?: CborLimits): Codec {
  const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, structuredClone: false, tagUint8Array: false });
  return {
    encode: (value) => cbor.encode(value),
    decode(bytes) {
      if (limits !== undefined) checkCborLimits(bytes, limits);
      try {
        return cbor.decode(bytes);
      } catch (err) {
        throw new VirtqError('MALFORMED_FRAME', `frame is not valid CBOR: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  };
}
