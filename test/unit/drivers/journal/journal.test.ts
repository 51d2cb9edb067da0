import { appendFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JournalWriter } from '../../../../drivers/journal/journal-writer.js';
import { encodeRecord, parseSegment } from '../../../../drivers/journal/record-format.js';
import { listSegments, newestRecord, readJournal } from '../../../../drivers/journal/segments.js';
import { claimWriter, otherWriterAlive, selfWriter } from '../../../../drivers/journal/writer-lock.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { tmpfsRoot, tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

describe('JournalWriter', () => {
  let root: TmpRoot;
  let clock: FakeClock;
  beforeEach(() => { root = tmpRoot(); clock = new FakeClock(); });
  afterEach(() => root.remove());
  const dir = () => root.path('journal', 'web1');

  it('numbers records from 1 and continues after a reopen', () => {
    const w = JournalWriter.open({ dir: dir(), clock });
    expect(w.append({ event: 'started' }).seq).toBe(1);
    expect(w.append({ event: 'stopped' }).seq).toBe(2);
    w.close();
    const again = JournalWriter.open({ dir: dir(), clock });
    expect(again.lastSeq).toBe(2);
    expect(again.append({ event: 'started' }).seq).toBe(3);
    again.close();
    expect(readJournal(dir()).records.map((r) => [r.seq, r.body['event']])).toEqual([[1, 'started'], [2, 'stopped'], [3, 'started']]);
  });

  // Chaos seed 28218: on a full disk write(2) took the part of a record that fit, without an
  // error; the record was counted as written and its event told with a number the journal lacked.
  it('on a full disk, counts as written only records that are whole, and refuses the rest with NO_SPACE', () => {
    const small = tmpfsRoot('64k');
    try {
      const w = JournalWriter.open({ dir: join(small.dir, 'journal'), clock, syncDelayMs: 60_000 });
      const given: number[] = [];
      let refused: unknown;
      for (let i = 0; i < 2000 && refused === undefined; i++) {
        try {
          given.push(w.append({ event: 'suspended', details: { pad: 'x'.repeat(37 + (i % 13)) } }).seq);
        } catch (err) {
          refused = err;
        }
      }
      expect(refused).toMatchObject({ code: 'NO_SPACE' });
      const read = readJournal(join(small.dir, 'journal'));
      expect(read.dropped).toBe(0);
      expect(read.records.map((r) => r.seq)).toEqual(given);
      w.close();
    } finally {
      small.remove();
    }
  });

  it('makes a record readable by another reader as soon as append returns (before any fsync)', () => {
    const w = JournalWriter.open({ dir: dir(), clock, syncDelayMs: 60_000 });
    w.append({ event: 'crashed' });
    expect(readJournal(dir()).records).toHaveLength(1);
    w.close();
  });

  it('drops a torn last record on read and cuts it on reopen, reusing its sequence number', () => {
    const w = JournalWriter.open({ dir: dir(), clock });
    w.append({ event: 'started' });
    w.append({ event: 'stopped' });
    w.close();
    const seg = listSegments(dir())[0]!.path;
    const full = statSync(seg).size;
    truncateSync(seg, full - 7); // a write cut short by a crash
    const read = readJournal(dir());
    expect(read.records.map((r) => r.seq)).toEqual([1]);
    expect(read.dropped).toBe(1);
    const again = JournalWriter.open({ dir: dir(), clock });
    expect(again.report.truncatedBytes).toBeGreaterThan(0);
    expect(again.append({ event: 'stopped' }).seq).toBe(2);
    again.close();
    expect(readJournal(dir())).toMatchObject({ lastSeq: 2, dropped: 0 });
  });

  it('skips a record whose checksum does not match, and garbage, without losing the rest', () => {
    const w = JournalWriter.open({ dir: dir(), clock });
    w.append({ event: 'started' });
    w.close();
    const seg = listSegments(dir())[0]!.path;
    const bad = encodeRecord({ seq: 2, ts: 1, body: { event: 'x' } });
    bad[12] = bad[12]! ^ 1;
    appendFileSync(seg, Buffer.concat([bad, Buffer.from('not a record\n'), encodeRecord({ seq: 3, ts: 1, body: { event: 'stopped' } })]));
    const read = readJournal(dir());
    expect(read.records.map((r) => r.seq)).toEqual([1, 3]);
    expect(read.dropped).toBe(2);
  });

  it('never returns a sequence number twice or out of order', () => {
    const lines = [1, 2, 2, 1, 3].map((seq) => encodeRecord({ seq, ts: seq, body: {} }));
    expect(parseSegment(Buffer.concat(lines)).records.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it('rotates segments and keeps the journal within its bound', () => {
    const w = JournalWriter.open({ dir: dir(), clock, segmentBytes: 1024, maxSegments: 3 });
    for (let i = 0; i < 500; i++) w.append({ event: 'reset', details: { i } });
    w.close();
    const files = readdirSync(dir()).filter((f) => f.endsWith('.log'));
    expect(files).toHaveLength(3);
    const bytes = files.reduce((n, f) => n + statSync(join(dir(), f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(3 * 1024);
    const read = readJournal(dir());
    expect(read.lastSeq).toBe(500);
    const seqs = read.records.map((r) => r.seq);
    expect(seqs.at(-1)).toBe(500);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    expect(readJournal(dir(), { afterSeq: 495 }).records.map((r) => r.seq)).toEqual([496, 497, 498, 499, 500]);
  });

  it('replaces an oversized body by a note, keeping the event', () => {
    const w = JournalWriter.open({ dir: dir(), clock, maxRecordBytes: 512 });
    w.append({ event: 'stopped', name: 'web1', details: { blob: 'x'.repeat(4000) } });
    w.close();
    const [rec] = readJournal(dir()).records;
    expect(rec?.body).toMatchObject({ event: 'stopped', name: 'web1', details: { truncated: true } });
  });

  it('settles flushed() once the batched fsync has run', async () => {
    const w = JournalWriter.open({ dir: dir(), clock, syncDelayMs: 100 });
    w.append({ event: 'started' });
    let done = false;
    const p = w.flushed().then(() => { done = true; });
    await Promise.resolve();
    expect(done).toBe(false);
    await clock.advance(100);
    await p;
    expect(done).toBe(true);
    w.close();
  });
});

describe('readJournal', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => root.remove());

  it('filters by sequence number, time and limit, and reads an absent journal as empty', async () => {
    const clock = new FakeClock(1000);
    const dir = root.path('j');
    const w = JournalWriter.open({ dir, clock });
    for (let i = 0; i < 5; i++) { w.append({ i }); await clock.advance(10); }
    w.close();
    expect(readJournal(dir, { afterTime: 1020 }).records.map((r) => r.seq)).toEqual([4, 5]);
    expect(readJournal(dir, { limit: 2 }).records.map((r) => r.seq)).toEqual([1, 2]);
    expect(readJournal(dir, { limit: 2, newest: true }).records.map((r) => r.seq)).toEqual([4, 5]);
    expect(readJournal(dir, { afterSeq: 99 })).toMatchObject({ records: [], lastSeq: 5 });
    expect(readJournal(root.path('none'))).toEqual({ records: [], lastSeq: 0, dropped: 0 });
    expect(newestRecord(dir, (r) => r.body['i'] === 1)?.seq).toBe(2);
  });

  it('ignores files that are not segments', () => {
    const dir = root.path('j');
    const w = JournalWriter.open({ dir, clock: new FakeClock() });
    w.append({ a: 1 });
    w.close();
    writeFileSync(join(dir, 'seg-x.log'), 'junk\n');
    writeFileSync(join(dir, 'notes.txt'), 'junk\n');
    expect(readJournal(dir).records).toHaveLength(1);
  });
});

describe('journal writer identity', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => root.remove());

  it('sees a dead or absent writer as gone and itself as no other writer', () => {
    const dir = root.path('j');
    const self = selfWriter(process.pid)!;
    expect(otherWriterAlive(dir, self)).toBe(false);
    claimWriter(dir, self);
    expect(otherWriterAlive(dir, self)).toBe(false);
    expect(otherWriterAlive(dir, undefined)).toBe(true);
    claimWriter(dir, { pid: self.pid, start: self.start + 1 }); // a reused pid
    expect(otherWriterAlive(dir, self)).toBe(false);
  });
});
