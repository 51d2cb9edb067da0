// A three-member etcd (Debian's etcd-server 3.4) on loopback for the cluster benches. `dataRoot`
// puts the members' data directories there: on a tmpfs (/dev/shm) their WAL fsyncs cost nothing,
// which is how these benches show etcd without fsync (3.4 has no --unsafe-no-fsync; 3.5 added it).
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../lib/common.mjs';

export const freePort = () => new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });

/** Starts three members with data under a fresh directory in `dataRoot`; resolves once all are healthy. */
export async function startEtcd(dataRoot) {
  const dir = mkdtempSync(join(dataRoot, 'vq-bench-etcd-'));
  const ports = await Promise.all(Array.from({ length: 6 }, freePort));
  const peer = (i) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initial = [0, 1, 2].map((i) => `m${i}=${peer(i)}`).join(',');
  const procs = [0, 1, 2].map((i) => spawn('/usr/bin/etcd', ['--name', `m${i}`, '--data-dir', join(dir, `m${i}`),
    '--listen-client-urls', `http://127.0.0.1:${ports[2 * i]}`, '--advertise-client-urls', `http://127.0.0.1:${ports[2 * i]}`,
    '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i), '--initial-cluster', initial,
    '--initial-cluster-state', 'new', '--log-outputs', 'stderr', '--logger', 'zap'], { stdio: 'ignore' }));
  const endpoints = [0, 1, 2].map((i) => `127.0.0.1:${ports[2 * i]}`);
  const stop = async () => {
    await Promise.all(procs.map((p) => new Promise((r) => { if (p.exitCode !== null || p.signalCode !== null) r(); else { p.once('exit', r); p.kill('SIGKILL'); } })));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const e of endpoints) {
      for (let t = 0; ; t++) {
        const ok = await fetch(`http://${e}/health`).then(async (r) => (await r.json()).health === 'true', () => false);
        if (ok) break;
        if (t > 300) throw new Error(`etcd ${e} not healthy`);
        await sleep(100);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints, stop };
}
