// Proves the argv goldens are real: starts QEMU 7.2 with the argv of the fixtures (paths moved
// into a temp dir, images made by qemu-img), listening on the monitor and console sockets as the
// shim does, and checks over QMP what QEMU built. Every QEMU started here is killed in afterEach.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeDefinition, pathsOnly, type NormalizedDefinition } from '../../protocol/definition.js';
import { buildQemuArgv, macFor, type ArgvOptions } from '../../drivers/hypervisor/qemu/argv.js';
import { blockdevNodesFor, deviceFor } from '../../drivers/hypervisor/qemu/disk-devices.js';
import { findHostDevices } from '../../drivers/hypervisor/qemu/host-devices.js';

const QEMU = 'qemu-system-x86_64';
const FIXTURES = join(import.meta.dirname, '../fixtures/argv');
const GUEST_DIR = process.env['VIRTQ_TEST_GUEST_DIR'] || join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'virtq/test-guest');
const GUEST = existsSync(join(GUEST_DIR, 'manifest.json')) ? GUEST_DIR : undefined;
const CAN_TAP = canOpen('/dev/net/tun') && process.getuid?.() === 0;
const CAN_KVM = canOpen('/dev/kvm');
const CAN_LOOP = process.getuid?.() === 0 && canOpen('/dev/loop-control');

function canOpen(path: string): boolean {
  try { accessSync(path, constants.R_OK | constants.W_OK); return true; } catch { return false; }
}

/** A line-oriented QMP client over the socket QEMU dialled. */
class Qmp {
  private buf = '';
  private lines: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  private serial = 0;
  constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  private async take(match: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (;;) {
      const i = this.lines.findIndex(match);
      if (i >= 0) return this.lines.splice(i, 1)[0] as Record<string, unknown>;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
  close(): void {
    this.sock.destroy();
  }
  async handshake(): Promise<void> {
    await this.take((m) => 'QMP' in m);
    await this.execute('qmp_capabilities');
  }
  async execute(command: string, args?: object): Promise<unknown> {
    const id = `c${++this.serial}`;
    this.sock.write(`${JSON.stringify({ execute: command, id, ...(args === undefined ? {} : { arguments: args }) })}\n`);
    const reply = await this.take((m) => m['id'] === id);
    if ('error' in reply) throw new Error(`${command}: ${JSON.stringify(reply['error'])}`);
    return reply['return'];
  }
}

interface Started { proc: ChildProcess; qmp: Qmp; console: Socket; stderr: () => string; def: NormalizedDefinition; opts: ArgvOptions }
interface BlockInfo { qdev: string; inserted: { 'node-name': string; ro: boolean; drv: string; file: string } }

let tmp = '';
const procs: ChildProcess[] = [];
const servers: Server[] = [];
const loops: string[] = [];

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'virtq-argv-'));
});

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const gone = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      await gone;
    }
  }
  for (const s of servers.splice(0)) s.close();
  for (const l of loops.splice(0)) execFileSync('losetup', ['-d', l]);
  rmSync(tmp, { recursive: true, force: true });
});

/** Loads a fixture with every path moved under the temp dir and disk images created for real. */
function loadFixture(name: string, edit: (raw: Record<string, unknown>) => void = () => {}): { def: NormalizedDefinition; opts: ArgvOptions } {
  const raw = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as { definition: Record<string, unknown>; options: ArgvOptions };
  edit(raw.definition);
  const def = normalizeDefinition(raw.definition, () => { throw new Error('fixture has a uuid'); });
  const at = (p: string) => { const q = join(tmp, p); mkdirSync(dirname(q), { recursive: true }); return q; };
  if (def.kernel !== undefined) {
    if (GUEST === undefined) delete def.kernel;
    else def.kernel = { ...def.kernel, path: join(GUEST, 'vmlinuz'), ...(def.kernel.initrd === undefined ? {} : { initrd: join(GUEST, 'initrd.cpio.gz') }) };
  }
  def.disks = def.disks.map((d) => ({ ...d, path: at(d.path as string) }));
  for (const d of pathsOnly(def).disks) if (!existsSync(d.path)) execFileSync('qemu-img', ['create', '-q', '-f', d.format, d.path, '16M']);
  const o = raw.options;
  const opts: ArgvOptions = { ...o, monitorSocket: at(o.monitorSocket), consoleSocket: at(o.consoleSocket), ...(o.pidfile === undefined ? {} : { pidfile: at(o.pidfile) }) };
  return { def, opts };
}

function listen(path: string): Promise<Socket> {
  const server = createServer();
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('connection', (sock: Socket) => {
      sock.on('error', () => {}); // QEMU resets its end when it exits; that is expected here
      resolve(sock);
    });
    server.once('error', reject);
    server.listen(path);
  });
}

/** Starts QEMU like the shim does: listeners first, then QEMU dials both. */
async function startQemu(given: NormalizedDefinition, opts: ArgvOptions): Promise<Started> {
  const def = pathsOnly(given);
  const monitor = listen(opts.monitorSocket);
  const consoleConn = listen(opts.consoleSocket);
  const proc = spawn(QEMU, buildQemuArgv(def, opts), { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(proc);
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`qemu exited ${String(code)}: ${stderr}`))));
  const [mon, cons] = await Promise.race([Promise.all([monitor, consoleConn]), exited]);
  const qmp = new Qmp(mon);
  await Promise.race([qmp.handshake(), exited]);
  return { proc, qmp, console: cons, stderr: () => stderr, def, opts };
}

/** Starts QEMU expecting it to fail; resolves with its stderr. */
async function failingQemu(given: NormalizedDefinition, opts: ArgvOptions): Promise<string> {
  const def = pathsOnly(given);
  void listen(opts.monitorSocket);
  void listen(opts.consoleSocket);
  const proc = spawn(QEMU, buildQemuArgv(def, opts), { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(proc);
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const code = await new Promise((resolve) => proc.once('exit', resolve));
  expect(code).not.toBe(0);
  return stderr;
}

async function quit(vm: Started): Promise<void> {
  const exit = new Promise((resolve) => vm.proc.once('exit', resolve));
  await vm.qmp.execute('quit');
  expect(await exit).toBe(0);
}

function blockByDevice(blocks: BlockInfo[], target: string, bus: string): BlockInfo | undefined {
  const qdev = bus === 'virtio' ? `/machine/peripheral/disk-${target}/virtio-backend` : `disk-${target}`;
  return blocks.find((b) => b.qdev === qdev);
}

async function expectDisks(vm: Started): Promise<void> {
  const blocks = await vm.qmp.execute('query-block') as BlockInfo[];
  expect(blocks).toHaveLength(vm.def.disks.length);
  for (const d of vm.def.disks) {
    const b = blockByDevice(blocks, d.target, d.bus);
    expect(b, `disk ${d.target}`).toBeDefined();
    expect(b?.inserted).toMatchObject({ 'node-name': `fmt-${d.target}`, ro: d.readonly, drv: d.format, file: d.path });
  }
}

const REAL_CASES = ['minimal', 'kernel-boot', 'disks-raw', 'disks-qcow2', 'disks-readonly', 'disks-shareable', 'disks-ide',
  'interfaces-user', 'q35', 'q35-hotplug-ports', 'sandbox-on', 'lifecycle-no-reboot', 'paths-with-commas', 'accel-tcg'];

describe('buildQemuArgv against real QEMU', () => {
  it.each(REAL_CASES)('starts %s paused with the disks, NICs and ports the argv names', async (name) => {
    const { def, opts } = loadFixture(name);
    const vm = await startQemu(def, opts);
    expect(await vm.qmp.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
    await expectDisks(vm);
    const peripherals = (await vm.qmp.execute('qom-list', { path: '/machine/peripheral' }) as { name: string }[]).map((p) => p.name);
    for (const [i, iface] of def.interfaces.entries()) {
      expect(await vm.qmp.execute('qom-get', { path: `/machine/peripheral/nic${i}`, property: 'mac' })).toBe(macFor(def, iface, i));
    }
    if (def.machine.includes('q35')) expect(peripherals).toContain('rp1');
    if (opts.pidfile !== undefined) expect(readFileSync(opts.pidfile, 'utf8').trim()).toBe(String(vm.proc.pid));
    await quit(vm);
  });

  // Hosts without /dev/net/tun cannot have tap interfaces: there QEMU must refuse, naming tun.
  it('creates the tap interface named in the definition, or QEMU refuses clearly without /dev/net/tun', async () => {
    const { def, opts } = loadFixture('interfaces-tap', (d) => { d['interfaces'] = [{ type: 'tap', ifname: `vqt${String(process.pid % 100000)}` }]; });
    if (!CAN_TAP) {
      expect(await failingQemu(def, opts)).toMatch(/tun/);
      return;
    }
    const vm = await startQemu(def, opts);
    const ifname = def.interfaces[0]?.type === 'tap' ? def.interfaces[0].ifname : '';
    expect(existsSync(`/sys/class/net/${ifname}`)).toBe(true);
    await quit(vm);
  });

  // Hosts without /dev/kvm: QEMU must refuse -accel kvm rather than silently fall back.
  it.each(['accel-kvm', 'cpu-model'])('initialises KVM for %s where /dev/kvm is usable, else refuses (paused: nested KVM cannot run Linux here)', async (name) => {
    const { def, opts } = loadFixture(name);
    if (!CAN_KVM) {
      expect(await failingQemu(def, opts)).toMatch(/kvm/i);
      return;
    }
    const vm = await startQemu(def, opts);
    expect(await vm.qmp.execute('query-kvm')).toEqual({ enabled: true, present: true });
    await quit(vm);
  });

  it('opens a block device with host_device (disks-host-device)', async () => {
    expect(CAN_LOOP, 'this test needs root and /dev/loop-control').toBe(true);
    const { def, opts } = loadFixture('disks-host-device');
    const image = join(tmp, 'loop.img');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', image, '16M']);
    const loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    loops.push(loop);
    def.disks = def.disks.map((d) => ({ ...d, path: loop }));
    const vm = await startQemu(def, { ...opts, hostDevices: await findHostDevices([loop, image]) });
    await expectDisks(vm);
    await quit(vm);
  });

  it('lets a replacement listener take over the monitor: QEMU redials it (reconnect=1)', async () => {
    const { def, opts } = loadFixture('minimal');
    const vm = await startQemu(def, opts);
    const old = servers.splice(0, 1)[0];
    await new Promise<void>((resolve) => { old?.close(() => resolve()); vm.qmp.close(); });
    const again = await listen(opts.monitorSocket);
    const qmp = new Qmp(again);
    await qmp.handshake();
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    const exit = new Promise((resolve) => vm.proc.once('exit', resolve));
    await qmp.execute('quit');
    expect(await exit).toBe(0);
  });

  it.each([['disks-raw', undefined], ['q35', 'rp1']] as const)('hot-plugs a disk on %s with the same objects cold-plug uses', async (name, bus) => {
    const { def, opts } = loadFixture(name);
    const vm = await startQemu(def, opts);
    const extra = { path: join(tmp, 'hot.qcow2'), format: 'qcow2' as const, bus: 'virtio' as const, target: 'vdz', readonly: false, shareable: false };
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', extra.path, '16M']);
    for (const node of blockdevNodesFor(extra)) await vm.qmp.execute('blockdev-add', node);
    await vm.qmp.execute('device_add', deviceFor(extra, def.machine, bus === undefined ? {} : { bus }));
    const blocks = await vm.qmp.execute('query-block') as BlockInfo[];
    expect(blockByDevice(blocks, 'vdz', 'virtio')?.inserted).toMatchObject({ 'node-name': 'fmt-vdz', ro: false, drv: 'qcow2' });
    await quit(vm);
  });
});

describe('image locking with real QEMU', () => {
  function sharedDef(name: string, uuidTail: string, shareable: boolean, readonly = false) {
    return loadFixture('disks-raw', (d) => {
      d['name'] = name;
      d['uuid'] = `6f1c1f0e-3b0a-4d55-9d2e-${uuidTail}`;
      d['disks'] = [{ path: '/images/shared.img', target: 'vdb', shareable, readonly }];
    });
  }
  function withSockets(f: { def: NormalizedDefinition; opts: ArgvOptions }, tag: string) {
    return { def: f.def, opts: { ...f.opts, monitorSocket: join(tmp, `${tag}.qmp`), consoleSocket: join(tmp, `${tag}.con`) } };
  }

  it('lets shareable disks be opened by two VMs and refuses a VM that does not share', async () => {
    const a = withSockets(sharedDef('a', '000000000001', true), 'a');
    const b = withSockets(sharedDef('b', '000000000002', true), 'b');
    const c = withSockets(sharedDef('c', '000000000003', false), 'c');
    const vmA = await startQemu(a.def, a.opts);
    const vmB = await startQemu(b.def, b.opts);
    await expectDisks(vmB);
    expect(await failingQemu(c.def, c.opts)).toMatch(/Failed to get shared "write" lock/);
    await quit(vmB);
    await quit(vmA);
  });

  it('lets read-only users share and keeps a writer out of a disk another VM writes', async () => {
    const r1 = withSockets(sharedDef('r1', '000000000011', false, true), 'r1');
    const r2 = withSockets(sharedDef('r2', '000000000012', false, true), 'r2');
    const w = withSockets(sharedDef('w', '000000000013', false), 'w');
    const vm1 = await startQemu(r1.def, r1.opts);
    const vm2 = await startQemu(r2.def, r2.opts);
    expect(await failingQemu(w.def, w.opts)).toMatch(/Failed to get "write" lock/);
    await quit(vm2);
    await quit(vm1);
  });
});

describe('the q35 argv boots the test guest', () => {
  it('shows the cold-plugged disks, then a disk hot-plugged on a spare root port', async () => {
    const { def, opts } = loadFixture('q35');
    const vm = await startQemu(def, opts);
    let out = '';
    const seen = (marker: string) => new Promise<void>((resolve) => {
      const check = () => { if (out.includes(marker)) { vm.console.off('data', check); resolve(); } };
      vm.console.on('data', check);
      check();
    });
    vm.console.setEncoding('utf8').on('data', (s: string) => { out += s; });
    await vm.qmp.execute('cont');
    await seen('GUEST-READY');
    expect(out).toMatch(/TG-BLOCK-ADD vda /);
    expect(out).toMatch(/TG-BLOCK-ADD vdb /);
    const extra = { path: join(tmp, 'hot.img'), format: 'raw' as const, bus: 'virtio' as const, target: 'vdc', readonly: false, shareable: false };
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', extra.path, '8M']);
    for (const node of blockdevNodesFor(extra)) await vm.qmp.execute('blockdev-add', node);
    await vm.qmp.execute('device_add', deviceFor(extra, def.machine, { bus: 'rp1' }));
    await seen('TG-BLOCK-ADD vdc sectors=16384');
    await quit(vm);
  });
});
