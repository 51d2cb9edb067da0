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

/**
 * Asks decodeFastCbor to read one array of maps as a table's cells, not as objects: the array
 * under `key` in a map at depth 2 (a reply's body: listDomains' `domains`). Each map's values for
 * `columns` become `cell(value, column)`, its other values are skipped without making a string, and
 * no object is made for a row: at 200 rows the objects, their keys' stores and the strings nobody
 * prints were most of decoding a listing (bench/RESULTS.md, issue 15, session 13).
 */
export interface FastTableSpec {
  readonly key: string;
  readonly columns: readonly string[];
  /** A value's cell text, as the full CLI's renderer formats it (cli/render.ts's formatValue). */
  cell(value: unknown, column: string): string;
}

/** A table read by a FastTableSpec: `cells` row after row, `columns.length` cells a row, a missing value as `cell(undefined)`. */
export class FastTable {
  constructor(readonly rows: number, readonly cells: readonly string[]) {}
}

/**
 * A row's shape as a sticky RegExp over the reply's Latin-1 text (one character a byte): the map's
 * head and each key's bytes exactly, each value as the class of items of its kind (rowPiece), the
 * shown columns' values captured (`caps`: their column for each capture). A match is the row read
 * exactly as the item-by-item reader reads it: every piece's head fixes its length, and a text
 * matched is all ASCII, the same string in Latin-1 as in UTF-8.
 */
interface RowTemplate {
  readonly re: RegExp;
  readonly caps: readonly number[];
}

/** Templates made at most for one table (a listing's rows come in a few shapes: running VMs add pids). */
const MAX_ROW_TEMPLATES = 4;

/** `text` (Latin-1, one character a byte) as a RegExp source matching exactly it. */
function bytesSource(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) out += `\\x${text.charCodeAt(i).toString(16).padStart(2, '0')}`;
  return out;
}

// Any short text (a head of 0x60–0x77, then that many ASCII bytes): the head picks the one branch.
const SHORT_TEXT = Array.from({ length: 24 }, (_, n) => `\\x${(0x60 + n).toString(16)}[\\x00-\\x7f]{${n}}`).join('|');
// An unsigned integer below 2^32 (a pid).
const UINT = '[\\x00-\\x17]|\\x18[\\x00-\\xff]|\\x19[\\x00-\\xff]{2}|\\x1a[\\x00-\\xff]{4}';

/** The RegExp piece for items of the kind at `at` (true/false, a short text, a pid unless `shown`), or undefined for others. */
function valuePiece(src: Buffer, at: number, shown: boolean): string | undefined {
  const head = src[at] ?? 0xff;
  if (head === 0xf4 || head === 0xf5) return '[\\xf4\\xf5]';
  if (head >= 0x60 && head < 0x78) return `(?:${SHORT_TEXT})`;
  if (head <= 0x1a && !shown) return `(?:${UINT})`;
  // A longer text not shown (a UUID): its head and length exactly, as this row has it.
  const length = src[at + 1] ?? 0;
  if (head === 0x78 && !shown && length >= 24) return `\\x78\\x${length.toString(16)}[\\x00-\\x7f]{${length}}`;
  return undefined;
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
export function decodeFastCbor(bytes: Buffer, table?: FastTableSpec): unknown {
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
  // How many maps enclose the item being read: a reply's body is read at depth 2.
  let depth = 0;

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
        const keys = keysOf(n);
        depth += 1;
        for (let i = 0; i < n; i++) {
          const k = key(keys[i]);
          if (typeof k !== 'string') return unsupported('a key that is not text');
          if (lastAscii) keys[i] = k;
          // As cbor-x's safeKey: no prototype pollution through the wire.
          object[k === '__proto__' ? '__proto_' : k] = depth === 2 && k === table?.key && ((src[at] ?? 0) >> 5) === 4 ? cells(table) : read();
        }
        depth -= 1;
        return object;
      }
      // Byte strings (cbor-x's Buffer subclass) and tags (dates, typed arrays, records).
      default: return unsupported(`major type ${major}`);
    }
  }

  // The key cache for maps of `n` keys.
  function keysOf(n: number): string[] {
    let keys = keysBySize.get(n);
    if (keys === undefined) keysBySize.set(n, keys = []);
    return keys;
  }

  // Passes over one item: text unread (its bytes are not checked as UTF-8: a cell never shows
  // it), anything else read as usual, so what read() refuses is refused here too.
  function skip(): void {
    const token = src[at];
    if (token === undefined || token >> 5 !== 3) {
      read();
      return;
    }
    at += 1;
    const n = arg(token & 0x1f);
    if (n > end - at) unsupported('truncated');
    at += n;
  }

  // The array at `at` (its head not read yet) read as `spec`'s table; an item that is not a map refuses.
  // A row is first tried against the row templates made from earlier rows (rowTemplate): one
  // sticky RegExp match in V8's regexp code takes the whole row, where reading it item by item in
  // the interpreter cost ~20,000 instructions a row (bench/RESULTS.md, issue 15, session 13). A
  // row no template matches is read item by item, and its shape becomes a template.
  function cells(spec: FastTableSpec): FastTable {
    const columns = spec.columns;
    const width = columns.length;
    const missing = columns.map((c) => spec.cell(undefined, c));
    const yes = columns.map((c) => spec.cell(true, c));
    const no = columns.map((c) => spec.cell(false, c));
    const templates: RowTemplate[] = [];
    const made = new Set<string>();
    const rows = arg((src[at++] as number) & 0x1f);
    if (rows > end - at) unsupported('truncated');
    const out = new Array<string>(rows * width);
    depth += 1;
    rows: for (let r = 0; r < rows; r++) {
      const base = r * width;
      for (let c = 0; c < width; c++) out[base + c] = missing[c] as string;
      for (const t of templates) {
        t.re.lastIndex = at;
        const m = t.re.exec(latin1);
        if (m === null) continue;
        for (let j = 0; j < t.caps.length; j++) {
          const c = t.caps[j] as number;
          const g = m[j + 1] as string;
          const h = g.charCodeAt(0);
          out[base + c] = (h === 0xf5 ? yes[c] : h === 0xf4 ? no[c] : spec.cell(g.slice(1), columns[c] as string)) as string;
        }
        at = t.re.lastIndex;
        continue rows;
      }
      const rowStart = at;
      const token = src[at++];
      if (token === undefined || token >> 5 !== 5) return unsupported('a row that is not a map');
      const n = arg(token & 0x1f);
      if (n > (end - at) / 2) unsupported('truncated');
      // The row's shape as a template's pieces: undefined once a value has no piece (rowPiece).
      let pieces: string[] | undefined = [bytesSource(latin1.slice(rowStart, at))];
      const caps: number[] = [];
      const keys = keysOf(n);
      for (let i = 0; i < n; i++) {
        const keyStart = at;
        const k = key(keys[i]);
        if (typeof k !== 'string') return unsupported('a key that is not text');
        if (lastAscii) keys[i] = k;
        const c = columns.indexOf(k);
        // A shown column's capture is a head and its text, or true/false: never a pid's bytes.
        const piece = valuePiece(src, at, c >= 0);
        if (pieces !== undefined && piece !== undefined) {
          pieces.push(bytesSource(latin1.slice(keyStart, at)), c < 0 ? piece : `(${piece})`);
          if (c >= 0) caps.push(c);
        } else {
          pieces = undefined;
        }
        // A repeated key: the last value, as an object's property would hold.
        if (c < 0) skip();
        else out[base + c] = spec.cell(read(), k);
      }
      const source = pieces?.join('');
      if (source !== undefined && !made.has(source) && templates.length < MAX_ROW_TEMPLATES) {
        made.add(source);
        templates.push({ re: new RegExp(source, 'y'), caps });
      }
    }
    depth -= 1;
    return new FastTable(rows, out);
  }

  const value = read();
  if (at !== end) unsupported('bytes after the item');
  return value;
}
