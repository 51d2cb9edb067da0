// A frame body, or a stream frame's byte body, left in the pieces the socket's reads gave, and
// where the byte string ending a stream frame starts: a receiver of large stream chunks then
// copies nothing (framing.ts's decoder and connection.ts's stream frames use both).
/**
 * A frame body, or a stream frame's byte body, left in the pieces it arrived in (subarrays of the
 * socket's reads) rather than joined into one fresh buffer: a receiver of large stream chunks
 * then copies nothing. The pieces are the receiver's to keep.
 */
export class BytePieces {
  /** Bytes in all pieces. */
  readonly length: number;

  constructor(readonly pieces: Buffer[]) {
    this.length = pieces.reduce((n, p) => n + p.length, 0);
  }

  /** The pieces joined (one copy). */
  join(): Buffer {
    return this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces, this.length);
  }

  /** The pieces from byte `offset` on. */
  from(offset: number): BytePieces {
    const out: Buffer[] = [];
    let skip = offset;
    for (const p of this.pieces) {
      if (skip >= p.length) { skip -= p.length; continue; }
      out.push(skip === 0 ? p : p.subarray(skip));
      skip = 0;
    }
    return new BytePieces(out);
  }

  /** The first `n` bytes (or fewer, when there are fewer), copied into one buffer. */
  head(n: number): Buffer {
    const first = this.pieces[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const some: Buffer[] = [];
    let got = 0;
    for (const p of this.pieces) {
      if (got >= n) break;
      some.push(p);
      got += p.length;
    }
    return Buffer.concat(some, Math.min(n, got));
  }
}

/**
 * Where the byte string ending a message starts, when `head` (the first bytes of a frame body of
 * `frameLength` bytes) holds a CBOR map of text keys and plain values (text, integers, simple
 * values) whose last entry is `body`, a definite-length byte string running to the frame's end:
 * the shape encodeBytesBodyFrame makes. `at` is its head byte, `data` its first byte of content.
 * Undefined for anything else (the caller decodes the joined frame as usual).
 */
export function bytesBodyAt(head: Uint8Array, frameLength: number): { at: number; data: number } | undefined {
  let pos = 0;
  // Reads an item's head: its major type and argument; undefined past `head` or when indefinite.
  const item = (): { major: number; arg: number } | undefined => {
    const initial = head[pos++];
    if (initial === undefined) return undefined;
    const info = initial & 0x1f;
    const size = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
    if (size < 0 || pos + size > head.length) return undefined;
    let arg = info < 24 ? info : 0;
    for (let i = 0; i < size; i++) arg = arg * 256 + (head[pos++] as number);
    return { major: initial >> 5, arg };
  };
  const map = item();
  if (map === undefined || map.major !== 5 || map.arg < 1 || map.arg > 16) return undefined;
  for (let entry = 0; entry < map.arg; entry++) {
    const key = item();
    if (key === undefined || key.major !== 3 || pos + key.arg > head.length) return undefined;
    const isBody = key.arg === 4 && Buffer.from(head.buffer, head.byteOffset + pos, 4).toString('latin1') === 'body';
    pos += key.arg;
    const at = pos;
    const value = item();
    if (value === undefined) return undefined;
    if (entry === map.arg - 1) {
      return isBody && value.major === 2 && pos + value.arg === frameLength ? { at, data: pos } : undefined;
    }
    // Integers and simple values are whole already; text is skipped; anything else is not this shape.
    if (value.major === 3) pos += value.arg;
    else if (value.major !== 0 && value.major !== 1 && value.major !== 7) return undefined;
    if (pos > head.length) return undefined;
  }
  return undefined;
}
