// The event journal records disk lease changes and an OOM kill of QEMU as its own stop reason
// (issue #17): a real guest with two disks, then a real OOM — QEMU's memory cgroup (the one the
// shim gave it) is limited below what the guest is about to touch, the guest fills its RAM disk,
// the kernel's OOM killer kills QEMU. The journal, `getEvents` and `virtq domevents` tell it.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../client/index.js';
import type { LifecycleEvent } from '../../protocol/index.js';
import { memoryCgroupOf } from '../../shim/vm/oom-watch.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { guestConsole } from '../helpers/guest-console.js';
import { guestDefinition } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const MiB = 1024 * 1024;

describe('the journal: leases and OOM kills', () => {
  let h: DaemonHarness;
  beforeEach(async () => { h = new DaemonHarness(tmpRoot()); await h.startDaemon(); });
  afterEach(async () => { await h.cleanup(); });

  it('journals each disk lease with the lifecycle, and an OOM kill of QEMU as crashed/oom-killed', async () => {
    const disks = ['a.raw', 'b.raw'].map((f) => h.root.path(f));
    for (const d of disks) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', d, '8M']);
    const uri = `qemu:///system?root=${h.root.dir}`;
    const conn = await connect(uri);
    await conn.virtq.define({ definition: guestDefinition('oom1', { memoryMiB: 256, disks: [
      { target: 'vda', format: 'raw', path: disks[0] as string },
      { target: 'vdb', format: 'raw', path: disks[1] as string, readonly: true },
    ] }) });
    const live: LifecycleEvent[] = [];
    const it = await conn.events({ name: 'oom1' });
    void (async () => { for await (const ev of it) live.push(ev); })();
    await conn.virtq.start({ name: 'oom1' });
    const con = await guestConsole(conn, 'oom1');
    await con.serial.waitFor('GUEST-READY', 90_000);
    await con.run('echo up-$((40+2))', 'up-42');

    // QEMU runs in a memory cgroup of its own, made by the shim.
    const qemuPid = (await conn.virtq.getInfo({ name: 'oom1' })).qemuPid as number;
    const cg = memoryCgroupOf(qemuPid);
    expect(cg?.dir).toMatch(new RegExp(`/virtq-qemu-${qemuPid}$`));
    const dir = cg?.dir as string;
    // Limit it a little above what it uses now; the guest then touches 160 MiB more.
    if (cg?.counter === 'memory.oom_control') {
      const used = Number(readFileSync(join(dir, 'memory.usage_in_bytes'), 'utf8'));
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(used + 32 * MiB));
    } else {
      const used = Number(readFileSync(join(dir, 'memory.current'), 'utf8'));
      writeFileSync(join(dir, 'memory.max'), String(used + 32 * MiB));
    }
    con.type('dd if=/dev/zero of=/fill bs=1M count=160');
    await expect.poll(() => live.map((e) => e.event), { timeout: 60_000, interval: 200 }).toContain('crashed');
    con.close();

    const crashed = live.find((e) => e.event === 'crashed') as LifecycleEvent;
    expect(crashed).toMatchObject({ state: 'crashed', reason: 'oom-killed', details: { signal: 'SIGKILL', oomKilled: true, oomEvidence: { own: true } } });
    const info = await conn.virtq.getInfo({ name: 'oom1' });
    expect(info).toMatchObject({ state: 'crashed', reason: 'oom-killed' });
    // The cgroup made for QEMU is gone with it.
    expect(() => readFileSync(join(dir, 'cgroup.procs'))).toThrow();

    // The history: each lease before `started`, each given back before the stop, in journal order.
    const history = await conn.virtq.getEvents({ name: 'oom1' });
    const told = history.events.map((e) => `${e.event}${e.details?.['disk'] === undefined ? '' : `:${String(e.details['disk'])}`}`);
    expect(told).toEqual(['lease-acquired:vda', 'lease-acquired:vdb', 'started', 'lease-released:vda', 'lease-released:vdb', 'crashed']);
    expect(history.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(history.events[0]?.details).toMatchObject({ path: disks[0], mode: 'exclusive', plugin: 'lockfile', resource: expect.any(String) });
    expect(history.events[1]?.details).toMatchObject({ path: disks[1], mode: 'shared' });
    // The live subscriber was told the same, in the same order.
    expect(live.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);

    // domevents lists them (and --json gives them whole).
    const text = (await run(process.execPath, [CLI, '-c', uri, 'domevents', 'oom1'])).stdout;
    expect(text).toMatch(/lease-acquired[\s\S]*lease-acquired[\s\S]*started[\s\S]*lease-released[\s\S]*lease-released[\s\S]*crashed[\s\S]*oom-killed/);
    const json = JSON.parse((await run(process.execPath, [CLI, '-c', uri, 'domevents', 'oom1', '--json'])).stdout) as { events: LifecycleEvent[] };
    expect(json.events.map((e) => e.event)).toEqual(['lease-acquired', 'lease-acquired', 'started', 'lease-released', 'lease-released', 'crashed']);
    conn.close();
  }, 180_000);

  it('keeps a SIGKILL from someone else a plain crash with the signal', async () => {
    const conn = await connect(`qemu:///system?root=${h.root.dir}`);
    await conn.virtq.define({ definition: guestDefinition('kill1') });
    await conn.virtq.start({ name: 'kill1' });
    const qemuPid = (await conn.virtq.getInfo({ name: 'kill1' })).qemuPid as number;
    process.kill(qemuPid, 'SIGKILL');
    await expect.poll(async () => (await conn.virtq.getInfo({ name: 'kill1' })).state, { timeout: 20_000 }).toBe('crashed');
    const last = (await conn.virtq.getEvents({ name: 'kill1' })).events.at(-1);
    expect(last).toMatchObject({ event: 'crashed', reason: 'signal-SIGKILL', details: { signal: 'SIGKILL' } });
    expect(last?.details).not.toHaveProperty('oomKilled');
    conn.close();
  }, 60_000);
});
