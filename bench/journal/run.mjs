// The event journal's costs (bench/RESULTS.md, "Event journal"), side by side in one run:
// an append (the one write(2) made before an event is pushed), an append followed by its fsync
// (what a reply to a mutating call waits for), the state-file write the shim already makes per
// change (atomic, fsync'd) for scale, and reading a replay: the last 10 events, and a whole
// full journal (4 segments of 256 KiB).
//
//   node bench/journal/run.mjs [--n 2000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, options, summarize, fmt, table, loadavg, machineFacts } from '../lib/common.mjs';

const { JournalWriter } = await import(join(REPO, 'dist/lib/drivers/journal/journal-writer.js'));
const { readJournal } = await import(join(REPO, 'dist/lib/drivers/journal/segments.js'));
const { writeFileAtomic } = await import(join(REPO, 'dist/lib/drivers/fs/atomic-file.js'));

const opts = options();
const N = Number(opts.n ?? 2000);
const clock = { now: () => Date.now(), monotonic: () => performance.now(), setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return { dispose: () => clearTimeout(t) }; } };
const dir = mkdtempSync(join(tmpdir(), 'vq-bench-journal-'));
const event = (i) => ({ name: 'web1', uuid: '6f1d2c3e-0000-4000-8000-000000000001', event: i % 2 ? 'suspended' : 'resumed', state: i % 2 ? 'paused' : 'running', reason: 'user', timestamp: Date.now() });

async function timed(n, fn) {
  const us = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    us.push((performance.now() - t0) * 1000);
  }
  return summarize(us);
}

try {
  const w = JournalWriter.open({ dir: join(dir, 'a'), clock });
  const append = await timed(N, (i) => { w.append(event(i)); });
  const synced = await timed(Math.min(N, 300), async (i) => { w.append(event(i)); await w.sync(); });
  w.close();
  const state = await timed(Math.min(N, 300), (i) => writeFileAtomic(join(dir, 'state.json'), JSON.stringify({ ...event(i), pad: 'x'.repeat(1500) })));
  const full = JournalWriter.open({ dir: join(dir, 'full'), clock });
  let seq = 0;
  while (readJournal(join(dir, 'full'), { afterSeq: Number.MAX_SAFE_INTEGER }).lastSeq < 12_000) { for (let i = 0; i < 1000; i++) seq = full.append(event(i)).seq; }
  full.close();
  const tail = await timed(200, () => readJournal(join(dir, 'full'), { afterSeq: seq - 10 }));
  const whole = await timed(50, () => readJournal(join(dir, 'full'), { afterSeq: 0 }));
  const held = readJournal(join(dir, 'full')).records.length;
  const row = (what, s) => [what, fmt(s.p50), fmt(s.p90), fmt(s.p99)];
  console.log(table(['operation (µs)', 'p50', 'p90', 'p99'], [
    row('append (write, before the push)', append),
    row('append + fsync (a reply waits for it)', synced),
    row('state file write (atomic, fsync; for scale)', state),
    row('replay read: last 10 of a full journal', tail),
    row(`replay read: whole full journal (${held} events)`, whole),
  ]));
  console.log(`load ${loadavg()}; ${JSON.stringify(machineFacts())}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
