// Migrations that must not happen, or that break half-way, with the real test guest: after each
// the VM runs on exactly one side with its disk lease, and the other side has no QEMU, no lease
// and no name claim, within the chaos bound (CONVERGE_MS).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delay, systemClock, type JobInfo } from '../../protocol/index.js';
import { MigrationWorld, expectOnlyOn } from '../helpers/migration-world.js';
import { guestConsole } from '../helpers/guest-console.js';
import { idleGuest } from '../helpers/test-guest.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { eventually } from '../helpers/fleet.js';

const clock = systemClock();

/**
 * Whether the source ever gave its disk lease up (a switchover began): its journal then holds a
 * `lease-released`. A destination lost while memory moves is seen (the source asks every second)
 * and the migration cancelled long before a 4 MiB/s transfer of the test guest (~30 s) gets there.
 */
async function handedOver(api: { getEvents(a: { name: string }): Promise<{ events: Array<{ event: string }> }> }, name: string): Promise<boolean> {
  return (await api.getEvents({ name })).events.some((e) => e.event === 'lease-released');
}

/** Starts the test guest on the source (defined first when `persistent`) and waits until it has booted. */
async function bootOnSource(w: MigrationWorld, name: string, persistent = false) {
  await w.src.startDaemon();
  await w.dst.startDaemon();
  const src = await w.src.client();
  const dst = await w.dst.client();
  const def = w.guest(name, w.disk());
  if (persistent) {
    await src.api.define({ definition: def });
    await src.api.start({ name });
  } else {
    await src.api.create({ definition: def });
  }
  const con = await guestConsole(await w.connection(w.srcUri), name);
  await con.serial.waitFor('GUEST-READY', 60_000);
  con.close();
  return { src, dst, def, srcQemu: (await src.api.lookupByName({ name })).qemuPid as number };
}

/** Polls domjobinfo until the transfer is under way (memory has started to move). */
async function transferring(api: { getJobInfo(a: { name: string }): Promise<JobInfo> }, name: string): Promise<JobInfo> {
  const end = clock.monotonic() + 60_000;
  for (;;) {
    const info = await api.getJobInfo({ name });
    if (info.status === 'active' && info.transferredBytes > 0) return info;
    if (clock.monotonic() > end) throw new Error(`migration of ${name} never got under way: ${JSON.stringify(info)}`);
    await delay(clock, 50);
  }
}

/**
 * The local port of `pid`'s one established loopback TCP connection (the destination QEMU's end of
 * the stream). The source may be sending before the destination QEMU has accept()ed (the
 * connection then waits in its listen backlog, owned by no process): polled until it has.
 */
async function streamPort(pid: number): Promise<number> {
  const end = clock.monotonic() + 20_000;
  for (;;) {
    const out = execFileSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' });
    const line = out.split('\n').find((l) => l.includes(`pid=${pid},`));
    const port = /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+/.exec(line ?? '')?.[1];
    if (port !== undefined) return Number(port);
    if (clock.monotonic() > end) throw new Error(`no TCP connection of pid ${pid} in:\n${out}`);
    await delay(clock, 20);
  }
}

/** Cuts every loopback TCP connection to or from `port`, both ends reset at once (as a network cut would, seen from either side). */
function cutTcp(port: number): void {
  execFileSync('ss', ['-K', '-tn', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8' });
}

describe('virtq migrate: faults', () => {
  let w: MigrationWorld;
  beforeEach(() => { w = new MigrationWorld(); });
  afterEach(async () => { await w.cleanup(); });

  it('refuses with NAME_IN_USE when the destination has another VM of that name, and the guest runs on', async () => {
    const { src, dst, def } = await bootOnSource(w, 'clash1');
    await dst.api.define({ definition: { name: 'clash1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } } });
    await expect(src.api.migrate({ name: 'clash1', destUri: w.dstUri, live: true })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    expect((await src.api.getState({ name: 'clash1' })).state).toBe('running');
    // The destination's own VM of that name is untouched, and nothing of the migrating one is there.
    expect((await dst.api.lookupByName({ name: 'clash1' })).uuid).not.toBe(def.uuid);
    expect(w.liveQemus(def.uuid)).toHaveLength(1);
    // The failed migration had set this QEMU's pause-before-switchover: a save must not pause there
    // (it waited for `completed` forever before session 10).
    expect(await src.api.save({ name: 'clash1', file: w.shared.path('clash1.save') })).toEqual({ state: 'shutoff', reason: 'saved' });
  });

  it('rolls back when the destination cannot lease the disk: the source takes its lease back and resumes', async () => {
    // The destination's flock refuses every disk lock (a holder it cannot see), but not its lifelines.
    // Both refuse a second late: the source's QEMU has completed by then (the destination claims
    // after the source went on, session 22), so the rollback continues a QEMU whose images are inactive.
    const wrapper = w.shared.path('refusing-flock');
    writeFileSync(wrapper, '#!/bin/sh\ncase "$(readlink /proc/$$/fd/3 2>/dev/null)" in *.lock) sleep 1; exit 75;; esac\nexec flock "$@"\n');
    chmodSync(wrapper, 0o755);
    // Its in-process holders likewise: each answers its `go` with a conflict.
    const refusingPerl = w.shared.path('refusing-perl');
    writeFileSync(refusingPerl, '#!/bin/sh\nread -r go\nsleep 1\necho conflict\nexit 75\n');
    chmodSync(refusingPerl, 0o755);
    w.configureDstLock({ flock: wrapper, perl: refusingPerl });
    const { src, def } = await bootOnSource(w, 'nolease1');
    await expect(src.api.migrate({ name: 'nolease1', destUri: w.dstUri, live: true })).rejects.toMatchObject({ code: 'LOCK_CONFLICT' });
    await expectOnlyOn(w, 'nolease1', def.uuid, 'src');
    expect(await src.api.getState({ name: 'nolease1' })).toEqual({ state: 'running', reason: 'migration-cancelled' });
    const rollback = readFileSync(w.src.root.path('log', 'nolease1.log'), 'utf8').split('\n').find((l) => l.includes('MIGRATION_ROLLBACK'));
    expect(JSON.parse(rollback ?? '{}')).toMatchObject({ qemuStatus: 'completed', released: true, claimed: false });
    // Its images are active again: the guest writes to its disk.
    const con = await guestConsole(await w.connection(w.srcUri), 'nolease1');
    // The markers are computed by the guest's shell: its echo of the typed line (wrapped by its line
    // editor) cannot match them before the command has run.
    await con.run('echo back-$((6*7)) | dd of=/dev/vda bs=512 seek=4096 conv=fsync 2>/dev/null && echo WROTE-$((6*7))', 'WROTE-42');
    con.close();
    expect(readFileSync(def.disks[0]!.path).subarray(4096 * 512, 4096 * 512 + 7).toString()).toBe('back-42');
  });

  it('domjobabort during the transfer: the VM runs on at the source, the destination is cleaned', async () => {
    const { src, def } = await bootOnSource(w, 'abort1');
    const migrating = src.api.migrate({ name: 'abort1', destUri: w.dstUri, live: true, bandwidth: 1 });
    const info = await transferring(src.api, 'abort1');
    expect(info).toMatchObject({ type: 'migration', status: 'active' });
    expect(info.remainingBytes).toBeGreaterThan(0);
    expect(info.rateBytesPerSec).toBeGreaterThan(0);
    await src.api.abortJob({ name: 'abort1' });
    await expect(migrating).rejects.toMatchObject({ code: 'OPERATION_ABORTED' });
    await expectOnlyOn(w, 'abort1', def.uuid, 'src');
    expect((await src.api.getJobInfo({ name: 'abort1' })).type).toBe('none');
    await expect(src.api.abortJob({ name: 'abort1' })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
  });

  it('kill -9 of the destination QEMU during the transfer: the stream breaks, the source runs on', async () => {
    const { src, dst, def, srcQemu } = await bootOnSource(w, 'dq1');
    const migrating = src.api.migrate({ name: 'dq1', destUri: w.dstUri, live: true, bandwidth: 1 });
    await transferring(src.api, 'dq1');
    const dstQemu = (await dst.api.lookupByName({ name: 'dq1' })).qemuPid as number;
    expect(dstQemu).not.toBe(srcQemu);
    process.kill(dstQemu, 'SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    await expectOnlyOn(w, 'dq1', def.uuid, 'src');
  });

  it('the migration stream cut mid-transfer (TCP, both ends reset): the VM runs on at the source with its lease, the destination has nothing', async () => {
    const { src, dst, def, srcQemu } = await bootOnSource(w, 'cut1');
    const migrating = src.api.migrate({ name: 'cut1', destUri: w.dstUri, live: true, bandwidth: 1, transport: 'tcp' });
    await transferring(src.api, 'cut1');
    const dstQemu = (await dst.api.lookupByName({ name: 'cut1' })).qemuPid as number;
    cutTcp(await streamPort(dstQemu));
    await expect(migrating).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    await expectOnlyOn(w, 'cut1', def.uuid, 'src');
    expect((await src.api.lookupByName({ name: 'cut1' })).qemuPid).toBe(srcQemu);
    expect((await src.api.getJobInfo({ name: 'cut1' })).type).toBe('none');
    // The guest was never stopped for good: its shell answers.
    const con = await guestConsole(await w.connection(w.srcUri), 'cut1');
    await con.run('echo alive-$((2*3))', 'alive-6');
    con.close();
  });

  it('kill -9 of the destination shim during the transfer: the source cancels at once, runs on with its lease, and the destination forgets the VM', async () => {
    const { src, dst, def } = await bootOnSource(w, 'ds1');
    const migrating = src.api.migrate({ name: 'ds1', destUri: w.dstUri, live: true, bandwidth: 4 });
    await transferring(src.api, 'ds1');
    const row = await dst.api.lookupByName({ name: 'ds1' });
    process.kill(row.shimPid as number, 'SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: 'SHIM_UNAVAILABLE' });
    expect(await handedOver(src.api, 'ds1')).toBe(false);
    await expectOnlyOn(w, 'ds1', def.uuid, 'src');
  });

  it('kill -9 of the source shim during the transfer: its successor cancels the migration, the guest runs on at the source', async () => {
    const { src, def } = await bootOnSource(w, 'ss1');
    const migrating = src.api.migrate({ name: 'ss1', destUri: w.dstUri, live: true, bandwidth: 4 });
    await transferring(src.api, 'ss1');
    const shimPid = (await src.api.lookupByName({ name: 'ss1' })).shimPid as number;
    process.kill(shimPid, 'SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: expect.stringMatching(/^(CONNECTION_CLOSED|SHIM_UNAVAILABLE)$/) });
    // As after any shim crash, a successor takes the VM over (virtq-shim --attach).
    const successor = spawn(process.execPath, [SHIM_BIN, '--root', w.src.root.dir, '--attach', 'ss1'], { stdio: 'ignore', detached: true });
    successor.unref();
    await expectOnlyOn(w, 'ss1', def.uuid, 'src');
    expect((await src.api.getJobInfo({ name: 'ss1' })).type).toBe('none');
  });

  it('kill -9 of the destination virtqemud during the transfer: the source resumes; restarted, the destination lists nothing', async () => {
    const { src, def } = await bootOnSource(w, 'dv1');
    const migrating = src.api.migrate({ name: 'dv1', destUri: w.dstUri, live: true, bandwidth: 4 });
    await transferring(src.api, 'dv1');
    const [dstDaemon] = w.dst.daemons;
    dstDaemon?.kill('SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    expect(await handedOver(src.api, 'dv1')).toBe(false);
    await w.dst.startDaemon();
    await expectOnlyOn(w, 'dv1', def.uuid, 'src');
  });

  it('kill -9 of the source virtqemud during the transfer: the shim completes the migration; restarted, the source lists nothing', async () => {
    const { src, def } = await bootOnSource(w, 'sv1');
    const migrating = src.api.migrate({ name: 'sv1', destUri: w.dstUri, live: true, bandwidth: 16 });
    await transferring(src.api, 'sv1');
    const [srcDaemon] = w.src.daemons;
    srcDaemon?.kill('SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await w.src.startDaemon();
    await expectOnlyOn(w, 'sv1', def.uuid, 'dst', 30_000);
  });

  /**
   * Migrates the defined VM `name` with --persistent --undefine-source, kills the source's virtqemud
   * mid-transfer, and waits until the shim has finished the migration on its own: the VM runs on the
   * destination, defined there, and the source's definition is still owed.
   */
  const migrateAwayWithoutSourceDaemon = async (name: string) => {
    const { src, dst, def } = await bootOnSource(w, name, true);
    const migrating = src.api.migrate({ name, destUri: w.dstUri, live: true, bandwidth: 16, persistent: true, undefineSource: true });
    await transferring(src.api, name);
    const [srcDaemon] = w.src.daemons;
    srcDaemon?.kill('SIGKILL');
    await expect(migrating).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await eventually(async () => (await dst.api.listDomains({})).domains.some((d) => d.name === name && d.state === 'running' && d.persistent), 60_000, `${name} to run on the destination, defined there`);
    return def;
  };

  it('kill -9 of the source virtqemud during a --persistent --undefine-source migration: once it is back, the definition has moved', async () => {
    const def = await migrateAwayWithoutSourceDaemon('sv2');
    // Down past the shim's first undefine (asked once its state file holds the note: within the 1 s it
    // waits for a listing nobody takes), which meets no virtqemud; it asks again until one answers.
    await delay(clock, 1500);
    await w.src.startDaemon();
    await expectOnlyOn(w, 'sv2', def.uuid, 'dst', 40_000);
    expect(existsSync(w.src.root.path('etc', 'domains', 'sv2.json'))).toBe(false);
  });

  it('… and with the source shim killed too while it waits: the next source virtqemud removes the definition its state file says is owed', async () => {
    const def = await migrateAwayWithoutSourceDaemon('sv3');
    // The shim writes down what it owes (once the destination stored the definition), then waits for virtqemud.
    const stateFile = w.src.root.path('run', 'shims', 'sv3.json');
    const owed = await eventually(async () => {
      const s = JSON.parse(readFileSync(stateFile, 'utf8')) as { shimPid: number; state: string; reason: string; details?: Record<string, unknown> };
      return s.details?.['undefineSource'] === true ? s : undefined;
    }, 10_000, 'the source shim to record that the undefine is owed');
    expect(owed).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    process.kill(owed.shimPid, 'SIGKILL');
    expect(existsSync(w.src.root.path('etc', 'domains', 'sv3.json'))).toBe(true);
    await w.src.startDaemon();
    await expectOnlyOn(w, 'sv3', def.uuid, 'dst', 20_000);
    expect(existsSync(w.src.root.path('etc', 'domains', 'sv3.json'))).toBe(false);
    expect(existsSync(w.src.root.path('run', 'shims', 'sv3.json'))).toBe(false);
  });

  it('the source shim killed after it wrote the owed undefine down, before it asked: the running source virtqemud removes the definition', async () => {
    const { src, dst, def } = await bootOnSource(w, 'sv4', true);
    const migrating = src.api.migrate({ name: 'sv4', destUri: w.dstUri, live: true, bandwidth: 16, persistent: true, undefineSource: true });
    migrating.catch(() => undefined); // answered only once the daemon runs again
    await transferring(src.api, 'sv4');
    // Stopped, not killed: the shim's undefine would wait for it, and its wait for the daemon's
    // listing of the VM's end (1 s at most) keeps the window between the note and the call open.
    const [srcDaemon] = w.src.daemons;
    srcDaemon?.kill('SIGSTOP');
    try {
      await eventually(async () => (await dst.api.listDomains({})).domains.some((d) => d.name === 'sv4' && d.state === 'running' && d.persistent), 60_000, 'sv4 to run on the destination, defined there');
      const stateFile = w.src.root.path('run', 'shims', 'sv4.json');
      const owed = await eventually(async () => {
        const s = JSON.parse(readFileSync(stateFile, 'utf8')) as { shimPid: number; details?: Record<string, unknown> };
        return s.details?.['undefineSource'] === true ? s : undefined;
      }, 10_000, 'the source shim to record that the undefine is owed');
      process.kill(owed.shimPid, 'SIGKILL');
    } finally {
      srcDaemon?.kill('SIGCONT');
    }
    // No restart: the daemon sees the shim go and finds the undefine owed in its state file.
    await expectOnlyOn(w, 'sv4', def.uuid, 'dst', 20_000);
    expect(existsSync(w.src.root.path('etc', 'domains', 'sv4.json'))).toBe(false);
    expect(existsSync(w.src.root.path('run', 'shims', 'sv4.json'))).toBe(false);
  });

  it('a restarted source virtqemud that adopted the finished source shim just before it ended lists nothing once it has gone', async () => {
    // Cluster chaos seed 32508: recovery ran between the source shim's `shutoff/migrated` and its
    // exit, so the VM was listed stopped with that shim, and no registry connection of it ever closed.
    const { src, dst, def } = await bootOnSource(w, 'sv5');
    const migrating = src.api.migrate({ name: 'sv5', destUri: w.dstUri, live: true, bandwidth: 16 });
    migrating.catch(() => undefined); // its daemon is killed
    await transferring(src.api, 'sv5');
    // Stopped, not killed: the finished shim's last update, then its unregister, wait for it,
    // which holds the shim between its final state and the removal of its state file.
    const [srcDaemon] = w.src.daemons;
    srcDaemon?.kill('SIGSTOP');
    const stateFile = w.src.root.path('run', 'shims', 'sv5.json');
    let shimPid = 0;
    try {
      await eventually(async () => (await dst.api.listDomains({})).domains.some((d) => d.name === 'sv5' && d.state === 'running'), 60_000, 'sv5 to run on the destination');
      const ended = await eventually(async () => {
        const s = JSON.parse(readFileSync(stateFile, 'utf8')) as { shimPid: number; state: string; reason: string };
        return s.state === 'shutoff' && s.reason === 'migrated' ? s : undefined;
      }, 10_000, 'the source shim to write its end');
      shimPid = ended.shimPid;
      process.kill(shimPid, 'SIGSTOP');
      srcDaemon?.kill('SIGKILL');
    } finally {
      srcDaemon?.kill('SIGCONT');
    }
    await eventually(async () => srcDaemon?.exitCode !== null || srcDaemon.signalCode !== null, 10_000, 'the source virtqemud to be gone');
    try {
      // Recovery finds the state file and the shim's process: the stopped VM is adopted with that shim.
      await w.src.startDaemon();
      const listed = (await (await w.src.client()).api.listDomains({})).domains.find((d) => d.name === 'sv5');
      expect(listed).toMatchObject({ state: 'shutoff' });
    } finally {
      if (shimPid > 0) process.kill(shimPid, 'SIGCONT');
    }
    // The shim ends without registering (its state file goes with it): reconciliation must let the VM go.
    await eventually(async () => !existsSync(stateFile), 10_000, 'the source shim to remove its state file');
    await expectOnlyOn(w, 'sv5', def.uuid, 'dst', 20_000);
  });
});
