// A walk over the structure of one CBOR item, before it is decoded, that bounds what decoding
// it can cost: the number of data items and the nesting depth. A 16 MiB frame of one-byte empty
// maps decodes to ~16 million objects (over 1 GiB of heap, seconds of CPU); the walk refuses it
// after reading the first bytes, without allocating. Servers apply it to every incoming frame.
import { VirtqError } from './errors.js';

/** What one incoming CBOR item may hold. */
export interface CborLimits {
  /** Data items, counting every container, map key, tag and scalar. */
  maxItems: number;
  /** Arrays and maps nested in one another. */
  maxDepth: number;
}

/**
 * The limits a server applies to calls: a call is small (the largest, a definition with every
 * disk and interface, is under a thousand items), so this bounds a decoded frame to a few MiB.
 */
export const DEFAULT_CALL_LIMITS: CborLimits = { maxItems: 65_536, maxDepth: 64 };

const BREAK = 0xff;

/**
 * Throws FRAME_TOO_LARGE when the first CBOR item in `bytes` exceeds `limits`, MALFORMED_FRAME
 * when its structure is truncated or invalid. Reads only headers; never allocates per item.
 */
export function checkCborLimits(bytes: Uint8Array, limits: CborLimits): void {
  // Per open container, how many items it still expects (Infinity: indefinite length, until a break).
  const open: number[] = [];
  const end = bytes.length;
  let pos = 0;
  let items = 0;
  for (;;) {
    if (pos >= end) throw malformed('unexpected end of data', pos);
    const initial = bytes[pos++] as number;
    if (initial === BREAK) {
      if (open.at(-1) !== Infinity) throw malformed('unexpected break', pos - 1);
      open.pop();
    } else {
      const major = initial >> 5;
      const info = initial & 0x1f;
      let arg = info;
      if (info >= 24 && info <= 27) {
        // The argument follows, big-endian, in 1, 2, 4 or 8 bytes.
        const size = 1 << (info - 24);
        if (pos + size > end) throw malformed('unexpected end of data', pos);
        arg = 0;
        for (let i = 0; i < size; i++) arg = arg * 256 + (bytes[pos + i] as number);
        pos += size;
      } else if (info === 31 && major >= 2 && major <= 5) {
        arg = Infinity;
      } else if (info > 27) {
        throw malformed(`reserved additional information ${info}`, pos - 1);
      }
      if (++items > limits.maxItems) throw new VirtqError('FRAME_TOO_LARGE', `frame holds more than ${limits.maxItems} CBOR items`);
      // A tag's content is the next item, in the tag's place.
      if (major === 6) continue;
      if ((major === 2 || major === 3) && arg !== Infinity) {
        if (pos + arg > end) throw malformed('unexpected end of data', pos);
        pos += arg;
      } else if (major >= 2 && major <= 5) {
        const count = major === 5 ? arg * 2 : arg;
        if (count > 0) {
          if (major >= 4 && open.length >= limits.maxDepth) {
            throw new VirtqError('FRAME_TOO_LARGE', `frame nests arrays and maps deeper than ${limits.maxDepth} levels`);
          }
          open.push(count);
          continue;
        }
      }
    }
    // One item is complete: count it against its container, closing every container it completes.
    for (;;) {
      const top = open.length - 1;
      if (top < 0) return;
      const left = open[top] as number;
      if (left === Infinity) break;
      if (left > 1) {
        open[top] = left - 1;
        break;
      }
      open.pop();
    }
  }
}

function malformed(why: string, at: number): VirtqError {
  return new VirtqError('MALFORMED_FRAME', `frame is not valid CBOR: ${why} at byte ${at}`);
}
