// SIGTERM vs SIGKILL of a booted, paused 128 MiB TCG test guest (the source QEMU's state once its
// migration completed: vCPUs stopped, memory dirtied), alternated pair by pair; ms from the signal
// to the child's exit event (what the shim's Vm.kill waits for). Issue 16, session 17.
//   node bench/migration/stop-signal.mjs [PAIRS=6]   (needs the test guest: scripts/build-test-guest.sh)
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { homedir, tmpdir } from 'node:os';
const G = process.env.VIRTQ_TEST_GUEST_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtq', 'test-guest');
const PAIRS = Number(process.argv[2] ?? 6);
const QEMU = process.env.VIRTQ_QEMU ?? 'qemu-system-x86_64';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function one(sig, i) {
  const dir = mkdtempSync(join(tmpdir(), `stop-${i}-`));
  const con = join(dir, 'console.log'), qmp = join(dir, 'qmp.sock');
  const p = spawn(QEMU, ['-machine', 'pc', '-accel', 'tcg', '-m', '128', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', join(G, 'vmlinuz'), '-initrd', join(G, 'initrd.cpio.gz'), '-append', 'console=ttyS0 quiet panic=-1 tg_dirty=32',
    '-serial', `file:${con}`, '-qmp', `unix:${qmp},server=on,wait=off`], { stdio: 'ignore' });
  const exited = new Promise((r) => p.once('exit', r));
  const end = Date.now() + 120000;
  while (!(existsSync(con) && readFileSync(con, 'latin1').includes('TG-DIRTY-RUNNING'))) { if (Date.now() > end) throw new Error('no boot'); await sleep(50); }
  await sleep(300);
  // pause the vCPUs as a completed migration leaves them
  await new Promise((resolve, reject) => { const s = createConnection(qmp); let buf = ''; let sent = 0;
    s.on('data', (d) => { buf += d; if (sent === 0 && buf.includes('QMP')) { sent = 1; s.write('{"execute":"qmp_capabilities"}\n{"execute":"stop"}\n'); }
      if ((buf.match(/"return"/g) ?? []).length >= 2) { s.end(); resolve(); } }); s.on('error', reject); });
  await sleep(200);
  const t0 = performance.now(); p.kill(sig); await exited; const ms = performance.now() - t0;
  rmSync(dir, { recursive: true, force: true });
  return ms;
}
const r = { SIGTERM: [], SIGKILL: [] };
for (let i = 0; i < PAIRS; i++) {
  const order = i % 2 === 0 ? ['SIGTERM', 'SIGKILL'] : ['SIGKILL', 'SIGTERM'];
  for (const sig of order) r[sig].push(await one(sig, `${i}${sig}`));
  process.stderr.write(`pair ${i}: TERM ${r.SIGTERM.at(-1).toFixed(1)} KILL ${r.SIGKILL.at(-1).toFixed(1)}\n`);
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
for (const k of Object.keys(r)) console.log(k, 'p50', q(r[k], 0.5).toFixed(1), 'p90', q(r[k], 0.9).toFixed(1), 'min', Math.min(...r[k]).toFixed(1), 'max', Math.max(...r[k]).toFixed(1), 'n', r[k].length);
