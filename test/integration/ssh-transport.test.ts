// qemu+ssh:// against a real OpenSSH server on a loopback port (Debian's sshd, throwaway keys,
// its own config): the host listing, lifecycle events, a per-VM call and the serial console of a
// real VM through virtqemud's forwarding; a volume upload and download over storage+ssh; the
// CLI; and the failures (wrong key, changed host key, no virtq on the far side, no daemon there,
// nothing listening, no ssh binary) as typed errors; and the proxy run as an unprivileged user
// against the real daemon (rw refused, ro served). No process is left behind.
import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connect, connectAdmin, connectStorage, type Connection } from '../../client/index.js';
import { dialSsh } from '../../client/ssh-transport.js';
import { parseUri, systemClock, type LifecycleEvent, type SshTarget } from '../../protocol/index.js';
import { guestConsole } from '../helpers/guest-console.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { startSshServer, type SshServer } from '../helpers/ssh-server.js';
import { until } from '../helpers/storage-world.js';
import { testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const VIRTQ = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const run = promisify(execFile);
const MiB = 1024 * 1024;

/** Command lines of ssh clients and far-side proxies that mention `text`. */
function sshProcessesOf(text: string): string[] {
  const lines: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let cmd: string;
    try { cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0').join(' '); } catch { continue; }
    if (cmd.includes(text) && (cmd.startsWith('ssh ') || cmd.includes(' proxy '))) lines.push(cmd);
  }
  return lines;
}

describe('qemu+ssh:// through a real sshd', () => {
  let sshd: SshServer;
  let h: ServiceHarness;
  let conns: Array<{ close(): void }>;
  beforeAll(async () => { sshd = await startSshServer(); });
  afterAll(async () => { await sshd.stop(); });
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); conns = []; });
  afterEach(async () => {
    for (const c of conns) c.close();
    await h.cleanup();
  });
  const keep = <C extends { close(): void }>(c: C): C => { conns.push(c); return c; };

  /** A URI of `scheme`+ssh to this test's root on the far side (which is this host, through sshd). */
  function sshUri(scheme: string, extra: Record<string, string> = {}): string {
    const q = new URLSearchParams({ root: h.root.dir, keyfile: sshd.userKey, known_hosts: sshd.knownHosts, command: VIRTQ, ...extra });
    return `${scheme}+ssh://root@127.0.0.1:${sshd.port}/system?${q.toString().replace(/%2F/g, '/')}`;
  }

  it('lists VMs, delivers events, calls a running VM and opens its console through ssh', async () => {
    await h.start('virtqemud');
    const remote: Connection = keep(await connect(sshUri('qemu')));
    expect(remote.peer).toBe('daemon');
    const events = await remote.events();
    const g = testGuest();
    await remote.virtq.define({ definition: { name: 'far1', memoryMiB: 128, accel: testAccel(), kernel: { path: g.kernel, initrd: g.initrd, cmdline: 'console=ttyS0 quiet panic=-1' } } });
    await remote.virtq.start({ name: 'far1' });
    const seen: LifecycleEvent[] = [];
    for (let e = await events.next(); e.done !== true; e = await events.next()) {
      seen.push(e.value);
      if (e.value.event === 'started') break;
    }
    expect(seen.map((e) => e.event)).toContain('started');

    const con = await guestConsole(remote, 'far1');
    conns.push(con);
    await con.serial.waitFor('GUEST-READY', 90_000);
    await con.run('echo SSH-$((6*7))-OK', 'SSH-42-OK');
    // A per-VM call goes through virtqemud's forwarding to the VM's shim.
    expect(await remote.domain('far1').getInfo()).toMatchObject({ state: 'running' });
    expect((await remote.virtq.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'far1', state: 'running', persistent: true })]);
    await remote.domain('far1').destroy();
    expect(await remote.domain('far1').getState()).toMatchObject({ state: 'shutoff' });

    con.close();
    remote.close();
    // The ssh client and the far side's proxy both go once the connection closes.
    expect(await until(() => sshProcessesOf(h.root.dir).length === 0, 10_000)).toBe(true);
  }, 180_000);

  it('uploads and downloads a volume over storage+ssh', async () => {
    await h.start('virtstoraged');
    const storage = keep(await connectStorage(sshUri('storage')));
    await storage.api.createVolume({ pool: 'default', name: 'up.raw', capacity: 8 * MiB });
    const bytes = Buffer.alloc(8 * MiB);
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32BE(i, i);
    await storage.upload('default', 'up.raw', (async function* () { for (let i = 0; i < bytes.length; i += MiB) yield bytes.subarray(i, i + MiB); })(), bytes.length);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(await storage.api.listVolumes({ pool: 'default' })).toMatchObject({ volumes: expect.arrayContaining([expect.objectContaining({ name: 'up.raw', capacity: 8 * MiB })]) });
    const back: Buffer[] = [];
    const n = await storage.download('default', 'up.raw', async (c) => { back.push(Buffer.from(c)); });
    expect(n).toBe(bytes.length);
    expect(sha(Buffer.concat(back))).toBe(sha(bytes));
  }, 60_000);

  it('serves the CLI: -c qemu+ssh:// reaches virtqemud, and storage commands reach virtstoraged on the same host', async () => {
    await h.start('virtqemud');
    await h.start('virtstoraged');
    const list = await run(process.execPath, [VIRTQ, '-c', sshUri('qemu'), 'list', '--all', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
    const pools = await run(process.execPath, [VIRTQ, '-c', sshUri('qemu'), 'pool-list', '--json']);
    expect(JSON.parse(pools.stdout)).toMatchObject({ pools: expect.arrayContaining([expect.objectContaining({ name: 'default' })]) });
  }, 60_000);

  it('reaches the far daemon\'s admin socket with virtq proxy --admin', async () => {
    await h.start('virtqemud');
    const adm = keep(await connectAdmin(sshUri('qemu')));
    expect(await adm.admin.serverInfo({})).toMatchObject({ version: expect.any(String) });
    // The proxy's own connection shows in the daemon's client list like any local client.
    expect((await adm.admin.listClients({})).clients.length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('is read-only with ?readonly=1: the listing works, a change is PERMISSION_DENIED', async () => {
    await h.start('virtqemud');
    const ro = keep(await connect(sshUri('qemu', { readonly: '1' })));
    expect(ro.readOnly).toBe(true);
    expect((await ro.virtq.listDomains({})).domains).toEqual([]);
    const g = testGuest();
    await expect(ro.virtq.define({ definition: { name: 'nope', memoryMiB: 64, kernel: { path: g.kernel } } })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  }, 60_000);

  it('refuses a key sshd does not accept with PERMISSION_DENIED and ssh\'s own words', async () => {
    await h.start('virtqemud');
    const err = await connect(sshUri('qemu', { keyfile: sshd.strangerKey })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('Permission denied (publickey)') });
    expect(err).toMatchObject({ details: { stderr: expect.stringContaining('Permission denied') } });
  }, 60_000);

  it('refuses a host whose key differs from known_hosts, and no_verify=1 adds an unknown one', async () => {
    await h.start('virtqemud');
    await expect(connect(sshUri('qemu', { known_hosts: sshd.wrongKnownHosts }))).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('Host key verification failed') });
    const fresh = h.root.path('fresh_known_hosts');
    writeFileSync(fresh, '');
    await expect(connect(sshUri('qemu', { known_hosts: fresh }))).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    const c = keep(await connect(sshUri('qemu', { known_hosts: fresh, no_verify: '1' })));
    expect((await c.virtq.listDomains({})).domains).toEqual([]);
    // The key was remembered: the strict check now passes.
    c.close();
    const again = keep(await connect(sshUri('qemu', { known_hosts: fresh })));
    expect((await again.virtq.listDomains({})).domains).toEqual([]);
    // A changed key is refused even with no_verify (libvirt's meaning: new keys only).
    await expect(connect(sshUri('qemu', { known_hosts: sshd.wrongKnownHosts, no_verify: '1' }))).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  }, 60_000);

  it('says NO_CONNECT when the far side has no virtq, no daemon, or nothing listens', async () => {
    await expect(connect(sshUri('qemu', { command: '/nonexistent/bin/virtq' }))).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringMatching(/virtq is not installed .*\/nonexistent\/bin\/virtq/) });
    // virtq is there but no virtqemud runs under the root: the far side's proxy says which socket it tried.
    await expect(connect(sshUri('qemu'))).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining(h.root.path('run', 'virtqemud.sock')) });
    const closed = sshUri('qemu').replace(`:${sshd.port}/`, ':1/');
    await expect(connect(closed)).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('Connection refused') });
    await expect(connect(sshUri('qemu'), { env: { PATH: '/nonexistent' } })).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('ssh is not installed') });
  }, 60_000);
});

describe('virtq proxy as an unprivileged user (the far side\'s identity)', () => {
  let h: ServiceHarness;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  // The proxy runs as uid 65534 (nobody), as ssh would run it for that user; ssh itself is not
  // needed to show what the socket permissions let that user do.
  const asNobody = (proxyArgs: string[]) => (_cmd: string, _args: readonly string[], opts: SpawnOptions) =>
    spawn(process.execPath, [VIRTQ, 'proxy', ...proxyArgs], { ...opts, uid: 65534, gid: 65534, env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });

  it('gets PERMISSION_DENIED from the read-write socket and the listing from the read-only one', async () => {
    await h.start('virtqemud');
    chmodSync(h.root.dir, 0o755);
    const uri = `qemu:///system?root=${h.root.dir}`;
    const target = parseUri(`qemu+ssh://nobody@far/system?root=${h.root.dir}`) as SshTarget;
    const opts = { clock: systemClock(), timeoutMs: 30_000, env: process.env };
    await expect(dialSsh(target, { ...opts, spawn: asNobody([uri]) })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('permission denied for uid 65534') });
    const ro = await dialSsh(target, { ...opts, spawn: asNobody(['-r', uri]) });
    try {
      expect(await ro.call('virtq', 'listDomains', {})).toEqual({ domains: [] });
      await expect(ro.call('virtq', 'define', { definition: { name: 'x', memoryMiB: 64, kernel: { path: '/k' } } })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    } finally {
      ro.close();
    }
  }, 60_000);
});
