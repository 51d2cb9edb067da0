// The protobuf bytes of etcd's KV.Range, written and read by hand: only the fields the fleet's
// read-only clients use (etcdserverpb.RangeRequest key, range_end, limit; RangeResponse kvs with
// their key and value, more). Everything else a reply carries is skipped by wire type, so
// fields etcd adds later are ignored, as protobuf readers must (docs/decisions/0024).

/** The request: keys from `key` up to (not including) `rangeEnd`, at most `limit` (0: no limit). */
export interface RangeRequest {
  key: Buffer;
  rangeEnd?: Buffer;
  limit?: number;
}

/** The reply: keys and values as raw bytes (views into the reply), and whether more keys follow. */
export interface RangeReply {
  kvs: Array<{ key: Buffer; value: Buffer }>;
  more: boolean;
}

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function bytesField(tag: number, b: Buffer): Buffer[] {
  return [Buffer.from([tag, ...varint(b.length)]), b];
}

/** RangeRequest as protobuf. */
export function encodeRangeRequest(r: RangeRequest): Buffer {
  const parts = bytesField(0x0a, r.key);
  if (r.rangeEnd !== undefined) parts.push(...bytesField(0x12, r.rangeEnd));
  if (r.limit !== undefined && r.limit > 0) parts.push(Buffer.from([0x18, ...varint(r.limit)]));
  return Buffer.concat(parts);
}

/** A reader over one protobuf message; throws on bytes that end inside a field. */
class Reader {
  pos: number;
  constructor(readonly buf: Buffer, start: number, readonly end: number) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('protobuf: a varint runs past the end');
      const b = this.buf[this.pos++] as number;
      // Revisions are int64: past 2^53 only their presence matters here, never their value.
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
    throw new Error('protobuf: a varint longer than 10 bytes');
  }

  /** The [start, end) of a length-delimited field's bytes, moving past them. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new Error('protobuf: a field runs past the end');
    this.pos = start + len;
    return [start, start + len];
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 2) this.span();
    else if (wireType === 1 || wireType === 5) this.pos += wireType === 1 ? 8 : 4;
    else throw new Error(`protobuf: unsupported wire type ${wireType}`);
    if (this.pos > this.end) throw new Error('protobuf: a field runs past the end');
  }
}

function decodeKeyValue(buf: Buffer, start: number, end: number): { key: Buffer; value: Buffer } {
  const r = new Reader(buf, start, end);
  let key = buf.subarray(0, 0);
  let value = buf.subarray(0, 0);
  while (r.pos < end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if ((field === 1 || field === 5) && (tag & 7) === 2) {
      const [s, e] = r.span();
      if (field === 1) key = buf.subarray(s, e);
      else value = buf.subarray(s, e);
    } else {
      r.skip(tag & 7);
    }
  }
  return { key, value };
}

/** RangeResponse from protobuf. */
export function decodeRangeReply(buf: Buffer): RangeReply {
  const r = new Reader(buf, 0, buf.length);
  const kvs: RangeReply['kvs'] = [];
  let more = false;
  while (r.pos < buf.length) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if (field === 2 && (tag & 7) === 2) {
      const [s, e] = r.span();
      kvs.push(decodeKeyValue(buf, s, e));
    } else if (field === 3 && (tag & 7) === 0) {
      more = r.varint() !== 0;
    } else {
      r.skip(tag & 7);
    }
  }
  return { kvs, more };
}
