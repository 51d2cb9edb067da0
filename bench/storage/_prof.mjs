import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
const dist = process.argv[2]; const ops = process.argv[3].split(','); const N = Number(process.argv[4] ?? 200);
const work = mkdtempSync('/var/tmp/vqpf-'); const root = join(work, 'r'); const pool = join(work, 'pool');
const child = spawn('node', ['--cpu-prof', '--cpu-prof-dir=/tmp/f-vol-ops/prof', join(dist, 'bin', 'virtstoraged.js'), '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => child.stdout.once('data', r)); child.stdout.resume();
const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
const sc = await connectStorage(`storage:///system?root=${root}`, { waitMs: 20000 });
await sc.api.definePool({ definition: { name: 'p', type: 'dir', path: pool } });
await sc.api.startPool({ name: 'p', build: true });
await sc.api.createVolume({ pool: 'p', name: 'src.qcow2', format: 'qcow2', capacity: 1 << 30 });
for (let i = 0; i < 5; i++) await sc.api.createVolume({ pool: 'p', name: `other${i}.raw`, format: 'raw', capacity: 1 << 30 });
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  if (ops.includes('raw')) { await sc.api.createVolume({ pool: 'p', name: 'x.raw', format: 'raw', capacity: 1 << 30 }); await sc.api.deleteVolume({ pool: 'p', name: 'x.raw' }); }
  if (ops.includes('thin')) { await sc.cloneVolume({ pool: 'p', source: 'src.qcow2', name: 't.qcow2', thin: true }); await sc.api.deleteVolume({ pool: 'p', name: 't.qcow2' }); }
}
console.log('ms/iter', (performance.now() - t0) / N);
sc.close(); child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r)); rmSync(work, { recursive: true, force: true });
