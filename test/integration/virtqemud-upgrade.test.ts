// `virtq admin upgrade NAME | --all` through virtqemud (decision 0021) with real shims and QEMU:
// each shim is replaced by a successor from the binary on disk, the VMs keep their QEMU, virtqemud
// lists the new shim pids and forwards calls to them; bad requests are typed errors.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, VirtqError, type DomainRow } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
type Outcome = { name: string; ok: boolean; result?: { oldPid: number; newPid: number; cutoverMs: number }; error?: { code: string; message: string } };

describe('virtqemud admin upgradeShims', { timeout: 180_000 }, () => {
  let h: DaemonHarness;
  beforeEach(async () => {
    h = new DaemonHarness(tmpRoot());
    await h.startDaemon();
  });
  afterEach(async () => { await h.cleanup(); });

  const admin = (): Promise<RpcClient> => RpcClient.connect(h.sockets.admin, { clock: h.clock, defaultTimeoutMs: 170_000 });

  it('upgrades every running shim, a few at a time, and reports each', async () => {
    const { api } = await h.client();
    for (const n of ['ua', 'ub', 'uc']) await api.create({ definition: idleDef(n) });
    await api.suspend({ name: 'ub' });
    const before = new Map((await api.listDomains({})).domains.map((d: DomainRow) => [d.name, d]));
    const rpc = await admin();
    const { results } = await rpc.call('admin', 'upgradeShims', { all: true, parallel: 2 }) as { results: Outcome[] };
    expect(results.map((r) => [r.name, r.ok])).toEqual([['ua', true], ['ub', true], ['uc', true]]);
    const after = await h.client();
    for (const r of results) {
      const info = await after.api.getInfo({ name: r.name });
      expect(r.result?.newPid).not.toBe(r.result?.oldPid);
      expect(info).toMatchObject({ shimPid: r.result?.newPid, qemuPid: before.get(r.name)?.qemuPid, state: r.name === 'ub' ? 'paused' : 'running' });
    }
    // Calls forwarded to a successor reach QEMU.
    await after.api.resume({ name: 'ub' });
    expect(await after.api.getState({ name: 'ub' })).toMatchObject({ state: 'running' });
    // One VM by name, again (a successor can itself be upgraded).
    const one = await rpc.call('admin', 'upgradeShims', { name: 'ua' }) as { results: Outcome[] };
    expect(one.results).toEqual([expect.objectContaining({ name: 'ua', ok: true })]);
    await after.api.destroy({ name: 'ua' });
    // A destroyed transient VM is listed shut off until its shim has gone, then not at all.
    const state = await after.api.getState({ name: 'ua' }).then((s) => s.state, (e: { code?: string }) => e.code);
    expect(['shutoff', 'NO_DOMAIN']).toContain(state);
  });

  it('upgrades a VM again right after an upgrade: the call reaches the successor, not the exiting predecessor', async () => {
    // virtqemud's connection to the shim's admin socket is the one the predecessor kept open for
    // its reply; reused, the next upgrade reached a shim that had handed its VM over (CI, session 12).
    const { api } = await h.client();
    await api.create({ definition: idleDef('ur') });
    const rpc = await admin();
    const pids: number[] = [(await api.getInfo({ name: 'ur' })).shimPid as number];
    for (let i = 0; i < 3; i++) {
      const { results } = await rpc.call('admin', 'upgradeShims', { name: 'ur' }) as { results: Outcome[] };
      expect(results).toEqual([expect.objectContaining({ name: 'ur', ok: true })]);
      expect(results[0]?.result?.oldPid).toBe(pids[pids.length - 1]);
      pids.push(results[0]?.result?.newPid as number);
    }
    expect(new Set(pids).size).toBe(4);
    const after = await h.client();
    expect(await after.api.getInfo({ name: 'ur' })).toMatchObject({ shimPid: pids[3], state: 'running' });
  });

  it('refuses requests that name nothing to upgrade, with typed errors', async () => {
    const rpc = await admin();
    const err = (args: Record<string, unknown>) => rpc.call('admin', 'upgradeShims', args).catch((e: unknown) => VirtqError.from(e));
    await expect(err({})).resolves.toMatchObject({ code: 'INVALID_ARG' });
    await expect(err({ name: 'x', all: true })).resolves.toMatchObject({ code: 'INVALID_ARG' });
    await expect(err({ name: 'nosuch' })).resolves.toMatchObject({ code: 'NO_DOMAIN' });
    await expect(err({ name: '../etc' })).resolves.toMatchObject({ code: 'INVALID_ARG' });
    await expect(err({ all: true, parallel: 0 })).resolves.toMatchObject({ code: 'INVALID_ARG' });
    const { api } = await h.client();
    await api.define({ definition: idleDef('off1') });
    await expect(err({ name: 'off1' })).resolves.toMatchObject({ code: 'OPERATION_INVALID' });
    await expect(rpc.call('admin', 'upgradeShims', { all: true })).resolves.toEqual({ results: [] });
  });

  it('reports a shim whose successor died once handed the VM as not upgraded, and that shim serves and is registered again', async () => {
    await h.cleanup();
    h = new DaemonHarness(tmpRoot());
    process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'] = new URL('../fixtures/upgrade/successor-dies-after-take.mjs', import.meta.url).pathname;
    try {
      await h.startDaemon();
    } finally {
      delete process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'];
    }
    const { api } = await h.client();
    await api.create({ definition: idleDef('rbd') });
    const before = await api.getInfo({ name: 'rbd' });
    const rpc = await admin();
    const { results } = await rpc.call('admin', 'upgradeShims', { name: 'rbd' }) as { results: Outcome[] };
    expect(results).toEqual([expect.objectContaining({ name: 'rbd', ok: false, error: expect.objectContaining({ code: 'OPERATION_FAILED', message: expect.stringContaining('keeps serving') }) })]);
    // Registered again with virtqemud (the rollback re-registers), same shim, same QEMU; calls are forwarded.
    let row: DomainRow | undefined;
    for (let i = 0; i < 100; i++) {
      row = (await api.listDomains({})).domains.find((d: DomainRow) => d.name === 'rbd');
      if (row?.shimUp === true) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(row).toMatchObject({ shimUp: true, qemuPid: before.qemuPid });
    const fresh = await h.client();
    expect(await fresh.api.getInfo({ name: 'rbd' })).toMatchObject({ shimPid: before.shimPid, qemuPid: before.qemuPid, state: 'running' });
    await fresh.api.suspend({ name: 'rbd' });
    expect(await fresh.api.getState({ name: 'rbd' })).toMatchObject({ state: 'paused' });
  });
});
