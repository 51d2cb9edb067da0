// Disk leases with the real shim binary and real QEMU: conflicts are virtq's LOCK_CONFLICT naming
// the holder (raised before QEMU is spawned), shared and read-only leases, a lease that outlives
// a killed shim and ends with its QEMU, hot-plug and detach, plugin checks, nop, path aliases.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { RpcClient, shimSockets, shimStateFile, type Definition, type DiskSpec } from '../../protocol/index.js';
import { lockManagerStatus } from '../../drivers/lock/loader.js';
import { LOCK_ABI_VERSION } from '../../drivers/lock/types.js';
import { procState } from '../../shim/vm/qemu-process.js';
import { guestDefinition, ShimHarness, type ShimReply } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const PAUSED = ['--no-register', '--paused'];

describe('disk leases', () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  /** A fresh raw image under the root. */
  const image = (name: string): string => {
    const path = h.root.path(name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, '8M']);
    return path;
  };
  const withDisk = (name: string, disk: Partial<DiskSpec> & { path: string }): Definition =>
    guestDefinition(name, { disks: [{ target: 'vda', format: 'raw', ...disk }] });
  /** Runs a shim that is expected to be refused; returns its reply and exit status. */
  const refused = async (def: Definition): Promise<{ reply: ShimReply; code: number | null }> => {
    writeFileSync(h.root.path(`${def.name}.def.json`), JSON.stringify(def));
    const run = await h.run(['--definition', h.root.path(`${def.name}.def.json`), ...PAUSED], def.name);
    return { reply: run.reply, code: await run.exited };
  };
  const configure = (config: object): void => {
    mkdirSync(h.layout.config, { recursive: true });
    writeFileSync(`${h.layout.config}/lock.json`, JSON.stringify(config));
  };
  const holderRecords = (): string[] => readdirSync(`${h.layout.state}/lockspace`).filter((n) => n.endsWith('.holder'));
  const serverInfo = async (name: string): Promise<Record<string, unknown>> => {
    const rpc = await RpcClient.connect(shimSockets(h.layout, name).admin, { clock: h.clock, defaultTimeoutMs: 10_000 });
    try {
      return ((await rpc.call('admin', 'serverInfo', {})) as { details: Record<string, unknown> }).details;
    } finally {
      rpc.close();
    }
  };

  it('refuses a second VM with the same writable disk, naming the first, before QEMU is spawned', async () => {
    const disk = image('shared.raw');
    const a = await h.start(withDisk('lk-a', { path: disk }), PAUSED);
    expect(await serverInfo('lk-a')).toMatchObject({ lockManager: { plugin: 'lockfile', ok: true } });
    const b = await refused(withDisk('lk-b', { path: disk }));
    expect(b.code).toBe(1);
    expect(b.reply).toMatchObject({
      ok: false,
      error: {
        code: 'LOCK_CONFLICT',
        message: expect.stringContaining(`in use by VM "lk-a" (uuid ${a.reply.uuid}, QEMU pid ${a.reply.qemuPid} on host `),
      },
    });
    // Nothing of lk-b is left: no QEMU was spawned (no QEMU log, no state file), no lease record.
    expect(existsSync(`${h.layout.log}/lk-b.qemu.log`)).toBe(false);
    expect(existsSync(shimStateFile(h.layout, 'lk-b'))).toBe(false);
    expect(holderRecords()).toHaveLength(1);
  });

  it('runs two VMs that both mark the disk shareable', async () => {
    const disk = image('cluster.raw');
    await h.start(withDisk('sh-a', { path: disk, shareable: true }), PAUSED);
    await expect(h.start(withDisk('sh-b', { path: disk, shareable: true }), PAUSED)).resolves.toMatchObject({ reply: { ok: true, state: 'paused' } });
  });

  it('runs two VMs that both use the disk read-only', async () => {
    const disk = image('base.raw');
    await h.start(withDisk('ro-a', { path: disk, readonly: true }), PAUSED);
    await expect(h.start(withDisk('ro-b', { path: disk, readonly: true }), PAUSED)).resolves.toMatchObject({ reply: { ok: true } });
  });

  it('refuses a writable use beside a read-only one, in either order', async () => {
    const d1 = image('one.raw');
    await h.start(withDisk('mx-a', { path: d1, readonly: true }), PAUSED);
    expect((await refused(withDisk('mx-b', { path: d1 }))).reply).toMatchObject({ error: { code: 'LOCK_CONFLICT', message: expect.stringContaining('VM "mx-a"') } });
    const d2 = image('two.raw');
    await h.start(withDisk('mx-c', { path: d2 }), PAUSED);
    expect((await refused(withDisk('mx-d', { path: d2, readonly: true }))).reply).toMatchObject({ error: { code: 'LOCK_CONFLICT', message: expect.stringContaining('VM "mx-c"') } });
  });

  it('keeps the lease when the holder\'s shim is killed, and frees it when that VM is destroyed', async () => {
    const disk = image('data.raw');
    const a = await h.start(withDisk('kl-a', { path: disk }), PAUSED);
    const qemuPid = a.reply.qemuPid as number;
    a.proc.kill('SIGKILL');
    await a.exited;
    expect(procState(qemuPid)).toMatch(/[RS]/);
    expect((await refused(withDisk('kl-c', { path: disk }))).reply).toMatchObject({
      error: { code: 'LOCK_CONFLICT', message: expect.stringContaining(`VM "kl-a" (uuid ${a.reply.uuid}, QEMU pid ${qemuPid}`) },
    });
    const successor = await h.run(['--no-register', '--attach', 'kl-a'], 'kl-a');
    expect(successor.reply).toMatchObject({ ok: true, qemuPid });
    const { api } = await h.connect(successor.reply.socket as string);
    await expect(api.destroy({ name: 'kl-a' })).resolves.toMatchObject({ state: 'shutoff' });
    await expect(h.start(withDisk('kl-c', { path: disk }), PAUSED)).resolves.toMatchObject({ reply: { ok: true } });
  });

  it('refuses to hot-plug a disk another VM holds, and detach gives the lease back', async () => {
    const held = image('held.raw');
    const free = image('free.raw');
    const other = await h.start(withDisk('hp-b', { path: held }), PAUSED);
    const vm = await h.start(guestDefinition('hp-a'));
    const con = await h.console(vm.rpc, 'hp-a');
    await con.reader.waitFor('GUEST-READY', 30_000);

    await expect(vm.api.attachDisk({ name: 'hp-a', disk: { path: held, target: 'vdb', format: 'raw' } })).rejects.toMatchObject({
      code: 'LOCK_CONFLICT', message: expect.stringContaining(`VM "hp-b" (uuid ${other.reply.uuid}`),
    });
    expect((await vm.api.getDefinition({ name: 'hp-a' })).disks).toEqual([]);

    const mark = con.reader.mark();
    await vm.api.attachDisk({ name: 'hp-a', disk: { path: free, target: 'vdb', format: 'raw' } });
    await con.reader.waitFor('TG-BLOCK-ADD', 20_000, mark);
    await expect(vm.api.attachDisk({ name: 'hp-a', disk: { path: free, target: 'vdc', format: 'raw' } })).rejects.toMatchObject({
      code: 'LOCK_CONFLICT', message: `disk ${free} is already used by VM "hp-a" as vdb`,
    });
    expect((await refused(withDisk('hp-c', { path: free }))).reply).toMatchObject({
      error: { code: 'LOCK_CONFLICT', message: expect.stringContaining(`VM "hp-a" (uuid ${vm.reply.uuid}, QEMU pid ${vm.reply.qemuPid}`) },
    });
    await vm.api.detachDisk({ name: 'hp-a', target: 'vdb' });
    await expect(h.start(withDisk('hp-c', { path: free }), PAUSED)).resolves.toMatchObject({ reply: { ok: true } });
  });

  it('treats symlinked and non-normalised paths to one image as the same resource', async () => {
    const disk = image('img.raw');
    mkdirSync(h.root.path('sub'));
    symlinkSync(disk, h.root.path('alias.raw'));
    await h.start(withDisk('al-a', { path: h.root.path('alias.raw') }), PAUSED);
    // Written by hand: path.join would normalise the `..` away.
    for (const [name, path] of [['al-b', `${h.root.dir}/sub/../img.raw`], ['al-c', `${h.root.dir}/./img.raw`], ['al-d', disk]]) {
      expect((await refused(withDisk(name as string, { path: path as string }))).reply).toMatchObject({
        error: { code: 'LOCK_CONFLICT', message: expect.stringContaining(`cannot lease disk ${disk} (exclusive): it is in use by VM "al-a"`) },
      });
    }
  });

  it('starts no VM when the plugin fails its version check, says why, and shows it in server info', async () => {
    const a = await h.start(guestDefinition('pv-a'), PAUSED);
    const plugin = h.root.path('ancient-lock.mjs');
    writeFileSync(plugin, `export const lockPlugin = { name: 'ancient', abiVersion: 0, features: [], enforcing: true,
      create: async () => { throw new Error('never created'); } };\n`);
    configure({ plugin });
    const why = `lock plugin "${plugin}" was written for lock ABI version 0; this virtq speaks lock ABI version ${LOCK_ABI_VERSION}`;

    const b = await refused(guestDefinition('pv-b'));
    expect(b.code).toBe(1);
    expect(b.reply).toMatchObject({ ok: false, error: { code: 'LOCK_MANAGER_UNAVAILABLE', message: expect.stringContaining(why) } });
    expect(existsSync(`${h.layout.log}/pv-b.qemu.log`)).toBe(false);
    // What virtqemud's server info reports for the root.
    await expect(lockManagerStatus(h.layout)).resolves.toEqual({ plugin, ok: false, error: why });

    // A successor shim still takes over the running VM, reports the broken plugin and refuses hot-plug.
    a.proc.kill('SIGTERM');
    await expect(a.exited).resolves.toBe(0);
    const successor = await h.run(['--no-register', '--attach', 'pv-a'], 'pv-a');
    expect(successor.reply).toMatchObject({ ok: true, qemuPid: a.reply.qemuPid });
    expect(await serverInfo('pv-a')).toMatchObject({ lockManager: { plugin, ok: false, error: why } });
    const { api } = await h.connect(successor.reply.socket as string);
    await expect(api.attachDisk({ name: 'pv-a', disk: { path: image('x.raw'), target: 'vdb', format: 'raw' } })).rejects.toMatchObject({ code: 'LOCK_MANAGER_UNAVAILABLE' });

    // The explicit opt-out lets VMs start again.
    configure({ plugin: 'nop' });
    await expect(h.start(guestDefinition('pv-b'), PAUSED)).resolves.toMatchObject({ reply: { ok: true } });
    await expect(lockManagerStatus(h.layout)).resolves.toEqual({ plugin: 'nop', ok: true });
  });

  it('with nop takes no lease, and only QEMU\'s own image lock stands between two writers', async () => {
    configure({ plugin: 'nop' });
    const disk = image('unguarded.raw');
    await h.start(withDisk('np-a', { path: disk }), PAUSED);
    expect(await serverInfo('np-a')).toMatchObject({ lockManager: { plugin: 'nop', ok: true } });
    expect(existsSync(`${h.layout.state}/lockspace`)).toBe(false);
    const b = await refused(withDisk('np-b', { path: disk }));
    expect(b.reply).toMatchObject({ ok: false, error: { code: 'OPERATION_FAILED', message: expect.stringContaining('lock') } });
  });
});

