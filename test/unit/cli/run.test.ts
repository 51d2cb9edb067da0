// The CLI against a fake server: argument parsing, what each command calls, human and JSON
// output, and the exit statuses (0 success, 1 failed operation with one error line, 2 usage).
import { mkdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VirtqError } from '../../../protocol/index.js';
import { fake } from './fake-io.js';
import { tmpRoot } from '../../helpers/tmp-root.js';

const info = {
  name: 'web1', uuid: '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', state: 'running', reason: 'booted', vcpus: 1, memoryMiB: 128,
  cpuTimeSec: 1.234, qemuPid: 4242, shimPid: 4241, uptimeSec: 12.5, tainted: false, accel: 'tcg',
};
const row = { name: 'web1', uuid: info.uuid, state: 'running', reason: 'booted', persistent: true, autostart: false, shimUp: true };

describe('virtq command line', () => {
  it('calls getState with the VM name and prints the state', async () => {
    const f = fake({ procs: { getState: { state: 'paused', reason: 'user' } } });
    expect(await f.run('-c', 'qemu:///session', 'domstate', 'web1')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'getState', args: { name: 'web1' }, timeoutMs: undefined }]);
    expect(f.stdout.text).toBe('paused\n');
    expect(f.uris).toEqual(['qemu:///session']);
    expect(f.closed).toBe(1);
  });

  it('prints the reason with --reason and JSON with --json, before or after the command', async () => {
    const f = fake({ procs: { getState: { state: 'paused', reason: 'user' } } });
    expect(await f.run('domstate', 'web1', '--reason')).toBe(0);
    expect(f.stdout.text).toBe('paused (user)\n');
    const g = fake({ procs: { getState: { state: 'paused', reason: 'user' } } });
    expect(await g.run('--json', 'domstate', 'web1')).toBe(0);
    expect(JSON.parse(g.stdout.text)).toEqual({ state: 'paused', reason: 'user' });
  });

  it('renders dominfo as aligned labels', async () => {
    const f = fake({ procs: { getInfo: info } });
    expect(await f.run('dominfo', 'web1')).toBe(0);
    const lines = f.stdout.text.trimEnd().split('\n');
    expect(lines).toContain('Name:          web1');
    expect(lines).toContain('Memory (MiB):  128');
    expect(lines).toContain('CPU time (s):  1.23');
    expect(lines).toContain('Tainted:       no');
    expect(new Set(lines.map((l) => l.indexOf(l.split(/:\s+/)[1] ?? '')))).toHaveProperty('size', 1);
  });

  it('lists active VMs by default, every VM with --all, and prints an array with --json', async () => {
    const f = fake({ procs: { listDomains: { domains: [row] } } });
    expect(await f.run('list')).toBe(0);
    expect(f.calls[0]).toMatchObject({ proc: 'listDomains', args: { active: true } });
    expect(f.stdout.text.split('\n')[0]).toMatch(/^ NAME\s+STATE\s+REASON\s+PERSISTENT\s+AUTOSTART$/);
    expect(f.stdout.text).toMatch(/ web1\s+running\s+booted\s+yes\s+no/);
    const g = fake({ procs: { listDomains: { domains: [row] } } });
    expect(await g.run('list', '--all', '--json')).toBe(0);
    expect(g.calls[0]).toMatchObject({ args: {} });
    expect(JSON.parse(g.stdout.text)).toEqual([row]);
    const h = fake({ procs: { listDomains: { domains: [] } } });
    expect(await h.run('list', '--state', 'shutoff')).toBe(0);
    expect(h.calls[0]).toMatchObject({ args: { state: 'shutoff' } });
  });

  it('maps shutdown --timeout to timeoutSec and waits longer than it for the reply', async () => {
    const f = fake({ procs: { shutdown: { state: 'shutoff', reason: 'shutdown' } } });
    expect(await f.run('shutdown', 'web1', '--timeout', '30')).toBe(0);
    expect(f.calls[0]).toEqual({ proc: 'shutdown', args: { name: 'web1', timeoutSec: 30 }, timeoutMs: 90_000 });
    expect(f.stdout.text).toBe("Domain 'web1' is shut off (shutdown)\n");
    expect(f.stderr.text).toBe('');
  });

  it('draws a spinner only when stderr is a terminal', async () => {
    const f = fake({ stderrTTY: true, procs: { shutdown: { state: 'shutoff', reason: 'shutdown' } } });
    expect(await f.run('shutdown', 'web1', '--timeout', '5')).toBe(0);
    expect(f.stderr.text).toContain("Shutting down 'web1'");
    expect(f.stderr.text.endsWith('\r\x1b[K')).toBe(true);
  });

  it('builds attach-disk arguments with the path made absolute against the cwd', async () => {
    const f = fake({ cwd: '/srv/vms', procs: { attachDisk: {} } });
    expect(await f.run('attach-disk', 'web1', 'img/extra.qcow2', 'vdb', '--format', 'qcow2', '--readonly')).toBe(0);
    expect(f.calls[0]?.args).toEqual({ name: 'web1', disk: { path: '/srv/vms/img/extra.qcow2', target: 'vdb', format: 'qcow2', readonly: true } });
    expect(f.stdout.text).toBe("Disk vdb attached to 'web1'\n");
  });

  it('accepts a QMP command as JSON or as a bare name', async () => {
    const f = fake({ procs: { qemuMonitorCommand: { result: { status: 'running' } } } });
    expect(await f.run('qemu-monitor-command', 'web1', '{"execute":"query-status"}')).toBe(0);
    expect(await f.run('qemu-monitor-command', 'web1', 'query-status')).toBe(0);
    expect(f.calls.map((c) => c.args)).toEqual([
      { name: 'web1', command: { execute: 'query-status' } },
      { name: 'web1', command: { execute: 'query-status' } },
    ]);
    expect(JSON.parse(f.stdout.text.split('}\n')[0] + '}')).toEqual({ status: 'running' });
  });

  it('turns autostart --disable into autostart false', async () => {
    const f = fake({ procs: { setAutostart: {} } });
    expect(await f.run('autostart', 'web1', '--disable')).toBe(0);
    expect(f.calls[0]?.args).toEqual({ name: 'web1', autostart: false });
  });

  it('uses VIRTQ_DEFAULT_URI, else session for users and system for root', async () => {
    const a = fake({ env: { VIRTQ_DEFAULT_URI: 'qemu:///system?root=/tmp/x' }, procs: { getState: { state: 'running', reason: 'booted' } } });
    await a.run('domstate', 'web1');
    const b = fake({ uid: 1000, procs: { getState: { state: 'running', reason: 'booted' } } });
    await b.run('domstate', 'web1');
    const c = fake({ uid: 0, procs: { getState: { state: 'running', reason: 'booted' } } });
    await c.run('domstate', 'web1');
    expect([...a.uris, ...b.uris, ...c.uris]).toEqual(['qemu:///system?root=/tmp/x', 'qemu:///session', 'qemu:///system']);
  });

  it('takes -c over VIRTQ_DEFAULT_URI over uri_default in client.json over the uid, for every daemon', async () => {
    const home = tmpRoot('vq-home-');
    try {
      mkdirSync(home.path('.config', 'virtq'), { recursive: true });
      writeFileSync(home.path('.config', 'virtq', 'client.json'), JSON.stringify({ uri_default: 'qemu:///system?root=/from-file' }));
      const state = { getState: { state: 'running', reason: 'booted' } };
      const withFile = fake({ uid: 0, env: { HOME: home.dir }, procs: state, service: { listPools: { pools: [] } } });
      await withFile.run('domstate', 'web1');
      await withFile.run('pool-list');
      const withEnv = fake({ uid: 0, env: { HOME: home.dir, VIRTQ_DEFAULT_URI: 'qemu:///system?root=/from-env' }, procs: state });
      await withEnv.run('domstate', 'web1');
      const withC = fake({ uid: 0, env: { HOME: home.dir, VIRTQ_DEFAULT_URI: 'qemu:///system?root=/from-env' }, procs: state });
      await withC.run('-c', 'qemu:///system?root=/from-c', 'domstate', 'web1');
      expect([...withFile.uris, ...withEnv.uris, ...withC.uris]).toEqual([
        'qemu:///system?root=/from-file', 'storage:storage:///system?root=/from-file', 'qemu:///system?root=/from-env', 'qemu:///system?root=/from-c',
      ]);
      // A broken file fails the command with one line naming it; -c does not read it.
      writeFileSync(home.path('.config', 'virtq', 'client.json'), '{');
      const broken = fake({ env: { HOME: home.dir }, procs: state });
      expect(await broken.run('domstate', 'web1')).toBe(1);
      expect(broken.stderr.text).toMatch(new RegExp(`^virtq: INVALID_ARG: ${home.path('.config', 'virtq', 'client.json')} is not valid JSON`));
      expect(await broken.run('-c', 'qemu:///session', 'domstate', 'web1')).toBe(0);
    } finally {
      home.remove();
    }
  });

  it('runs admin commands on the admin socket; limits with no option reads them', async () => {
    const limits = { maxClients: 10, maxInflightPerClient: 4, workerConcurrency: 2 };
    const f = fake({ admin: { getLimits: limits, setLimits: (a: Record<string, unknown>) => ({ ...limits, ...a }) } });
    expect(await f.run('admin', 'limits', '--json')).toBe(0);
    expect(JSON.parse(f.stdout.text)).toEqual(limits);
    expect(await f.run('admin', 'limits', '--max-clients', '20', '--workers', '3')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'getLimits', args: {} }, { proc: 'setLimits', args: { maxClients: 20, workerConcurrency: 3 } }]);
    expect(f.stdout.text).toContain('Max clients:');
    expect(f.uris[0]).toBe('admin:qemu:///session');
  });

  it('sets log filters and shows the ones in force', async () => {
    let filters = 'info';
    const f = fake({ admin: { setLogFilters: (a: Record<string, unknown>) => { filters = String(a['filters']); return {}; }, getLogFilters: () => ({ filters }) } });
    expect(await f.run('admin', 'log-filters', 'debug:rpc')).toBe(0);
    expect(f.stdout.text).toBe('debug:rpc\n');
  });
});

describe('virtq exit statuses', () => {
  it('exits 1 with one "virtq: CODE: message" line when the operation fails', async () => {
    const f = fake({ procs: { getInfo: () => { throw new VirtqError('NO_DOMAIN', 'no VM "nope"\nknown here'); } } });
    expect(await f.run('dominfo', 'nope')).toBe(1);
    expect(f.stderr.text).toBe('virtq: NO_DOMAIN: no VM "nope" known here\n');
    expect(f.stdout.text).toBe('');
  });

  it('exits 1 with NO_CONNECT when nothing serves the socket', async () => {
    const f = fake({ connectError: new VirtqError('NO_CONNECT', 'cannot connect to /run/x.sock: no such socket') });
    expect(await f.run('list')).toBe(1);
    expect(f.stderr.text).toBe('virtq: NO_CONNECT: cannot connect to /run/x.sock: no such socket\n');
  });

  it.each([
    [[]],
    [['bogus']],
    [['domstate']],
    [['domstate', 'a', 'b']],
    [['shutdown', 'web1', '--timeout', 'soon']],
    [['shutdown', 'web1', '--timeout', '-1']],
    [['list', '--state', 'sleeping']],
    [['list', '--bogus']],
    [['attach-disk', 'web1', 'x.img', 'vdb', '--format', 'vmdk']],
    [['admin', 'client-disconnect', 'one']],
    [['-c', 'http://example.com/', 'list']],
    [['-c', 'qemu:///nowhere', 'list']],
  ])('exits 2 on the usage error %j and calls nothing', async (argv) => {
    const f = fake();
    expect(await f.run(...argv)).toBe(2);
    expect(f.calls).toEqual([]);
    expect(f.uris).toEqual([]);
    expect(f.stderr.text).toMatch(/^(virtq: |Usage: )/);
  });

  it('exits 0 on --help with the catalogue description', async () => {
    const f = fake();
    expect(await f.run('dominfo', '--help')).toBe(0);
    expect(f.stdout.text).toContain('State, vCPUs, memory, CPU time, QEMU pid, uptime and taint of the VM.');
    const g = fake();
    expect(await g.run('--help')).toBe(0);
    expect(g.stdout.text).toContain('Exit status:');
    const h = fake();
    expect(await h.run('admin', 'server-info', '--help')).toBe(0);
    expect(h.stdout.text).toContain('Usage: virtq admin server-info');
  });
});
