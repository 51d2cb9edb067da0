// A VM's journal directory: segment files named by the first sequence number they may hold
// (`seg-0000000000000001.log`), oldest first, and the `writer` file naming the process that
// appends to it. Reading needs no lock: segments only grow at their end, and are deleted whole.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSegment, type JournalRecord } from './record-format.js';

const SEGMENT_RE = /^seg-(\d{16})\.log$/;

/** One segment file. */
export interface Segment {
  first: number;
  path: string;
}

/** The journal directory of VM `name` under a state directory (`lib/journal/NAME`). */
export function journalDir(stateDir: string, name: string): string {
  return join(stateDir, 'journal', name);
}

/** The file name of the segment whose first record is `first`. */
export function segmentName(first: number): string {
  return `seg-${String(first).padStart(16, '0')}.log`;
}

/** The segments in `dir`, oldest first; none when the directory does not exist. */
export function listSegments(dir: string): Segment[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Segment[] = [];
  for (const n of names) {
    const m = SEGMENT_RE.exec(n);
    if (m?.[1] !== undefined) out.push({ first: Number(m[1]), path: join(dir, n) });
  }
  return out.sort((a, b) => a.first - b.first);
}

/** Reads one segment (empty when it vanished: rotation deleted it). */
export function readSegment(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    return Buffer.alloc(0);
  }
}

/** What a read of the journal found. */
export interface JournalRead {
  records: JournalRecord[];
  /** The last sequence number in the journal (0 when it is empty). */
  lastSeq: number;
  /** Records skipped because they were torn or corrupt. */
  dropped: number;
}

/** Which records to read: after a sequence number, after a time, at most `limit` (the newest are kept when `newest`). */
export interface ReadFilter {
  afterSeq?: number;
  afterTime?: number;
  limit?: number;
  newest?: boolean;
}

/**
 * The valid records of the journal in `dir` that pass `filter`, in sequence order. Only segments
 * that can hold a record after `afterSeq` are read.
 */
export function readJournal(dir: string, filter: ReadFilter = {}): JournalRead {
  const segs = listSegments(dir);
  const after = filter.afterSeq ?? 0;
  let start = 0;
  for (let i = 0; i < segs.length; i++) if ((segs[i]?.first ?? 0) <= after + 1) start = i;
  const all: JournalRecord[] = [];
  let dropped = 0;
  let last = 0;
  for (let i = start; i < segs.length; i++) {
    const seg = segs[i];
    if (seg === undefined) continue;
    const parsed = parseSegment(readSegment(seg.path), last);
    dropped += parsed.dropped;
    for (const r of parsed.records) {
      last = r.seq;
      if (r.seq > after && (filter.afterTime === undefined || r.ts > filter.afterTime)) all.push(r);
    }
  }
  // A journal whose later segments are empty still ends where its earlier ones did.
  if (last === 0 && start > 0) last = readJournal(dir, { afterSeq: 0 }).lastSeq;
  const limit = filter.limit ?? Infinity;
  const records = all.length <= limit ? all : filter.newest === true ? all.slice(all.length - limit) : all.slice(0, limit);
  return { records, lastSeq: last, dropped };
}

/** The newest record for which `pick` is true, reading segments newest first. */
export function newestRecord(dir: string, pick: (r: JournalRecord) => boolean): JournalRecord | undefined {
  const segs = listSegments(dir);
  for (let i = segs.length - 1; i >= 0; i--) {
    const seg = segs[i];
    if (seg === undefined) continue;
    const { records } = parseSegment(readSegment(seg.path));
    for (let j = records.length - 1; j >= 0; j--) {
      const r = records[j];
      if (r !== undefined && pick(r)) return r;
    }
  }
  return undefined;
}

/**
 * The valid records written after `afterTime` (ms since the epoch), in sequence order, reading
 * segments newest first and stopping at the first that begins at or before it: what a VM's
 * shim journaled since a moment, without reading its older history.
 */
export function recordsAfterTime(dir: string, afterTime: number): JournalRecord[] {
  const segs = listSegments(dir);
  const out: JournalRecord[][] = [];
  for (let i = segs.length - 1; i >= 0; i--) {
    const seg = segs[i];
    if (seg === undefined) continue;
    const { records } = parseSegment(readSegment(seg.path));
    out.push(records.filter((r) => r.ts > afterTime));
    if (records.length > 0 && (records[0] as JournalRecord).ts <= afterTime) break;
  }
  return out.reverse().flat();
}

