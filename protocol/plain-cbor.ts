// Plain CBOR, by hand: the maps, arrays, text, byte strings, numbers, booleans and nulls every
// message but a rare one is made of, encoded and decoded as protocol/codec.ts's cbor-x gives them,
// in small functions that touch little memory. A daemon sleeps between calls, and each call then
// pays for every piece of code it wakes: cbor-x's large encoder and decoder, with the walk that
// bounds a frame before it is decoded, were a server's largest share above a bare Node round trip
// (0.13 of 0.27 ms; bench/RESULTS.md, session 34). Anything else (tags, big integers, text that is
// not well-formed, indefinite lengths, an item over its limits) throws NotPlainCbor, and the codec
// hands the value to cbor-x, checked as before: so what is accepted, refused, and decoded never
// differs from cbor-x's. The CLI's fast path (cli/fast-call.ts) speaks this alone.

/** The value is not plain CBOR as defined above: cbor-x must take it. */
export class NotPlainCbor extends Error {}

const notPlain = (why: string): never => {
  throw new NotPlainCbor(why);
};

/** Bounds the decoder keeps to, as protocol/cbor-limits.ts counts them (past them: NotPlainCbor). */
export interface PlainLimits {
  maxItems: number;
  maxDepth: number;
}

/** Without limits of the caller's: nesting is still bounded, so a deep item cannot overflow the stack here. */
const NO_LIMITS: PlainLimits = { maxItems: Infinity, maxDepth: 64 };

/** Items larger than this are decoded through one Latin-1 copy of their bytes (see decodePlainCbor). */
const LARGE_ITEM_BYTES = 2048;

/** A character outside ASCII (in a Latin-1 slice: a byte above 0x7f). */
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Decodes `bytes`, exactly one CBOR item, to the value cbor-x (maps as objects) gives; throws
 * NotPlainCbor for anything else, and once the item holds more than `limits` allow (counted as
 * checkCborLimits counts: every item, map keys included; each non-empty array or map a level).
 *
 * The position, the bytes and their text live in closure variables, not in an object's fields: the
 * decoder runs in V8's interpreter and baseline tiers, where each `this.at` is a property load through
 * an inline cache, and those loads were the largest share of decoding a 200-row listing (callgrind's
 * Builtins_LoadIC; bench/RESULTS.md, issue 15, session 11).
 */
export function decodePlainCbor(bytes: Uint8Array, limits: PlainLimits = NO_LIMITS): unknown {
  const src = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = src.length;
  const { maxItems, maxDepth } = limits;
  let at = 0;
  let items = 0;
  // A small item (a call, most replies) is read byte by byte in JavaScript alone: after an idle
  // pause each call into Node or V8's runtime wakes code of its own, and the Latin-1 copy, the key
  // cache and the regular expression below cost a server ~0.02 ms more per call (session 34).
  // A large one (a listing) is read as below, where those pay for themselves many times over.
  const large = end > LARGE_ITEM_BYTES;
  // The item's bytes as Latin-1 text, made once in C++: a text string whose bytes are all ASCII
  // is then a slice of it (ASCII is the same in Latin-1 as in UTF-8), with no call into Node per
  // string (a listing of 200 rows has some 3,000). Only strings are checked, never the whole item:
  // every reply has bytes above 0x7f (heads of maps and arrays, true and false), so a check of
  // the whole item never let the slices be used (bench/RESULTS.md, issue 15, session 12).
  const latin1 = large ? src.toString('latin1') : '';
  // Whether the last text read was all ASCII: only those keys are kept for key() to match.
  let lastAscii = false;
  // The keys of the last map read with each number of keys: a listing's rows repeat one set of keys
  // in one order, so a key that matches its cached one is that string (already internalized by its
  // first use as a property name), with no new string made or looked up.
  const keysBySize = large ? new Map<number, string[]>() : undefined;

  // The head's argument: inline, or in 1, 2 or 4 bytes. Eight-byte ones (cbor-x gives BigInts or
  // checks lengths there) and indefinite lengths are not taken.
  function arg(info: number): number {
    if (info < 24) return info;
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 0;
    if (n === 0) return notPlain(`additional information ${info}`);
    if (at + n > end) return notPlain('truncated');
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + (src[at + i] as number);
    at += n;
    return v;
  }

  function text(length: number): string {
    const stop = at + length;
    if (stop > end) return notPlain('truncated');
    if (!large) {
      let s = '';
      let i = at;
      for (; i < stop && (src[i] as number) < 0x80; i++) s += String.fromCharCode(src[i] as number);
      if (i === stop) {
        at = stop;
        return s;
      }
    } else {
      const slice = latin1.slice(at, stop);
      if (!NON_ASCII.test(slice)) {
        at = stop;
        lastAscii = true;
        return slice;
      }
    }
    // Node's decoder in C++, no byte loop in JS: one such loop was hot enough for V8 to spend a
    // TurboFan compile on it in every `list` of 200 rows (bench/RESULTS.md, issue 15, session 10).
    const s = src.toString('utf8', at, stop);
    // Invalid UTF-8 (a lone surrogate, say) cbor-x decodes its own way: not ours to guess.
    if (s.includes('\ufffd')) notPlain('text that is not plain UTF-8');
    at = stop;
    lastAscii = false;
    return s;
  }

  // A map's key in a large item: the cached one when the bytes are the same text, else read as any item.
  function key(keys: string[], i: number, depth: number): unknown {
    const cached = keys[i];
    if (cached !== undefined && at < end) {
      const token = src[at] as number;
      const length = cached.length;
      // A short text head (major type 3, length inline) of the cached key's length, then its
      // bytes (the cached key is all ASCII: one byte a character).
      if (length < 24 && token === (0x60 | length) && latin1.startsWith(cached, at + 1)) {
        if (++items > maxItems) notPlain(`more than ${maxItems} items`);
        at += 1 + length;
        lastAscii = true;
        return cached;
      }
    }
    lastAscii = false;
    const k = read(depth);
    if (lastAscii && typeof k === 'string') keys[i] = k;
    return k;
  }

  // `depth`: the non-empty arrays and maps this item is inside.
  function read(depth: number): unknown {
    if (at >= end) return notPlain('truncated');
    // Counted here, not in a function of its own: each function a call wakes costs it (see above).
    if (++items > maxItems) notPlain(`more than ${maxItems} items`);
    const token = src[at++] as number;
    const major = token >> 5;
    const info = token & 0x1f;
    if (major === 7) {
      switch (info) {
        case 20: return false;
        case 21: return true;
        case 22: return null;
        case 23: return undefined;
        case 26: { if (at + 4 > end) notPlain('truncated'); const v = src.readFloatBE(at); at += 4; return v; }
        case 27: { if (at + 8 > end) notPlain('truncated'); const v = src.readDoubleBE(at); at += 8; return v; }
        default: return notPlain(`simple value ${info}`);
      }
    }
    const n = arg(info);
    switch (major) {
      case 0: return n;
      case 1: return -1 - n;
      case 2: {
        if (n > end - at) notPlain('truncated');
        // As cbor-x gives a byte string: a view of the item's own memory, of the item's class (a Buffer's is a Buffer).
        const view = bytes.subarray(at, at + n);
        at += n;
        return view;
      }
      case 3: return text(n);
      case 4: {
        if (n > end - at) notPlain('truncated');
        if (n > 0 && depth >= maxDepth) notPlain(`nested deeper than ${maxDepth}`);
        const array = new Array<unknown>(n);
        for (let i = 0; i < n; i++) array[i] = read(depth + 1);
        return array;
      }
      case 5: {
        if (n > (end - at) / 2) notPlain('truncated');
        if (n > 0 && depth >= maxDepth) notPlain(`nested deeper than ${maxDepth}`);
        const object: Record<string, unknown> = {};
        let keys = keysBySize?.get(n);
        if (keysBySize !== undefined && keys === undefined) keysBySize.set(n, keys = []);
        for (let i = 0; i < n; i++) {
          const k = keys === undefined ? read(depth + 1) : key(keys, i, depth + 1);
          if (typeof k !== 'string') return notPlain('a key that is not text');
          // As cbor-x's safeKey: no prototype pollution through the wire.
          object[k === '__proto__' ? '__proto_' : k] = read(depth + 1);
        }
        return object;
      }
      // Tags (dates, typed arrays, records).
      default: return notPlain(`major type ${major}`);
    }
  }

  const value = read(0);
  if (at !== end) notPlain('bytes after the item');
  return value;
}

/** ES2024's String.prototype.isWellFormed (in every Node virtq runs on; the project's lib is ES2023). */
type WellFormedCheck = string & { isWellFormed(): boolean };

/** Text up to this many UTF-16 units is written byte by byte in JavaScript (see text() below). */
const SHORT_TEXT = 64;

/** Containers nested deeper than this are left to cbor-x (as a cyclic object is). */
const ENCODE_MAX_DEPTH = 64;

/**
 * `value` as one CBOR item whose decoding (by cbor-x, or decodePlainCbor) gives what cbor-x's own
 * encoding of it gives: integers of 32 bits and less as integers, any other number as a float64,
 * as cbor-x writes them; shortest heads (cbor-x writes a map's in 3 bytes: CBOR allows both).
 * A Uint8Array (a Buffer too) is a byte string. Throws NotPlainCbor for objects that are not plain
 * (other typed arrays, dates, maps, class instances), text that is not well-formed UTF-16, and
 * anything else cbor-x writes its own way. With `headroom`, the item starts that many bytes in (for
 * a frame's length, written by the caller: no second buffer and copy per frame).
 */
export function encodePlainCbor(value: unknown, headroom = 0): Buffer {
  let out = Buffer.allocUnsafe(256);
  let at = headroom;

  function room(n: number): void {
    if (at + n <= out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, at + n));
    out.copy(bigger, 0, 0, at);
    out = bigger;
  }

  // Major type `major` with argument `n` (an unsigned integer below 2^32), in the shortest form.
  function head(major: number, n: number): void {
    room(5);
    const m = major << 5;
    if (n < 24) out[at++] = m | n;
    else if (n < 0x100) { out[at++] = m | 24; out[at++] = n; }
    else if (n < 0x10000) { out[at++] = m | 25; out.writeUInt16BE(n, at); at += 2; }
    else { out[at++] = m | 26; out.writeUInt32BE(n, at); at += 4; }
  }

  function text(s: string): void {
    const n = s.length;
    // Short text (names, keys) byte by byte in JavaScript, as decodePlainCbor reads it, and for the same reason.
    if (n <= SHORT_TEXT) {
      const start = at;
      head(3, n);
      room(n);
      let i = 0;
      for (let c = 0; i < n && (c = s.charCodeAt(i)) < 0x80; i++) out[at++] = c;
      if (i === n) return;
      at = start;
    } else if (!NON_ASCII.test(s)) {
      head(3, n);
      room(n);
      at += out.write(s, at, n, 'latin1');
      return;
    }
    if (!(s as WellFormedCheck).isWellFormed()) notPlain('text with a lone surrogate');
    const length = Buffer.byteLength(s, 'utf8');
    head(3, length);
    room(length);
    at += out.write(s, at, length, 'utf8');
  }

  function number(v: number): void {
    if (Number.isInteger(v) && v >= -0x1_0000_0000 && v <= 0xffff_ffff) {
      // -0 too goes as the integer 0, as cbor-x writes it.
      if (v >= 0) head(0, v);
      else head(1, -1 - v);
      return;
    }
    room(9);
    out[at++] = 0xfb;
    at = out.writeDoubleBE(v, at);
  }

  function write(v: unknown, depth: number): void {
    switch (typeof v) {
      case 'string': return text(v);
      case 'number': return number(v);
      case 'boolean': room(1); out[at++] = v ? 0xf5 : 0xf4; return;
      case 'undefined': room(1); out[at++] = 0xf7; return;
      case 'object': {
        if (v === null) { room(1); out[at++] = 0xf6; return; }
        if (depth >= ENCODE_MAX_DEPTH) notPlain(`nested deeper than ${ENCODE_MAX_DEPTH}`);
        if (Array.isArray(v)) {
          head(4, v.length);
          for (const item of v) write(item, depth + 1);
          return;
        }
        if (v instanceof Uint8Array) {
          head(2, v.length);
          room(v.length);
          out.set(v, at);
          at += v.length;
          return;
        }
        if (Object.getPrototypeOf(v) !== Object.prototype) notPlain('an object that is not plain');
        const keys = Object.keys(v);
        head(5, keys.length);
        for (const k of keys) {
          text(k);
          write((v as Record<string, unknown>)[k], depth + 1);
        }
        return;
      }
      default: notPlain(typeof v);
    }
  }

  write(value, 0);
  return out.subarray(0, at);
}
