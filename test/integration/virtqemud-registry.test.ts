// virtqemud with real shims and QEMU: name uniqueness under races, the listing through a VM's
// life, forwarding per-VM calls, and refusing registrations that would steal a name.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RpcClient, VirtqError, startRequestText, type DomainRow, type LifecycleEvent } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { guestDefinition, SHIM_BIN } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { SerialReader } from '../helpers/serial-reader.js';
import { Readable } from 'node:stream';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const row = (rows: DomainRow[], name: string) => rows.find((r) => r.name === name);

describe('virtqemud registry and listing', () => {
  let h: DaemonHarness;
  beforeEach(async () => {
    h = new DaemonHarness(tmpRoot());
    await h.startDaemon();
  });
  afterEach(async () => { await h.cleanup(); });

  it('lets exactly one of 200 concurrent defines of one name win', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => RpcClient.connect(h.sockets.rw, { clock: h.clock })));
    const results = await Promise.allSettled(clients.map((c) => c.call('virtq', 'define', { definition: idleDef('race1') })));
    for (const c of clients) c.close();
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const codes = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as VirtqError).code] : []));
    expect(new Set(codes)).toEqual(new Set(['NAME_IN_USE']));
    const { api } = await h.client();
    expect((await api.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'race1', persistent: true, state: 'shutoff' })]);
  });

  it('runs exactly one VM when many clients create the same transient name at once', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => RpcClient.connect(h.sockets.rw, { clock: h.clock, defaultTimeoutMs: 60_000 })));
    const results = await Promise.allSettled(clients.map((c) => c.call('virtq', 'create', { definition: idleDef('race2') })));
    for (const c of clients) c.close();
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => ((r as PromiseRejectedResult).reason as VirtqError).code)).toEqual(Array(7).fill('NAME_IN_USE'));
    const { api } = await h.client();
    const rows = (await api.listDomains({})).domains;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ name: 'race2', state: 'running', persistent: false, shimUp: true });
    expect(h.states().filter((s) => s.name === 'race2')).toHaveLength(1);
  });

  it('refuses, before any QEMU is spawned, a shim whose name a definition or a live shim holds', async () => {
    const { api } = await h.client();
    await api.define({ definition: { ...idleDef('held1'), uuid: '11111111-2222-3333-4444-555555555555' } });
    await api.create({ definition: idleDef('live1') });
    for (const name of ['held1', 'live1']) {
      writeFileSync(h.root.path(`${name}-intruder.json`), JSON.stringify(idleDef(name)));
      const shim = spawn(process.execPath, [SHIM_BIN, '--root', h.root.dir, '--definition', h.root.path(`${name}-intruder.json`)], { stdio: ['ignore', 'pipe', 'ignore'] });
      const out = await new Promise<string>((resolve) => { let s = ''; shim.stdout.on('data', (d: Buffer) => { s += d.toString(); }); shim.once('exit', () => resolve(s)); });
      expect(JSON.parse(out)).toMatchObject({ ok: false, error: { code: 'NAME_IN_USE' } });
    }
    expect(existsSync(h.root.path('log', 'held1.qemu.log'))).toBe(false);
    const rows = (await api.listDomains({})).domains;
    expect(row(rows, 'held1')).toMatchObject({ state: 'shutoff', persistent: true });
    expect(row(rows, 'live1')).toMatchObject({ state: 'running' });
  });

  // Issue 15 target 1 (decision 0026, session 16): a start on stdin (virtqemud's way) execs QEMU (-S) before the reply
  // to its `register`; a refusal must still fail the start with NAME_IN_USE and leave no QEMU (any order of the start).
  it('fails a --start-request shim whose register is refused, and kills the QEMU it spawned first', async () => {
    const { api } = await h.client();
    await api.define({ definition: { ...idleDef('held2'), uuid: '11111111-2222-3333-4444-666666666666' } });
    const shim = spawn(process.execPath, [SHIM_BIN, '--root', h.root.dir, '--definition', '-', '--start-request'], { stdio: ['pipe', 'pipe', 'ignore'] });
    shim.stdin.end(startRequestText(idleDef('held2'), false, undefined));
    const out = await new Promise<string>((resolve) => { let s = ''; shim.stdout.on('data', (d: Buffer) => { s += d.toString(); }); shim.once('exit', () => resolve(s)); });
    expect(JSON.parse(out)).toMatchObject({ ok: false, error: { code: 'NAME_IN_USE' } });
    expect(existsSync(h.root.path('log', 'held2.qemu.log'))).toBe(true); // QEMU was spawned before the refusal came
    const qemus = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
      try { const cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1'); return cmd.includes(h.root.dir) && cmd.includes('held2') && !cmd.includes('node'); } catch { return false; }
    });
    expect(qemus).toEqual([]);
    expect(row((await api.listDomains({})).domains, 'held2')).toMatchObject({ state: 'shutoff', persistent: true });
  });

  it('keeps the listing right through start, suspend, shutdown, crash and undefine, with events', async () => {
    const { api, rpc } = await h.client();
    await api.subscribeEvents({});
    const events = rpc.events()[Symbol.asyncIterator]();
    const seen: string[] = [];
    const waitEvent = async (kind: string, name: string) => {
      for (;;) {
        const ev = (await events.next()).value.body as LifecycleEvent;
        seen.push(`${ev.name}:${ev.event}`);
        if (ev.event === kind && ev.name === name) return ev;
      }
    };
    await api.define({ definition: guestDefinition('life2') });
    await waitEvent('defined', 'life2');
    expect((await api.start({ name: 'life2' })).state).toBe('running');
    await waitEvent('started', 'life2');
    expect((await api.listDomains({ active: true })).domains.map((r) => r.name)).toEqual(['life2']);
    expect((await api.listDomains({ inactive: true })).domains).toEqual([]);

    // Per-VM calls through virtqemud answer as the shim does.
    const viaDaemon = await api.getInfo({ name: 'life2' });
    const direct = await h.connect(viaDaemon.shimPid ? (await api.lookupByName({ name: 'life2' })).shimSocket as string : '');
    const viaShim = await direct.api.getInfo({ name: 'life2' });
    expect({ ...viaDaemon, uptimeSec: 0, cpuTimeSec: 0 }).toEqual({ ...viaShim, uptimeSec: 0, cpuTimeSec: 0 });
    expect(Math.abs(viaDaemon.uptimeSec - viaShim.uptimeSec)).toBeLessThan(5);
    expect(viaDaemon.cpuTimeSec).toBeGreaterThan(0);
    // State and info come from virtqemud's registry: they answer while the shim is frozen.
    process.kill(viaDaemon.shimPid, 'SIGSTOP');
    try {
      const quick = { timeoutMs: 2000 };
      await expect(rpc.call('virtq', 'getInfo', { name: 'life2' }, quick)).resolves.toMatchObject({ name: 'life2', state: 'running', tainted: false });
      await expect(rpc.call('virtq', 'getState', { name: 'life2' }, quick)).resolves.toMatchObject({ state: 'running' });
    } finally {
      process.kill(viaDaemon.shimPid, 'SIGCONT');
    }
    // Passthrough taints the VM; virtqemud's answer follows.
    await api.qemuMonitorCommand({ name: 'life2', command: { execute: 'query-status' } });
    expect((await api.getInfo({ name: 'life2' })).tainted).toBe(true);
    expect((await direct.api.getInfo({ name: 'life2' })).tainted).toBe(true);
    expect(await api.getDefinition({ name: 'life2' })).toEqual(await direct.api.getDefinition({ name: 'life2' }));

    const stream = await rpc.openStream('virtq', 'openConsole', { name: 'life2' });
    await new SerialReader(Readable.from(stream)).waitFor('GUEST-READY', 30_000);
    stream.end();

    await api.suspend({ name: 'life2' });
    await waitEvent('suspended', 'life2');
    expect((await api.listDomains({})).domains[0]).toMatchObject({ state: 'paused', reason: 'user' });
    await api.resume({ name: 'life2' });
    await expect(api.shutdown({ name: 'life2', timeoutSec: 30 })).resolves.toEqual({ state: 'shutoff', reason: 'shutdown' });
    await waitEvent('stopped', 'life2');
    expect((await api.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'life2', state: 'shutoff', reason: 'shutdown', persistent: true })]);

    await api.start({ name: 'life2' });
    const qemuPid = (await api.lookupByName({ name: 'life2' })).qemuPid as number;
    process.kill(qemuPid, 'SIGKILL');
    expect((await waitEvent('crashed', 'life2')).reason).toBe('signal-SIGKILL');
    expect((await api.listDomains({})).domains[0]).toMatchObject({ state: 'crashed', reason: 'signal-SIGKILL' });

    await api.undefine({ name: 'life2' });
    await waitEvent('undefined', 'life2');
    expect((await api.listDomains({})).domains).toEqual([]);
    await expect(api.getState({ name: 'life2' })).rejects.toMatchObject({ code: 'NO_DOMAIN' });
  });

  // Found by the chaos suite: an undefine that ran while a define of the same name was writing
  // dropped the record the define then completed, leaving a definition on disk that was not listed.
  it('keeps the listing and the definitions on disk in step when define and undefine of one name race', async () => {
    const a = await h.client();
    const b = await h.client();
    const { uuid } = await a.api.define({ definition: idleDef('flip1') });
    const file = join(h.layout.config, 'domains', 'flip1.json');
    for (let i = 0; i < 40; i++) {
      await Promise.allSettled([b.api.undefine({ name: 'flip1' }), a.api.define({ definition: { ...idleDef('flip1'), uuid, memoryMiB: 32 + i } })]);
      const listed = (await a.api.listDomains({})).domains.some((r) => r.name === 'flip1' && r.persistent);
      expect(listed).toBe(existsSync(file));
      if (!listed) await a.api.define({ definition: { ...idleDef('flip1'), uuid } });
    }
  });

  it('serves reads on the read-only socket and refuses writes there', async () => {
    const ro = await h.client(true);
    await expect(ro.api.listDomains({})).resolves.toEqual({ domains: [] });
    await expect(ro.api.define({ definition: idleDef('nope') })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(ro.rpc.call('registry', 'register', {})).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
