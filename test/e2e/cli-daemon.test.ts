// The built CLI against a real virtqemud under a temporary root: the whole life of a persistent
// VM (define -> start -> list -> dominfo -> console -> suspend/resume -> shutdown -> undefine),
// events through the daemon, transient VMs, the read-only socket and the admin socket.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DomainInfo, DomainRow, LifecycleEvent, ServerInfo } from '../../protocol/index.js';
import { ListOutput } from '../../cli/json-output.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest, testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { clientIds, expectFailure, expectSchema, startVirtq, virtq, virtqJson, virtqOk, waitForSubscribers } from './virtq-cli.js';

describe('virtq CLI against virtqemud', () => {
  let h: DaemonHarness;
  let uri: string;
  const run = (...args: string[]) => virtqOk(['-c', uri, ...args], { cwd: h.root.dir });
  const json = <T>(schema: Parameters<typeof virtqJson>[1], ...args: string[]) => virtqJson<T>(['-c', uri, ...args], schema, { cwd: h.root.dir });

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot('vqed-'));
    const daemon = await h.startDaemon();
    expect(daemon.reply.ok).toBe(true);
    uri = `qemu:///system?root=${h.root.dir}`;
    // The definition names the guest by paths relative to its own directory.
    mkdirSync(h.root.path('guest'));
    symlinkSync(testGuest().kernel, h.root.path('guest', 'vmlinuz'));
    symlinkSync(testGuest().initrd, h.root.path('guest', 'initrd.gz'));
    mkdirSync(h.root.path('vms'));
    writeFileSync(h.root.path('vms', 'web1.json'), JSON.stringify({
      name: 'web1', memoryMiB: 128, vcpus: 1, accel: testAccel(),
      kernel: { path: '../guest/vmlinuz', initrd: '../guest/initrd.gz', cmdline: 'console=ttyS0 quiet panic=-1' },
    }));
  });
  afterAll(async () => { await h.cleanup(); });

  it('runs a persistent VM from define to undefine', async () => {
    const defined = await json<{ name: string; persistent: boolean }>(DomainRow, 'define', 'vms/web1.json');
    expect(defined).toMatchObject({ name: 'web1', state: 'shutoff', persistent: true });
    const def = JSON.parse(await run('dumpdef', 'web1')) as { kernel: { path: string; initrd: string } };
    expect(def.kernel).toMatchObject({ path: h.root.path('guest', 'vmlinuz'), initrd: h.root.path('guest', 'initrd.gz') });
    expect(await json(ListOutput, 'list')).toEqual([]);
    expect(await json(ListOutput, 'list', '--all')).toMatchObject([{ name: 'web1', state: 'shutoff', persistent: true, autostart: false }]);
    expect(await run('autostart', 'web1')).toBe("Domain 'web1' marked as autostarted\n");
    expect(await json(ListOutput, 'list', '--all')).toMatchObject([{ name: 'web1', autostart: true }]);
    expect(await run('autostart', 'web1', '--disable')).toBe("Domain 'web1' unmarked as autostarted\n");

    expect(await run('start', 'web1')).toBe("Domain 'web1' started\n");
    const listed = await run('list');
    expect(listed.split('\n')[0]).toMatch(/^ NAME\s+STATE/);
    expect(listed).toMatch(/^ web1\s+running\s+\S+\s+yes\s+no$/m);
    expect(await json(ListOutput, 'list', '--state', 'running')).toMatchObject([{ name: 'web1', state: 'running', persistent: true }]);
    expect(await run('dominfo', 'web1')).toMatch(/^Name: +web1$/m);
    await json(DomainInfo, 'dominfo', 'web1');

    // The console's history shows the guest booted (poll: each run ends when the guest is quiet).
    let output = '';
    for (let i = 0; i < 30 && !output.includes('GUEST-READY'); i++) output = (await virtq(['-c', uri, 'console', 'web1'])).stdout;
    expect(output).toContain('GUEST-READY');

    const admin = h.sockets.admin;
    const before = await clientIds(admin);
    const events = startVirtq(['-c', uri, 'event', '--loop', '--json', '--timeout', '120']);
    try {
      await waitForSubscribers(admin, before, 1);
      expect(await run('suspend', 'web1')).toBe("Domain 'web1' suspended\n");
      expect(await run('domstate', 'web1', '--reason')).toBe('paused (user)\n');
      expect(await run('resume', 'web1')).toBe("Domain 'web1' resumed\n");
      expect(await run('shutdown', 'web1', '--timeout', '30')).toBe("Domain 'web1' is shut off (shutdown)\n");
      const lines = (await events.lines(3)).map((l) => JSON.parse(l) as { event: string });
      for (const l of lines) expectSchema(l, LifecycleEvent);
      expect(lines.slice(0, 3).map((l) => l.event)).toEqual(['suspended', 'resumed', 'shutdown']);
    } finally {
      events.proc.kill('SIGKILL');
    }

    expect(await json(ListOutput, 'list')).toEqual([]);
    expect(await json(ListOutput, 'list', '--all')).toMatchObject([{ name: 'web1', state: 'shutoff', persistent: true }]);
    expect(await run('undefine', 'web1')).toBe("Domain 'web1' has been undefined\n");
    expect(await json(ListOutput, 'list', '--all')).toEqual([]);
    expectFailure(await virtq(['-c', uri, 'dominfo', 'web1']), 'NO_DOMAIN', /web1/);
  });

  it('creates a transient VM, paused, and destroys it', async () => {
    writeFileSync(h.root.path('vms', 'tmp1.json'), JSON.stringify({ name: 'tmp1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    expect(await run('create', 'vms/tmp1.json', '--paused')).toBe("Domain 'tmp1' created from vms/tmp1.json\n");
    expect(await json(ListOutput, 'list')).toMatchObject([{ name: 'tmp1', state: 'paused', persistent: false }]);
    expect(await run('destroy', 'tmp1')).toBe("Domain 'tmp1' destroyed\n");
    expect(await json(ListOutput, 'list')).toEqual([]);
  });

  it('reads on the read-only socket, refuses changes there, and serves admin commands', async () => {
    expect(await json(ListOutput, '-c', `${uri}&mode=ro`, 'list', '--all')).toEqual([]);
    writeFileSync(h.root.path('vms', 'ro1.json'), JSON.stringify({ name: 'ro1', memoryMiB: 32 }));
    expectFailure(await virtq(['-c', `${uri}&mode=ro`, 'define', 'vms/ro1.json'], { cwd: h.root.dir }), 'PERMISSION_DENIED', /read-only/);
    const info = await json<{ daemon: string }>(ServerInfo, 'admin', 'server-info');
    expect(info.daemon).toBe('virtqemud');
    expect(await run('admin', 'log-filters')).not.toBe('');
  });
});
