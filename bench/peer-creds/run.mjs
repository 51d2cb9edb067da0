// Cost of learning a unix peer's credentials without SO_PEERCRED (decision 0029): per connection,
// `unixPeerCreds` (ss -xpnH + /proc) against accepting a connection alone, interleaved in one run.
// Usage: npm run build && node bench/peer-creds/run.mjs [rounds]
import { createServer, connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { unixPeerCreds } from '../../dist/lib/daemon/acl/peer-creds.js';

const rounds = Number(process.argv[2] ?? 40);
const dir = mkdtempSync(join(tmpdir(), 'virtq-peercreds-'));
const path = join(dir, 's.sock');
let onConn;
const srv = createServer((s) => onConn(s));
await new Promise((r) => srv.listen(path, r));

async function once(lookup) {
  const t0 = process.hrtime.bigint();
  const accepted = new Promise((r) => { onConn = r; });
  const c = connect(path);
  const s = await accepted;
  if (lookup) { const creds = await unixPeerCreds(s); if (creds?.pid !== process.pid) throw new Error('wrong peer'); }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  c.destroy(); s.destroy();
  return ms;
}
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const plain = []; const looked = [];
for (let i = 0; i < rounds; i++) { plain.push(await once(false)); looked.push(await once(true)); }
const row = (name, xs) => `| ${name} | ${q(xs, 0.5).toFixed(2)} | ${q(xs, 0.9).toFixed(2)} | ${q(xs, 0.99).toFixed(2)} |`;
console.log(`rounds ${rounds}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('| per connection (ms) | p50 | p90 | p99 |\n| --- | --- | --- | --- |');
console.log(row('connect + accept', plain));
console.log(row('connect + accept + peer credentials', looked));
srv.close(); rmSync(dir, { recursive: true, force: true });
