// What a bare call to virtstoraged costs from this process, right after the bench's `sync` and
// otherwise: is bench/storage's "RPC floor" row (1.2 ms p50 for listJobs) the daemon, or the
// moment it is measured in? Usage: node bench/storage/rpc-probe.mjs [--dist DIR] [--rounds N]
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupRegistry, fmt, median, now, options, pct, REPO } from '../lib/common.mjs';
import { run, startStoraged } from './sides.mjs';

const o = options();
const DIST = o.get('dist', join(REPO, 'dist'));
const ROUNDS = Number(o.get('rounds', '40'));
const cleanup = cleanupRegistry();
const root = cleanup.root(mkdtempSync('/var/tmp/vqrp-'));
const { client: sc } = await startStoraged(DIST, root, cleanup);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shapes = {
  'back to back': async () => undefined,
  'after 20 ms idle': () => sleep(20),
  'after sync (the bench\'s settle)': () => run('sync', []),
  'after sync, then 20 ms idle': async () => { await run('sync', []); await sleep(20); },
};
const times = Object.fromEntries(Object.keys(shapes).map((k) => [k, []]));
for (let r = 0; r < ROUNDS + 3; r += 1) {
  for (const [k, before] of Object.entries(shapes)) {
    await before();
    const t0 = now();
    await sc.api.listJobs({});
    if (r >= 3) times[k].push(now() - t0);
  }
}
for (const [k, v] of Object.entries(times)) console.log(`${k}: p50 ${fmt(median(v))} ms, p90 ${fmt(pct(Float64Array.from(v).sort(), 90))} ms`);
process.exit(0);
