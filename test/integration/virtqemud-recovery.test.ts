// virtqemud is disposable: kill -9 it with VMs running and clients connected, and the VMs and
// their shims carry on; a restarted virtqemud knows everything again and lets no name be
// stolen. A killed shim shows as lost until its successor re-attaches.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { delay, systemClock } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { procState } from '../../drivers/host/proc.js';

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

// The listing is promised to converge within a bound: check it against that bound.
async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const clock = systemClock();
  const end = clock.monotonic() + ms;
  while (!(await check())) {
    if (clock.monotonic() > end) throw new Error(`the listing did not converge within ${ms} ms`);
    await delay(clock, 50);
  }
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

    expect(await runShim(h, ['--attach', 'orphan1'])).toMatchObject({ ok: true });
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

  it('refuses a second virtqemud on the same root and leaves the first serving', async () => {
    await h.startDaemon();
    const second = await h.startDaemon().catch((err: Error) => err);
    expect(second instanceof Error ? second.message : JSON.stringify(second.reply)).toContain('SOCKET_IN_USE');
    const { api } = await h.client();
    await expect(api.listDomains({})).resolves.toEqual({ domains: [] });
  });
});
