// virtqemud run as a program starts from its V8 startup snapshot (scripts/build.mjs, decision
// 0032): kill -9 and a restart through the launcher relist every VM, the shims re-register, calls
// go through, and what the process reports about itself (its pid in the log, its start time) is
// this process's, not the snapshot builder's. Without the snapshot (VIRTQ_NO_SNAPSHOT=1, or
// --cluster, which needs node_modules' etcd3) the launcher runs the bundle.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { delay, systemClock } from '../../protocol/index.js';
import { DAEMON_BIN, DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  while (!(await check())) {
    if (clock.monotonic() > end) throw new Error(`not converged within ${ms} ms`);
    await delay(clock, 50);
  }
}

describe('virtqemud from its startup snapshot', () => {
  let h: DaemonHarness;
  beforeEach(() => { h = new DaemonHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('the build made a snapshot for this node binary, and the launcher starts from it', () => {
    expect(readdirSync(dirname(DAEMON_BIN)).filter((f) => /^virtqemud-\d+-\d+-\d+\.blob$/.test(f))).toHaveLength(1);
  });

  it('restarts after kill -9 from the snapshot: everything relisted, shims back, its own pid and start time', async () => {
    const first = await h.startDaemon(['--shim-pool', '0'], { asProgram: true });
    expect(cmdline(first.proc.pid as number)).toContain('--snapshot-blob');
    const { api } = await h.client();
    await api.define({ definition: idleDef('keep1') });
    await api.start({ name: 'keep1' });
    await api.create({ definition: idleDef('temp1'), paused: true });
    await api.define({ definition: idleDef('idle1') });
    const before = (await api.listDomains({})).domains;

    first.proc.kill('SIGKILL');
    await first.exited;
    const t0 = Date.now();
    const second = await h.startDaemon(['--shim-pool', '0', '--http', '127.0.0.1:0'], { asProgram: true });
    const pid = second.proc.pid as number;
    expect(cmdline(pid)).toContain('--snapshot-blob');
    expect(second.reply).toMatchObject({ ok: true, pid, recovered: { definitions: 2, liveShims: 2, lostShims: 0 } });
    const again = await h.client();
    const strip = (rows: typeof before) => rows.map(({ name, uuid, state, persistent, qemuPid, shimSocket }) => ({ name, uuid, state, persistent, qemuPid, shimSocket }));
    expect(strip((await again.api.listDomains({})).domains)).toEqual(strip(before));
    await until(async () => (await again.api.listDomains({})).domains.every((r) => r.state === 'shutoff' || r.shimUp), 10_000);
    await expect(again.api.getState({ name: 'keep1' })).resolves.toMatchObject({ state: 'running' });
    await expect(again.api.destroy({ name: 'temp1' })).resolves.toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    // What it logs and exports about itself is this process's.
    const lines = readFileSync(join(h.layout.log, 'virtqemud.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { pid: number; msgId?: string });
    expect(lines.filter((l) => l.msgId === 'RECOVERED').at(-1)?.pid).toBe(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${second.reply.httpPort}/metrics`)).text();
    const started = Number(/^virtq_daemon_process_start_time_seconds(?:\{[^}]*\})? (\d+)$/m.exec(metrics)?.[1]);
    expect(Math.abs(started - t0 / 1000)).toBeLessThan(5);
  });

  it('makes fresh UUIDs in every process started from the snapshot, and after a restart (no entropy kept in the blob)', async () => {
    // The snapshot's warm-up defines a VM: node:crypto's randomUUID caches 128 UUIDs' worth of
    // random bytes, and a cache filled there would be in every process's heap (same UUIDs).
    const other = new DaemonHarness(tmpRoot());
    try {
      const uuids: string[] = [];
      const first = await h.startDaemon(['--shim-pool', '0'], { asProgram: true });
      uuids.push((await (await h.client()).api.define({ definition: idleDef('u1') })).uuid);
      await other.startDaemon(['--shim-pool', '0'], { asProgram: true });
      uuids.push((await (await other.client()).api.define({ definition: idleDef('u1') })).uuid);
      first.proc.kill('SIGKILL');
      await first.exited;
      const again = await h.startDaemon(['--shim-pool', '0'], { asProgram: true });
      expect(cmdline(again.proc.pid as number)).toContain('--snapshot-blob');
      const { api } = await h.client();
      uuids.push((await api.define({ definition: idleDef('u2') })).uuid);
      expect(new Set(uuids).size).toBe(3);
    } finally {
      await other.cleanup();
    }
  });

  it('runs its bundle with VIRTQ_NO_SNAPSHOT=1, and with --cluster', async () => {
    const plain = await h.startDaemon(['--shim-pool', '0'], { asProgram: true, env: { VIRTQ_NO_SNAPSHOT: '1' } });
    expect(cmdline(plain.proc.pid as number)).not.toContain('--snapshot-blob');
    expect(cmdline(plain.proc.pid as number)).toContain(DAEMON_BIN);
    // The launcher's choice, traced by sh (--help: nothing is started).
    const { stderr } = await run('sh', ['-x', DAEMON_BIN, '--cluster', 'etcd://127.0.0.1:1/p', '--help']);
    expect(stderr).toMatch(/exec node --max-semi-space-size=4 \S*virtqemud\.js --cluster/);
    expect(stderr).not.toContain('--snapshot-blob');
  });
});
