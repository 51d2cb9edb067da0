// The journal's on-disk record: one line per record, `CRC32(json) json\n`, with the JSON holding
// `{seq, ts, body}`. A record is valid only whole: a line without its newline (a write torn by a
// crash) or whose checksum does not match is never returned, so a reader sees whole records or none.

/** One journal record: its sequence number (per VM, from 1, strictly increasing), when it was written, and what it says. */
export interface JournalRecord {
  seq: number;
  /** Milliseconds since the epoch. */
  ts: number;
  body: Record<string, unknown>;
}

/** What parsing one segment found. */
export interface ParsedSegment {
  records: JournalRecord[];
  /** Bytes up to the end of the last valid record: a writer truncates what follows (a torn tail). */
  validBytes: number;
  /** Lines that were not valid records (torn or corrupt), skipped. */
  dropped: number;
}

const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (IEEE) of `data`. An indexed loop, not `for...of`: a restarted virtqemud checks every
 * VM's journal tail before its first listing, in code not yet optimized, where the iterator
 * protocol costs ~1 µs a byte (12-17 ms of CPU for 50 VMs; issue 15 target 4, session 12).
 */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  const table = CRC_TABLE;
  for (let i = 0, n = data.length; i < n; i++) c = (table[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The bytes of one record line. */
export function encodeRecord(rec: JournalRecord): Buffer {
  const json = Buffer.from(JSON.stringify({ seq: rec.seq, ts: rec.ts, body: rec.body }), 'utf8');
  const crc = crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${crc} `, 'ascii'), json, Buffer.from('\n', 'ascii')]);
}

function decodeLine(line: Buffer): JournalRecord | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const json = line.subarray(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.subarray(0, 8).toString('ascii')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { seq, ts, body } = v as Record<string, unknown>;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || typeof ts !== 'number' || typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  return { seq: seq as number, ts, body: body as Record<string, unknown> };
}

/**
 * The valid records of one segment's bytes, in file order, each with a sequence number above
 * the one before it and above `after` (a record that breaks the order is dropped: no reader ever
 * sees a sequence number twice).
 */
export function parseSegment(data: Buffer, after = 0): ParsedSegment {
  const records: JournalRecord[] = [];
  let pos = 0;
  let validBytes = 0;
  let dropped = 0;
  let last = after;
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) {
      dropped++; // the torn tail of a write a crash cut short
      break;
    }
    const rec = decodeLine(data.subarray(pos, nl));
    pos = nl + 1;
    if (rec === undefined || rec.seq <= last) {
      dropped++;
      continue;
    }
    last = rec.seq;
    records.push(rec);
    validBytes = pos;
  }
  return { records, validBytes, dropped };
}
