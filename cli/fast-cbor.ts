// The CBOR the CLI's fast path speaks (cli/fast-call.ts, decision 0028): it encodes one call and
// decodes one reply, without cbor-x. cbor-x is half of the fast bundle's text, and its large
// `read` decoded a 200-row listing in V8's interpreter: together most of what `virtq list` paid
// above a bare Node client (bench/RESULTS.md, issue 15, session 10). The decoder takes only the
// plain CBOR virtqemud's encoder writes for these replies and gives the values protocol/codec.ts
// (cbor-x with maps as objects) would give; on anything else it throws FastCborUnsupported, and the
// fast path hands the command line, with nothing printed, to the full CLI.

/** The reply holds CBOR this decoder does not take as cbor-x would: the full CLI runs the command. */
export class FastCborUnsupported extends Error {}

const unsupported = (why: string): never => {
  throw new FastCborUnsupported(why);
};

/** A value the fast path sends: the message header and the call's arguments. */
export type FastCborValue = string | boolean | number | { readonly [key: string]: FastCborValue };

// Major type `major` with argument `n` (an unsigned integer below 2^32), as cbor-x writes it: the shortest form.
function head(out: number[], major: number, n: number): void {
  const m = major << 5;
  if (n < 24) out.push(m | n);
  else if (n < 0x100) out.push(m | 24, n);
  else if (n < 0x10000) out.push(m | 25, n >> 8, n & 0xff);
  else out.push(m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function encodeInto(out: number[], value: FastCborValue): void {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    head(out, 3, bytes.length);
    for (const b of bytes) out.push(b);
  } else if (typeof value === 'boolean') {
    out.push(value ? 0xf5 : 0xf4);
  } else if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) unsupported(`cannot encode ${value}`);
    head(out, 0, value);
  } else {
    const keys = Object.keys(value);
    head(out, 5, keys.length);
    for (const k of keys) {
      encodeInto(out, k);
      encodeInto(out, value[k] as FastCborValue);
    }
  }
}

/** `value` as one CBOR item (definite lengths, shortest heads, text keys). */
export function encodeFastCbor(value: FastCborValue): Buffer {
  const out: number[] = [];
  encodeInto(out, value);
  return Buffer.from(out);
}

/** A character outside ASCII (in a Latin-1 slice: a byte above 0x7f). */
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Decodes `bytes`, exactly one CBOR item, as protocol/codec.ts would; throws FastCborUnsupported otherwise.
 * The position, the bytes and their text live in closure variables, not in an object's fields: the
 * decoder runs in V8's interpreter and baseline tiers, where each `this.at` is a property load through
 * an inline cache, and those loads were the largest share of decoding a 200-row listing (callgrind's
 * Builtins_LoadIC; bench/RESULTS.md, issue 15, session 11).
 */
export function decodeFastCbor(bytes: Buffer): unknown {
  const src = bytes;
  const end = src.length;
  let at = 0;
  // The item's bytes as Latin-1 text, made once in C++: a text string whose bytes are all ASCII
  // is then a slice of it (ASCII is the same in Latin-1 as in UTF-8), with no call into Node per
  // string (a listing of 200 rows has some 3,000). Only strings are checked, never the whole item:
  // every reply has bytes above 0x7f (heads of maps and arrays, true and false), so a check of
  // the whole item never let the slices be used (bench/RESULTS.md, issue 15, session 12).
  const latin1 = src.toString('latin1');
  // Whether the last text read was all ASCII: only those keys are kept for key() to match.
  let lastAscii = false;
  // The keys of the last map read with each number of keys: a listing's rows repeat one set of keys
  // in one order, so a key that matches its cached one is that string (already internalized by its
  // first use as a property name), with no new string made or looked up.
  const keysBySize = new Map<number, string[]>();

  // The head's argument: inline, or in 1, 2 or 4 bytes. Eight-byte ones (cbor-x gives BigInts or
  // checks lengths there) and indefinite lengths are not taken.
  function arg(info: number): number {
    if (info < 24) return info;
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 0;
    if (n === 0) return unsupported(`additional information ${info}`);
    if (at + n > end) return unsupported('truncated');
    const v = n === 1 ? src[at] as number : n === 2 ? src.readUInt16BE(at) : src.readUInt32BE(at);
    at += n;
    return v;
  }

  function text(length: number): string {
    const stop = at + length;
    if (stop > end) return unsupported('truncated');
    const slice = latin1.slice(at, stop);
    if (!NON_ASCII.test(slice)) {
      at = stop;
      lastAscii = true;
      return slice;
    }
    // Node's decoder in C++, no byte loop in JS: one such loop was hot enough for V8 to spend a
    // TurboFan compile on it in every `list` of 200 rows (bench/RESULTS.md, issue 15, session 10).
    const s = src.toString('utf8', at, stop);
    // Invalid UTF-8 (a lone surrogate, say) cbor-x decodes its own way: not ours to guess.
    if (s.includes('\ufffd')) unsupported('text that is not plain UTF-8');
    at = stop;
    lastAscii = false;
    return s;
  }

  // A map's key: the cached one when the bytes are the same text, else read as any item.
  function key(cached: string | undefined): unknown {
    if (cached !== undefined && at < end) {
      const token = src[at] as number;
      const length = cached.length;
      // A short text head (major type 3, length inline) of the cached key's length, then its
      // bytes (the cached key is all ASCII: one byte a character).
      if (length < 24 && token === (0x60 | length) && latin1.startsWith(cached, at + 1)) {
        at += 1 + length;
        lastAscii = true;
        return cached;
      }
    }
    lastAscii = false;
    return read();
  }

  function read(): unknown {
    if (at >= end) return unsupported('truncated');
    const token = src[at++] as number;
    const major = token >> 5;
    const info = token & 0x1f;
    if (major === 7) {
      switch (info) {
        case 20: return false;
        case 21: return true;
        case 22: return null;
        case 23: return undefined;
        case 26: { if (at + 4 > end) unsupported('truncated'); const v = src.readFloatBE(at); at += 4; return v; }
        case 27: { if (at + 8 > end) unsupported('truncated'); const v = src.readDoubleBE(at); at += 8; return v; }
        default: return unsupported(`simple value ${info}`);
      }
    }
    const n = arg(info);
    switch (major) {
      case 0: return n;
      case 1: return -1 - n;
      case 3: return text(n);
      case 4: {
        if (n > end - at) unsupported('truncated');
        const array = new Array<unknown>(n);
        for (let i = 0; i < n; i++) array[i] = read();
        return array;
      }
      case 5: {
        if (n > (end - at) / 2) unsupported('truncated');
        const object: Record<string, unknown> = {};
        let keys = keysBySize.get(n);
        if (keys === undefined) keysBySize.set(n, keys = []);
        for (let i = 0; i < n; i++) {
          const k = key(keys[i]);
          if (typeof k !== 'string') return unsupported('a key that is not text');
          if (lastAscii) keys[i] = k;
          // As cbor-x's safeKey: no prototype pollution through the wire.
          object[k === '__proto__' ? '__proto_' : k] = read();
        }
        return object;
      }
      // Byte strings (cbor-x's Buffer subclass) and tags (dates, typed arrays, records).
      default: return unsupported(`major type ${major}`);
    }
  }

  const value = read();
  if (at !== end) unsupported('bytes after the item');
  return value;
}
