// Zero-downtime shim upgrade (issue 17 part 3, decision 0021) with the real shim binary and real
// QEMU: the guest's serial heartbeat (every 10 ms) shows no lost line across the upgrade, a second
// VM is refused the disk while it runs, clients reconnect to the successor, and a successor that
// cannot start, or dies once handed the VM, leaves the old shim serving.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { RpcClient, delay, shimSockets, shimStateFile, VirtqError, type Definition } from '../../protocol/index.js';
import { procState } from '../../shim/vm/qemu-process.js';
import { guestDefinition, SHIM_BIN, ShimHarness, type RunningShim } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { analyse, beatsInFile, HEARTBEAT_LOOP } from '../helpers/heartbeat.js';
import { readFileSync } from 'node:fs';

const FIXTURE = new URL('../fixtures/upgrade/successor-dies-after-take.mjs', import.meta.url).pathname;

describe('shim upgrade', { timeout: 120_000 }, () => {
  let h: ShimHarness;
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => {
    delete process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'];
    await h.cleanup();
  });

  const image = (name: string): string => {
    const path = h.root.path(name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, '8M']);
    return path;
  };
  const withDisk = (name: string, path: string): Definition => guestDefinition(name, { disks: [{ target: 'vda', format: 'raw', path }] });
  const consoleLog = (name: string): string => `${h.layout.log}/${name}.console.log`;
  const shimPidOf = (name: string): number => (JSON.parse(readFileSync(shimStateFile(h.layout, name), 'utf8')) as { shimPid: number }).shimPid;
  const admin = async (name: string): Promise<RpcClient> => RpcClient.connect(shimSockets(h.layout, name).admin, { clock: h.clock, defaultTimeoutMs: 120_000 });

  /** Boots the guest and starts its heartbeat; resolves once beats flow. */
  const heartbeat = async (vm: RunningShim, name: string): Promise<void> => {
    const con = await h.console(vm.rpc, name);
    await con.reader.waitFor('GUEST-READY', 60_000);
    con.write('\n');
    await con.reader.waitFor('tg# ', 20_000);
    con.write(HEARTBEAT_LOOP);
    await con.reader.waitFor('HB 50 ', 30_000);
    con.close();
  };
  /** Waits until the console log holds beat `seq`. */
  const beatReached = async (name: string, seq: number): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      const b = beatsInFile(consoleLog(name));
      if ((b[b.length - 1]?.seq ?? 0) >= seq) return;
      await delay(h.clock, 50);
    }
    throw new Error(`beat ${seq} never came`);
  };
  const lastSeq = (name: string): number => beatsInFile(consoleLog(name)).at(-1)?.seq ?? 0;
  const refusedStart = async (def: Definition): Promise<unknown> => {
    writeFileSync(h.root.path(`${def.name}.def.json`), JSON.stringify(def));
    const run = await h.run(['--no-register', '--paused', '--definition', h.root.path(`${def.name}.def.json`)], def.name);
    if (!run.reply.ok) await run.exited;
    return run.reply;
  };

  it('hands the VM to a successor: no heartbeat lost, the disk stays leased, clients reconnect', async () => {
    const disk = image('up.raw');
    const vm = await h.start(withDisk('up1', disk));
    await heartbeat(vm, 'up1');
    const oldPid = vm.proc.pid as number;
    const qemuPid = vm.reply.qemuPid as number;
    const rpc = await admin('up1');
    const upgrading = rpc.call('admin', 'upgrade', {});
    // A second VM wants the disk while the upgrade runs, and right after it: refused both times.
    const during = await refusedStart(withDisk('thief1', disk));
    const result = await upgrading as { name: string; oldPid: number; newPid: number; cutoverMs: number };
    const after = await refusedStart(withDisk('thief2', disk));
    expect(during).toMatchObject({ ok: false, error: { code: 'LOCK_CONFLICT' } });
    expect(after).toMatchObject({ ok: false, error: { code: 'LOCK_CONFLICT' } });
    expect(result).toMatchObject({ name: 'up1', oldPid });
    expect(result.newPid).not.toBe(oldPid);
    await expect(vm.exited).resolves.toBe(0);
    expect(procState(result.newPid)).toMatch(/[RS]/);
    expect(shimPidOf('up1')).toBe(result.newPid);

    // The old connection was closed cleanly; a new one reaches the successor, on the same QEMU.
    await expect(vm.rpc.closed).resolves.toMatchObject({ code: 'CONNECTION_CLOSED' });
    const { api, rpc: rpc2 } = await h.connect(vm.reply.socket as string);
    expect(await api.getInfo({ name: 'up1' })).toMatchObject({ state: 'running', qemuPid, shimPid: result.newPid });
    const mark = lastSeq('up1');
    await beatReached('up1', mark + 100);
    const hb = analyse(beatsInFile(consoleLog('up1')));
    expect(hb.lost).toBe(0);
    // The successor's QMP works (a command and its reply), and so does the console it took over.
    await api.suspend({ name: 'up1' });
    await api.resume({ name: 'up1' });
    const con = await h.console(rpc2, 'up1');
    await con.reader.waitFor(`HB ${lastSeq('up1') + 5} `, 20_000);
    // The successor owns everything: destroying the VM frees the disk and removes its sockets.
    await api.destroy({ name: 'up1' });
    for (let i = 0; i < 100 && procState(result.newPid) !== undefined && procState(result.newPid) !== 'Z'; i++) await delay(h.clock, 50);
    expect(await refusedStart(withDisk('thief3', disk))).toMatchObject({ ok: true });
  });

  it('upgrades on SIGUSR2', async () => {
    const vm = await h.start(guestDefinition('usr2'));
    await heartbeat(vm, 'usr2');
    vm.proc.kill('SIGUSR2');
    await expect(vm.exited).resolves.toBe(0);
    const pid = shimPidOf('usr2');
    expect(pid).not.toBe(vm.proc.pid);
    const { api } = await h.connect(vm.reply.socket as string);
    expect(await api.getInfo({ name: 'usr2' })).toMatchObject({ state: 'running', shimPid: pid });
    await beatReached('usr2', lastSeq('usr2') + 50);
    expect(analyse(beatsInFile(consoleLog('usr2'))).lost).toBe(0);
  });

  it('keeps the old shim serving when the successor binary cannot start', async () => {
    process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'] = h.root.path('no-such-shim.js');
    const vm = await h.start(guestDefinition('rb1'));
    await heartbeat(vm, 'rb1');
    const rpc = await admin('rb1');
    const err = await rpc.call('admin', 'upgrade', {}).catch((e: unknown) => VirtqError.from(e));
    expect(err).toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('keeps serving'), details: { rolledBack: true } });
    // Same shim, same connection, VM untouched, heartbeat whole.
    expect(await vm.api.getInfo({ name: 'rb1' })).toMatchObject({ state: 'running', shimPid: vm.proc.pid });
    await vm.api.suspend({ name: 'rb1' });
    await vm.api.resume({ name: 'rb1' });
    await beatReached('rb1', lastSeq('rb1') + 50);
    expect(analyse(beatsInFile(consoleLog('rb1'))).lost).toBe(0);
  });

  it('rolls back after the cut when the successor dies once handed the VM', async () => {
    process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'] = FIXTURE;
    const vm = await h.start(guestDefinition('rb2'));
    await heartbeat(vm, 'rb2');
    const rpc = await admin('rb2');
    const err = await rpc.call('admin', 'upgrade', {}).catch((e: unknown) => VirtqError.from(e));
    expect(err).toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringContaining('ended (exit status 3)') });
    // Other clients were cut off at the cut; they reconnect to the same old shim, which serves again.
    const { api } = await h.connect(vm.reply.socket as string);
    expect(await api.getInfo({ name: 'rb2' })).toMatchObject({ state: 'running', shimPid: vm.proc.pid });
    await api.suspend({ name: 'rb2' });
    await api.resume({ name: 'rb2' });
    await beatReached('rb2', lastSeq('rb2') + 50);
    expect(analyse(beatsInFile(consoleLog('rb2'))).lost).toBe(0);
  });

  it('refuses a bad or out-of-place --handover before touching any fd', async () => {
    const run = (args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, [SHIM_BIN, '--root', h.root.dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      p.once('exit', (code) => resolve({ code, out, err }));
    });
    const bad = await run(['--no-register', '--attach', 'x1', '--handover', 'rw=3,evil=4']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--handover: fd 3 for rw is outside 4..1023');
    const noAttach = await run(['--no-register', '--definition', '-', '--handover', 'rw=4']);
    expect(noAttach.code).toBe(2);
    expect(noAttach.err).toContain('--handover goes with --attach');
    // Well-formed, but not started by an upgrading shim (no IPC channel): refused, exit 1.
    const noIpc = await run(['--no-register', '--attach', 'x1', '--handover', 'rw=4,ro=5,admin=6,monitorListener=7,consoleListener=8,qmp=9']);
    expect(noIpc.code).toBe(1);
    expect(JSON.parse(noIpc.out)).toMatchObject({ ok: false, error: { code: 'INVALID_ARG', message: expect.stringContaining('no IPC channel') } });
  });
});
