// virtqemud is disposable: kill -9 it with VMs running and clients connected, and the VMs and
// their shims carry on; a restarted virtqemud knows everything again and lets no name be
// stolen. A killed shim shows as lost until its successor re-attaches.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { delay, systemClock, type TypedClient, type VirtqError, type VirtqProgram } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { processesNaming } from '../helpers/kill-under.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { findLiveQemu, procState } from '../../drivers/host/proc.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

function runShim(h: DaemonHarness, args: string[]): Promise<{ ok: boolean; error?: { code: string } }> {
  const shim = spawn(process.execPath, [SHIM_BIN, '--root', h.root.dir, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve) => {
    let out = '';
    shim.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] as string) as { ok: boolean });
    });
  });
}

/** Polls `find` every `everyMs` until it gives a pid; throws `missing` once `ms` have passed. */
async function pidOnceThere(find: () => number | undefined, missing: string, ms: number, everyMs = 1): Promise<number> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  for (;;) {
    const pid = find();
    if (pid !== undefined) return pid;
    if (clock.monotonic() > end) throw new Error(missing);
    await delay(clock, everyMs);
  }
}

/** The pid of the QEMU of `uuid` once it runs and `recorded()` returns it (0: at once). */
function qemuOf(uuid: string, recorded: () => number | undefined): Promise<number> {
  return pidOnceThere(() => {
    const pid = findLiveQemu(uuid);
    let seen: number | undefined;
    try { seen = recorded(); } catch { /* not written yet */ }
    return pid !== undefined && (seen === 0 || seen === pid) ? pid : undefined;
  }, `no QEMU for ${uuid}`, 30_000);
}

/**
 * Freezes, then kills, the shim that spawned `qemuPid` (so it cannot answer in between). With
 * `settleMs`, QEMU gets that long to finish its own start first: QEMU 7.2 sometimes dies of
 * SIGSEGV when its shim vanishes within its first milliseconds (seen in /proc's exit code), and
 * a test of what virtqemud lists needs that QEMU alive.
 */
async function killParent(qemuPid: number, settleMs = 0): Promise<void> {
  const stat = readFileSync(`/proc/${qemuPid}/stat`, 'latin1');
  const shimPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  process.kill(shimPid, 'SIGSTOP');
  if (settleMs > 0) {
    // Under load QEMU may not have reached its chardevs within settleMs (the frozen shim's sockets
    // still accept into their backlog): wait for its console and monitor connections first, bounded.
    const clock = systemClock();
    const sockets = (): number => { try { return readdirSync(`/proc/${qemuPid}/fd`).filter((f) => { try { return readlinkSync(`/proc/${qemuPid}/fd/${f}`).startsWith('socket:'); } catch { return false; } }).length; } catch { return 0; } };
    for (const end = clock.monotonic() + 10_000; sockets() < 2 && clock.monotonic() < end;) await delay(clock, 20);
    await delay(clock, settleMs);
  }
  process.kill(shimPid, 'SIGKILL');
}

// The listing is promised to converge within a bound: check it against that bound.
async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  while (!(await check())) {
    if (clock.monotonic() > end) throw new Error(`the listing did not converge within ${ms} ms`);
    await delay(clock, 50);
  }
}

/**
 * Creates `name` with a directory where its state file goes, so its shim cannot record its QEMU;
 * once QEMU runs, the shim is frozen and killed. Returns the create's error (undefined: it succeeded).
 */
async function startNeverRecorded(h: DaemonHarness, api: TypedClient<VirtqProgram>, name: string): Promise<{ uuid: string; qemuPid: number; created: Promise<{ code: string; message: string } | undefined> }> {
  mkdirSync(join(h.layout.runtime, 'shims', `${name}.json`), { recursive: true });
  const uuid = randomUUID();
  const created = api.create({ definition: { ...idleDef(name), uuid } }).then(() => undefined, (err: unknown) => err as { code: string; message: string });
  const qemuPid = await qemuOf(uuid, () => 0);
  // Its shim frozen, QEMU is let finish starting before the shim dies: QEMU 7.2 can die of
  // SIGSEGV when its shim vanishes in its first milliseconds, and then there is nothing to stop.
  await killParent(qemuPid, 500);
  return { uuid, qemuPid, created };
}

describe('virtqemud recovery', () => {
  let h: DaemonHarness;
  beforeEach(() => { h = new DaemonHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('survives kill -9 with VMs running: shims keep serving, and a restart relists everything and protects names', async () => {
    const first = await h.startDaemon();
    const { api } = await h.client();
    await api.define({ definition: idleDef('keep1') });
    await api.start({ name: 'keep1' });
    await api.create({ definition: idleDef('temp1') });
    await api.define({ definition: idleDef('idle1') });
    const before = (await api.listDomains({})).domains;
    const shimSocket = before.find((r) => r.name === 'temp1')?.shimSocket as string;
    const direct = await h.connect(shimSocket);

    first.proc.kill('SIGKILL');
    await first.exited;
    // The VMs and their shims do not notice.
    await expect(direct.api.getState({ name: 'temp1' })).resolves.toEqual({ state: 'running', reason: 'booted' });
    for (const r of before.filter((x) => x.qemuPid !== undefined)) expect(procState(r.qemuPid as number)).toMatch(/[RS]/);

    await h.startDaemon();
    // No other shim may take a live VM's name in the window before its shim re-registers.
    writeFileSync(h.root.path('thief.json'), JSON.stringify(idleDef('temp1')));
    expect(await runShim(h, ['--definition', h.root.path('thief.json')])).toMatchObject({ ok: false, error: { code: 'NAME_IN_USE' } });
    const again = await h.client();
    const after = (await again.api.listDomains({})).domains;
    const strip = (rows: typeof before) => rows.map(({ name, uuid, state, persistent, qemuPid, shimSocket: s }) => ({ name, uuid, state, persistent, qemuPid, s }));
    expect(strip(after)).toEqual(strip(before));
    // The shims re-register by themselves; then the VMs answer through virtqemud again.
    await until(async () => (await again.api.listDomains({})).domains.every((r) => r.state === 'shutoff' || r.shimUp), 10_000);
    await expect(again.api.getState({ name: 'keep1' })).resolves.toMatchObject({ state: 'running' });
    await expect(again.api.destroy({ name: 'temp1' })).resolves.toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await until(async () => (await again.api.listDomains({})).domains.every((r) => r.name !== 'temp1'), 5000);
    expect(JSON.parse(readFileSync(join(h.layout.config, 'domains', 'keep1.json'), 'utf8'))).toMatchObject({ name: 'keep1' });
  });

  it('lists a VM whose shim was killed as lost, and as back once a successor re-attaches', async () => {
    await h.startDaemon();
    const { api } = await h.client();
    const row = await api.create({ definition: idleDef('orphan1') });
    process.kill(row.shimPid as number, 'SIGKILL');
    await until(async () => (await api.lookupByName({ name: 'orphan1' })).shimUp === false, 5000);
    const lost = await api.lookupByName({ name: 'orphan1' });
    expect(lost).toMatchObject({ state: 'running', shimUp: false, qemuPid: row.qemuPid });
    expect(procState(row.qemuPid as number)).toMatch(/[RS]/);
    await expect(api.suspend({ name: 'orphan1' })).rejects.toMatchObject({ code: 'SHIM_UNAVAILABLE' });

    // While the successor registers and waits for QEMU to redial, the VM stays listed running.
    const seen = new Set<string>();
    let attaching = true;
    const watch = (async () => {
      while (attaching) {
        const r = await api.lookupByName({ name: 'orphan1' });
        seen.add(`${r.state}/${r.qemuPid === row.qemuPid ? 'pid' : 'no pid'}`);
        const info = await api.getInfo({ name: 'orphan1' }).catch((err: VirtqError) => ({ state: err.code, qemuPid: row.qemuPid, uptimeSec: 1 }));
        seen.add(`${info.state}/${info.qemuPid === row.qemuPid ? 'pid' : 'no pid'}/${info.uptimeSec > 0 ? 'up' : 'no uptime'}`);
      }
    })();
    const attached = await runShim(h, ['--attach', 'orphan1']);
    attaching = false;
    await watch;
    expect(attached).toMatchObject({ ok: true });
    expect([...seen].sort()).toEqual(['SHIM_UNAVAILABLE/pid/up', 'running/pid', 'running/pid/up']);
    const back = await api.lookupByName({ name: 'orphan1' });
    expect(back).toMatchObject({ state: 'running', shimUp: true, qemuPid: row.qemuPid });
    await expect(api.suspend({ name: 'orphan1' })).resolves.toEqual({ state: 'paused', reason: 'user' });
  });

  it('starts with the old definition when a write was interrupted between temp file and rename', async () => {
    await h.startDaemon().then(async (d) => {
      const { api } = await h.client();
      await api.define({ definition: { ...idleDef('safe1'), memoryMiB: 48 } });
      d.proc.kill('SIGKILL');
      await d.exited;
    });
    // What a crash mid-write leaves: a half-written temp file beside the intact definition.
    writeFileSync(join(h.layout.config, 'domains', '.safe1.json.1234abcd.tmp'), '{"name":"safe1","memoryMiB":');
    await h.startDaemon();
    const { api } = await h.client();
    expect((await api.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'safe1', state: 'shutoff', persistent: true })]);
    expect((await api.getDefinition({ name: 'safe1' })).memoryMiB).toBe(48);
  });

  // Found by the chaos suite: reconciliation dropped a transient VM that died while its shim was
  // lost, and recovery deleted the state file it reported from, so the next restart forgot the end.
  it('keeps a VM that died while its shim was lost listed with how it ended, across restarts, until it is undefined', async () => {
    let d = await h.startDaemon(['--reconcile-ms', '200']);
    let { api } = await h.client();
    const transient = await api.create({ definition: idleDef('gone1') });
    await api.define({ definition: idleDef('gone2') });
    const persistent = await api.start({ name: 'gone2' });
    for (const r of [transient, persistent]) process.kill(r.shimPid as number, 'SIGKILL');
    await until(async () => (await api.listDomains({})).domains.every((r) => !r.shimUp), 5000);
    for (const r of [transient, persistent]) process.kill(r.qemuPid as number, 'SIGKILL');
    await until(async () => (await api.listDomains({})).domains.filter((r) => r.state === 'crashed').length === 2, 5000);
    expect((await api.listDomains({})).domains).toEqual([
      expect.objectContaining({ name: 'gone1', state: 'crashed', reason: 'lost', persistent: false }),
      expect.objectContaining({ name: 'gone2', state: 'crashed', reason: 'lost', persistent: true }),
    ]);
    for (let i = 0; i < 2; i++) {
      d.proc.kill('SIGKILL');
      await d.exited;
      d = await h.startDaemon();
      ({ api } = await h.client());
      expect((await api.listDomains({})).domains).toEqual([
        expect.objectContaining({ name: 'gone1', state: 'crashed', reason: 'lost-while-virtqemud-was-down', persistent: false }),
        expect.objectContaining({ name: 'gone2', state: 'crashed', reason: 'lost-while-virtqemud-was-down', persistent: true }),
      ]);
    }
    await expect(api.create({ definition: idleDef('gone1') })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    // Undefining forgets the end, for good.
    await api.undefine({ name: 'gone1' });
    await api.undefine({ name: 'gone2' });
    expect(existsSync(join(h.layout.runtime, 'shims', 'gone1.json'))).toBe(false);
    d.proc.kill('SIGKILL');
    await d.exited;
    await h.startDaemon();
    ({ api } = await h.client());
    expect((await api.listDomains({})).domains).toEqual([]);
    await expect(api.create({ definition: idleDef('gone1') })).resolves.toMatchObject({ state: 'running' });
  });

  // Found by the chaos suite: a shim killed after spawning QEMU but before answering left a
  // running QEMU that virtqemud forgot, so its name could be given to another VM.
  it('keeps a VM listed, its shim lost, when the shim dies after spawning QEMU but before answering', async () => {
    await h.startDaemon(['--reconcile-ms', '200']);
    const { api } = await h.client();
    const uuid = randomUUID();
    const created = api.create({ definition: { ...idleDef('half1'), uuid } }).then(() => undefined, (err: unknown) => err as { code: string; message: string });
    // Once QEMU runs and the state file says so, freeze the shim (the create cannot answer), then kill it.
    const qemuPid = await qemuOf(uuid, () => (JSON.parse(readFileSync(join(h.layout.runtime, 'shims', 'half1.json'), 'utf8')) as { qemuPid?: number }).qemuPid);
    await killParent(qemuPid, 500);
    const err = await created;
    expect(err, `${err?.code}: ${err?.message}`).toMatchObject({ code: 'OPERATION_FAILED' });
    expect(err?.message).toContain('is listed with its shim lost');
    expect(await api.lookupByName({ name: 'half1' })).toMatchObject({ uuid, shimUp: false, qemuPid });
    expect(procState(qemuPid as number)).toMatch(/[RS]/);
    await expect(api.create({ definition: idleDef('half1') })).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    // Once its QEMU is gone too, reconciliation records the end.
    process.kill(qemuPid, 'SIGKILL');
    await until(async () => (await api.lookupByName({ name: 'half1' })).state === 'crashed', 10_000);
  });

  // Found by the chaos suite (the disk was full): with no state file naming it, such a QEMU could
  // never be taken over, and the next restart would not even list it.
  it('has a shim stop the QEMU of a failed start that no state file records (virtqemud signals no QEMU)', async () => {
    await h.startDaemon();
    const { api } = await h.client();
    const { uuid, created } = await startNeverRecorded(h, api, 'half2');
    const err = await created;
    expect(err, `${err?.code}: ${err?.message}`).toMatchObject({ code: 'OPERATION_FAILED' });
    expect(err?.message).toContain('which no state file records, was stopped by a reaping shim');
    await until(async () => findLiveQemu(uuid) === undefined, 5000);
    expect((await api.listDomains({})).domains).toEqual([]);
  });

  // Chaos seed 34005: the reaping shim was itself killed before it signalled, and the QEMU ran on,
  // found by nothing, holding its disks' leases; the name was free again meanwhile.
  it('has another reaping shim stop that QEMU when the first one is killed', async () => {
    await h.startDaemon();
    const { api } = await h.client();
    const { uuid, qemuPid, created } = await startNeverRecorded(h, api, 'half3');
    // The first reaping shim: frozen as soon as it shows (long before Node has loaded it), then killed.
    const reaper = await pidOnceThere(() => processesNaming('\0--reap\0half3\0')[0], 'no reaping shim for half3 within 10 s', 10_000, 2);
    process.kill(reaper, 'SIGSTOP');
    expect(findLiveQemu(uuid), 'the first reaping shim must not have signalled yet').toBe(qemuPid);
    process.kill(reaper, 'SIGKILL');
    const err = await created;
    expect(err, `${err?.code}: ${err?.message}`).toMatchObject({ code: 'OPERATION_FAILED' });
    expect(err?.message).toContain('which no state file records, was stopped by a reaping shim (attempt 2)');
    await until(async () => findLiveQemu(uuid) === undefined, 5000);
    expect((await api.listDomains({})).domains).toEqual([]);
  });

  // Chaos seed 34005, the other way to it: the shim died between spawning QEMU and recording it,
  // with no virtqemud waiting on the start. A restart's recovery must not leave that QEMU running.
  it('reaps, after a restart, a QEMU of its root that no state file names', async () => {
    const first = await h.startDaemon();
    const { api } = await h.client();
    const uuid = randomUUID();
    const row = await api.create({ definition: { ...idleDef('orph2'), uuid } });
    const qemuPid = row.qemuPid as number;
    process.kill(row.shimPid as number, 'SIGSTOP');
    first.proc.kill('SIGKILL');
    await first.exited;
    // The state file as the shim left it before its write naming QEMU.
    const file = join(h.layout.runtime, 'shims', 'orph2.json');
    const { qemuPid: recorded, ...unrecorded } = JSON.parse(readFileSync(file, 'utf8')) as { qemuPid?: number };
    expect(recorded).toBe(qemuPid);
    writeFileSync(file, JSON.stringify(unrecorded));
    process.kill(row.shimPid as number, 'SIGKILL');
    await h.startDaemon();
    await until(async () => findLiveQemu(uuid) === undefined, 10_000);
    const again = await h.client();
    expect(await again.api.lookupByName({ name: 'orph2' })).toMatchObject({ state: 'crashed', reason: 'lost-while-virtqemud-was-down' });
  });

  // Found by the chaos suite (the disk was full): a shim that could not record how its transient
  // VM ended, and died, took the VM out of the listing as if it had.
  it('keeps a stopped transient VM listed when its shim went without recording the end', async () => {
    await h.startDaemon();
    const { api } = await h.client();
    const row = await api.create({ definition: idleDef('unrec1') });
    // From now on every write of the state file fails (a directory where it goes).
    const file = join(h.layout.runtime, 'shims', 'unrec1.json');
    rmSync(file);
    mkdirSync(file);
    process.kill(row.qemuPid as number, 'SIGKILL');
    await until(async () => (await api.lookupByName({ name: 'unrec1' })).state === 'crashed', 5000);
    // The shim waits for its state file to be writable; it dies first.
    process.kill(row.shimPid as number, 'SIGKILL');
    await until(async () => !(await api.lookupByName({ name: 'unrec1' })).shimUp, 5000);
    await delay(systemClock(), 300);
    expect(await api.lookupByName({ name: 'unrec1' })).toMatchObject({ state: 'crashed', reason: 'signal-SIGKILL', persistent: false });
  });

  it('refuses a second virtqemud on the same root and leaves the first serving', async () => {
    await h.startDaemon();
    const second = await h.startDaemon().catch((err: Error) => err);
    expect(second instanceof Error ? second.message : JSON.stringify(second.reply)).toContain('SOCKET_IN_USE');
    const { api } = await h.client();
    await expect(api.listDomains({})).resolves.toEqual({ domains: [] });
  });
});
