// The built CLI against one real VM run by virtq-shim (no daemon), through both shim URIs:
// queries, console, events, suspend/resume, disks, QMP passthrough, admin, the read-only socket,
// the error paths, and shutdown. --json outputs are checked against their documented schemas.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Definition, DomainInfo, LifecycleEvent, ServerInfo, StateResult, adminProgram, virtqProgram } from '../../protocol/index.js';
import { guestDefinition, ShimHarness, type RunningShim } from '../helpers/shim-harness.js';
import type { SerialReader } from '../helpers/serial-reader.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { clientIds, expectFailure, expectSchema, startVirtq, virtq, virtqJson, virtqOk, waitForSubscribers } from './virtq-cli.js';

describe('virtq CLI against a shim', () => {
  let h: ShimHarness;
  let vm: RunningShim;
  let serial: SerialReader;
  let bySocket: string;
  let byName: string;
  let sockets: { rw: string; ro: string; admin: string };

  beforeAll(async () => {
    h = new ShimHarness(tmpRoot('vqe-'));
    vm = await h.start(guestDefinition('cli1'));
    sockets = { rw: vm.reply.socket as string, ro: h.root.path('run', 'shims', 'cli1-ro.sock'), admin: h.root.path('run', 'shims', 'cli1-admin.sock') };
    bySocket = `qemu+shim://${sockets.rw}`;
    byName = `shim:///cli1?root=${h.root.dir}`;
    serial = (await h.console(vm.rpc, 'cli1')).reader;
    await serial.waitFor('GUEST-READY', 60_000);
  });
  afterAll(async () => { await h.cleanup(); });

  it('domstate and dominfo answer through both URIs, as text and as JSON', async () => {
    for (const uri of [bySocket, byName]) {
      expect(await virtqOk(['-c', uri, 'domstate', 'cli1'])).toBe('running\n');
      expect(await virtqOk(['-c', uri, 'domstate', 'cli1', '--reason'])).toBe('running (booted)\n');
    }
    expect(await virtqJson(['-c', byName, 'domstate', 'cli1'], StateResult)).toEqual({ state: 'running', reason: 'booted' });
    const text = await virtqOk(['-c', bySocket, 'dominfo', 'cli1']);
    expect(text).toMatch(/^Name: +cli1$/m);
    expect(text).toMatch(/^State: +running$/m);
    expect(text).toMatch(/^Memory \(MiB\): +128$/m);
    const info = await virtqJson<{ qemuPid: number; tainted: boolean }>(['-c', bySocket, 'dominfo', 'cli1'], DomainInfo);
    expect(info).toMatchObject({ qemuPid: vm.reply.qemuPid, tainted: false });
    const def = await virtqJson<{ name: string }>(['-c', byName, 'dumpdef', 'cli1'], Definition);
    expect(def.name).toBe('cli1');
    expect(JSON.parse(await virtqOk(['-c', byName, 'dumpdef', 'cli1']))).toEqual(def);
  });

  it('console pipes stdin to the guest and shows its history and shell prompt', async () => {
    const r = await virtq(['-c', byName, 'console', 'cli1', '--timeout', '4'], { input: '\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('GUEST-READY');
    expect(r.stdout).toContain('tg# ');
    // Without --timeout it leaves once stdin has ended and the guest is quiet.
    const quick = await virtq(['-c', bySocket, 'console', 'cli1']);
    expect(quick.code, quick.stderr).toBe(0);
    expect(quick.stdout).toContain('GUEST-READY');
  });

  it('suspend and resume change the state and are seen by event, one JSON line each', async () => {
    const before = await clientIds(sockets.admin);
    const loop = startVirtq(['-c', bySocket, 'event', 'cli1', '--loop', '--json', '--timeout', '60']);
    const once = startVirtq(['-c', byName, 'event', 'cli1']);
    try {
      await waitForSubscribers(sockets.admin, before, 2);
      expect(await virtqOk(['-c', bySocket, 'suspend', 'cli1'])).toBe("Domain 'cli1' suspended\n");
      expect(await virtqOk(['-c', byName, 'domstate', 'cli1', '--reason'])).toBe('paused (user)\n');
      expect(await virtqOk(['-c', byName, 'resume', 'cli1'])).toBe("Domain 'cli1' resumed\n");
      const events = (await loop.lines(2)).map((l) => JSON.parse(l) as unknown);
      for (const e of events) expectSchema(e, LifecycleEvent);
      expect(events).toMatchObject([{ name: 'cli1', event: 'suspended', state: 'paused' }, { name: 'cli1', event: 'resumed', state: 'running' }]);
      const first = await once.result;
      expect(first).toMatchObject({ code: 0, stdout: "event 'lifecycle' for domain 'cli1': suspended (state paused, reason user)\n" });
    } finally {
      loop.proc.kill('SIGKILL');
      once.proc.kill('SIGKILL');
    }
  });

  it('attaches a disk given by a relative path, shows its stats and detaches it', async () => {
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', h.root.path('extra.qcow2'), '8M']);
    const mark = serial.mark();
    expect(await virtqOk(['-c', byName, 'attach-disk', 'cli1', 'extra.qcow2', 'vdb', '--format', 'qcow2'], { cwd: h.root.dir })).toBe("Disk vdb attached to 'cli1'\n");
    await serial.waitFor('TG-BLOCK-ADD vda', 20_000, mark);
    const def = await virtqJson<{ disks: Array<{ path: string }> }>(['-c', byName, 'dumpdef', 'cli1'], Definition);
    expect(def.disks).toEqual([expect.objectContaining({ path: h.root.path('extra.qcow2'), target: 'vdb', format: 'qcow2' })]);
    const stats = await virtqOk(['-c', byName, 'domblkstat', 'cli1']);
    expect(stats.split('\n')[0]).toMatch(/^ TARGET\s+RD_BYTES\s+WR_BYTES\s+RD_OPS\s+WR_OPS\s+FLUSH_OPS$/);
    expect(stats).toMatch(/^ vdb\s+\d+/m);
    const blockRet = virtqProgram.procs.blockStats.ret;
    expect(await virtqJson(['-c', byName, 'domblkstat', 'cli1'], blockRet)).toMatchObject({ disks: [{ target: 'vdb' }] });
    expect(await virtqOk(['-c', bySocket, 'detach-disk', 'cli1', 'vdb', '--timeout', '20'])).toBe("Disk vdb detached from 'cli1'\n");
    expect(await virtqJson(['-c', byName, 'dumpdef', 'cli1'], Definition)).toMatchObject({ disks: [] });
    await virtqJson(['-c', byName, 'dommemstat', 'cli1'], virtqProgram.procs.memoryStats.ret);
  });

  it('passes a raw QMP command through and marks the VM tainted', async () => {
    const out = await virtqOk(['-c', bySocket, 'qemu-monitor-command', 'cli1', '{"execute":"query-status"}']);
    expect(JSON.parse(out)).toMatchObject({ status: 'running', running: true });
    expect(await virtqJson(['-c', bySocket, 'qemu-monitor-command', 'cli1', 'query-name'], virtqProgram.procs.qemuMonitorCommand.ret)).toHaveProperty('result');
    expect(await virtqJson(['-c', bySocket, 'dominfo', 'cli1'], DomainInfo)).toMatchObject({ tainted: true });
    expectFailure(await virtq(['-c', bySocket, 'qemu-monitor-command', 'cli1', 'no-such-command']), 'QMP_ERROR');
    expectFailure(await virtq(['-c', bySocket, 'qemu-monitor-command', 'cli1', '{"execute":']), 'INVALID_ARG', /not valid JSON/);
  });

  it('serves admin commands on the shim\'s admin socket', async () => {
    const info = await virtqJson<{ daemon: string }>(['-c', byName, 'admin', 'server-info'], ServerInfo);
    expect(info.daemon).toBe('virtq-shim');
    expect(await virtqOk(['-c', bySocket, 'admin', 'server-info'])).toMatch(/^Daemon: +virtq-shim$/m);
    expect(await virtqOk(['-c', bySocket, 'admin', 'client-list'])).toMatch(/^ ID\s+SOCKET\s+CONNECTED_AT\s+CALLS\s+IN_FLIGHT$/m);
    expect(await virtqJson(['-c', bySocket, 'admin', 'limits'], adminProgram.procs.getLimits.ret)).toHaveProperty('maxClients');
  });

  it('reads on the read-only socket and refuses changes there with PERMISSION_DENIED', async () => {
    for (const uri of [`${bySocket}?mode=ro`, `${byName}&mode=ro`]) {
      expect(await virtqOk(['-c', uri, 'domstate', 'cli1'])).toBe('running\n');
      expectFailure(await virtq(['-c', uri, 'suspend', 'cli1']), 'PERMISSION_DENIED', /read-only/);
    }
  });

  it('fails with NO_DOMAIN for a VM the shim does not run, and exits 2 on usage errors', async () => {
    expectFailure(await virtq(['-c', bySocket, 'dominfo', 'other']), 'NO_DOMAIN', /other/);
    expectFailure(await virtq(['-c', `shim:///other?root=${h.root.dir}`, 'dominfo', 'other']), 'NO_DOMAIN', /other\.json/);
    const usage = await virtq(['-c', bySocket, 'suspend']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^virtq: missing required argument 'name'/);
  });

  it('shuts the VM down through ACPI, after which the shim is gone', async () => {
    expect(await virtqOk(['-c', bySocket, 'shutdown', 'cli1', '--timeout', '30'])).toBe("Domain 'cli1' is shut off (shutdown)\n");
    await expect(vm.exited).resolves.toBe(0);
    expectFailure(await virtq(['-c', bySocket, 'domstate', 'cli1']), 'NO_CONNECT', new RegExp(`cannot connect to ${sockets.rw}: no such socket`));
  });
});
