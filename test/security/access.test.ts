// Who may do what: the read-only sockets (0666, any local user) refuse raw QMP passthrough and
// every other procedure that changes state, on virtqemud and on a shim, whatever the arguments;
// socket files, directories, state files and definitions carry the modes and owner the
// architecture promises.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import {
  RpcClient, adminProgram, registryProgram, shimDir, shimSockets, shimStateFile, virtqProgram, type ProcSpec,
} from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const mode = (path: string) => statSync(path).mode & 0o7777;
const QMP_COMMANDS = [{ execute: 'quit' }, { execute: 'human-monitor-command', arguments: { 'command-line': 'info status' } }, { execute: 'query-status' }];

describe('read-only sockets and file modes', () => {
  let h: DaemonHarness;
  let ro: { daemon: RpcClient; shim: RpcClient };
  let qemuPid: number;

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot());
    await h.startDaemon(['--reconcile-ms', '0']);
    const { api } = await h.client();
    await api.define({ definition: idleDef('def1') });
    await api.setAutostart({ name: 'def1', autostart: true });
    const row = await api.create({ definition: idleDef('ro1') });
    qemuPid = row.qemuPid as number;
    ro = { daemon: (await h.client(true)).rpc, shim: (await h.connect(shimSockets(h.layout, 'ro1').ro)).rpc };
  });
  afterAll(async () => { await h.cleanup(); });

  it('refuses qemuMonitorCommand on the read-only sockets of virtqemud and of the shim', async () => {
    for (const c of [ro.daemon, ro.shim]) {
      for (const command of QMP_COMMANDS) {
        await expect(c.call('virtq', 'qemuMonitorCommand', { name: 'ro1', command })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
        // Refused before the arguments are even looked at.
        await expect(c.call('virtq', 'qemuMonitorCommand', { name: '../x', command: 'nonsense' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      }
    }
    // The VM was not touched (no `quit`) and is not marked tainted.
    const rw = (await h.client()).api;
    await expect(rw.getInfo({ name: 'ro1' })).resolves.toMatchObject({ state: 'running', qemuPid, tainted: false });
  });

  it('refuses every state-changing procedure on the read-only sockets, and serves every read', async () => {
    const programs: Array<[string, Record<string, ProcSpec>]> = [['virtq', virtqProgram.procs], ['registry', registryProgram.procs], ['admin', adminProgram.procs]];
    for (const [c, role] of [[ro.daemon, 'aggregator'], [ro.shim, 'shim']] as const) {
      for (const [prog, procs] of programs) {
        for (const [proc, spec] of Object.entries(procs)) {
          if (!spec.servers.includes(role)) continue;
          const call = c.call(prog, proc, { name: 'ro1' });
          if (spec.readonly && prog === 'virtq') await call.catch((err: { code: string }) => expect(err.code, `${prog}.${proc}`).not.toBe('PERMISSION_DENIED'));
          else await expect(call, `${prog}.${proc}`).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
        }
      }
    }
  });

  it('creates sockets with the documented modes, owned by the daemon user', () => {
    const uid = process.getuid?.() ?? 0;
    const sets = [h.sockets, shimSockets(h.layout, 'ro1')];
    for (const s of sets) {
      expect(mode(s.rw), s.rw).toBe(0o600);
      expect(mode(s.ro), s.ro).toBe(0o666);
      expect(mode(s.admin), s.admin).toBe(0o600);
      for (const p of [s.rw, s.ro, s.admin]) {
        expect(statSync(p).isSocket()).toBe(true);
        expect(statSync(p).uid).toBe(uid);
      }
    }
    // The shared QMP socket can pass state-changing commands (when allowed): as private as rw.
    const qmpProxy = shimSockets(h.layout, 'ro1').qmpProxy;
    expect(statSync(qmpProxy).isSocket()).toBe(true);
    expect(mode(qmpProxy), qmpProxy).toBe(0o600);
  });

  it('keeps directories not world-writable and state and definitions private', () => {
    for (const dir of [h.layout.runtime, shimDir(h.layout), h.layout.config, h.layout.log]) {
      expect(mode(dir) & 0o022, dir).toBe(0);
    }
    expect(mode(shimStateFile(h.layout, 'ro1'))).toBe(0o600);
    expect(mode(join(h.layout.config, 'domains'))).toBe(0o700);
    expect(mode(join(h.layout.config, 'domains', 'def1.json'))).toBe(0o600);
    expect(mode(join(h.layout.config, 'autostart'))).toBe(0o700);
    expect(mode(join(h.layout.config, 'autostart', 'def1'))).toBe(0o600);
  });
});
