// Socket activation without systemd: the sockets are bound by a holder process (as socket units
// are) and passed as fds 3-5 with LISTEN_FDS/LISTEN_PID(/LISTEN_FDNAMES) to the real binaries.
// Each daemon serves clients on them, hands none of them (nor the variables) to its shims, never
// unlinks them when it stops, and a restarted daemon serves the clients that queued meanwhile.
import { lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rootLayout, serviceSockets, type DaemonName } from '../../protocol/index.js';
import { connectAdmin } from '../../client/index.js';
import { ListOutput } from '../../cli/json-output.js';
import { daemonBin } from '../helpers/service-harness.js';
import { killProcessesUnder } from '../helpers/kill-under.js';
import { SocketHolder, type HeldSocket } from '../helpers/socket-holder.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { virtq, virtqJson, virtqOk } from '../e2e/virtq-cli.js';

/** The inodes of the sockets process `pid` holds open. */
function socketInodesOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      return m === null ? [] : [Number(m[1])];
    } catch {
      return [];
    }
  });
}

describe('socket activation (LISTEN_FDS)', () => {
  let root: TmpRoot;
  let holder: SocketHolder | undefined;
  const sockets = (daemon: DaemonName) => serviceSockets(rootLayout(root.dir), daemon);
  const held = (daemon: DaemonName, order: Array<'rw' | 'ro' | 'admin'>, named: boolean): HeldSocket[] =>
    order.map((c) => ({ path: sockets(daemon)[c], mode: c === 'ro' ? 0o666 : 0o600, ...(named ? { name: c } : {}) }));
  const inodes = (paths: string[]) => paths.map((p) => lstatSync(p).ino);

  beforeEach(() => {
    root = tmpRoot('vq-sa-');
    mkdirSync(root.path('run'), { recursive: true });
  });
  afterEach(async () => {
    await holder?.stop();
    holder = undefined;
    killProcessesUnder(root.dir);
    root.remove();
  });

  it('serves virtqemud on sockets named rw/ro/admin, keeps them from its shims, and leaves them for the next instance', async () => {
    const uri = `qemu:///system?root=${root.dir}`;
    const s = sockets('virtqemud');
    holder = await SocketHolder.start(held('virtqemud', ['rw', 'ro', 'admin'], true), [process.execPath, daemonBin('virtqemud'), '--root', root.dir]);
    const files = inodes([s.rw, s.ro, s.admin]);
    const first = await holder.startDaemon();
    expect(first.reply).toMatchObject({ ok: true, activated: ['rw', 'ro', 'admin'] });

    writeFileSync(root.path('idle.json'), JSON.stringify({ name: 'idle1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    await virtqOk(['-c', uri, 'define', root.path('idle.json')]);
    await virtqOk(['-c', uri, 'start', 'idle1']);
    expect(await virtqJson(['-c', `${uri}&mode=ro`, 'list'], ListOutput)).toMatchObject([{ name: 'idle1', state: 'running' }]);
    const adm = await connectAdmin(uri);
    const info = await adm.admin.serverInfo({});
    adm.close();
    expect(info).toMatchObject({ daemon: 'virtqemud' });

    // The shim got neither the variables nor a copy of the sockets.
    const { shimPid } = JSON.parse(await virtqOk(['-c', uri, 'dominfo', 'idle1', '--json'])) as { shimPid: number };
    expect(readFileSync(`/proc/${shimPid}/environ`, 'latin1').split('\0').filter((v) => v.startsWith('LISTEN_'))).toEqual([]);
    expect(socketInodesOf(shimPid).filter((i) => holder?.inodes.includes(i))).toEqual([]);
    expect(socketInodesOf(first.pid).filter((i) => holder?.inodes.includes(i)).sort()).toEqual([...holder.inodes].sort());

    // Stopped, it leaves the socket files (they are the holder's) exactly as they were.
    process.kill(first.pid, 'SIGTERM');
    await first.exited;
    expect(inodes([s.rw, s.ro, s.admin])).toEqual(files);
    expect([s.rw, s.ro, s.admin].every((p) => lstatSync(p).isSocket())).toBe(true);

    // A client that connects while no daemon runs waits in the queue and is served by the next one.
    const waiting = virtq(['-c', uri, 'list', '--json']);
    const second = await holder.startDaemon();
    expect(second.reply).toMatchObject({ ok: true, activated: ['rw', 'ro', 'admin'] });
    const listed = await waiting;
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ name: 'idle1', state: 'running' }]);

    await virtqOk(['-c', uri, 'destroy', 'idle1']);
    process.kill(second.pid, 'SIGTERM');
    await second.exited;
    expect(inodes([s.rw, s.ro, s.admin])).toEqual(files);
  });

  it('matches unnamed sockets by their bound path in any order (virtsecretd)', async () => {
    const uri = `secret:///system?root=${root.dir}`;
    const s = sockets('virtsecretd');
    holder = await SocketHolder.start(held('virtsecretd', ['admin', 'ro', 'rw'], false), [process.execPath, daemonBin('virtsecretd'), '--root', root.dir]);
    const daemon = await holder.startDaemon();
    expect(daemon.reply).toMatchObject({ ok: true, activated: ['rw', 'ro', 'admin'] });
    expect(JSON.parse(await virtqOk(['-c', uri, 'secret-list', '--json']))).toEqual({ secrets: [] });
    expect(JSON.parse(await virtqOk(['-c', `${uri}&mode=ro`, 'secret-list', '--json']))).toEqual({ secrets: [] });
    // A write on the socket passed as ro is refused: the fd went to the right class.
    const refused = await virtq(['-c', `${uri}&mode=ro`, 'secret-undefine', '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f']);
    expect(refused.stderr).toMatch(/^virtq: PERMISSION_DENIED: /);
    process.kill(daemon.pid, 'SIGTERM');
    await daemon.exited;
    expect([s.rw, s.ro, s.admin].every((p) => lstatSync(p).isSocket())).toBe(true);
  });

  it('refuses to start on a passed socket that is none of its own, naming it', async () => {
    const s = sockets('virtsecretd');
    holder = await SocketHolder.start([...held('virtsecretd', ['rw'], false), { path: root.path('run', 'stray.sock') }], [process.execPath, daemonBin('virtsecretd'), '--root', root.dir]);
    const daemon = await holder.startDaemon();
    expect(daemon.reply).toMatchObject({ ok: false, error: { code: 'INVALID_ARG' } });
    expect(daemon.reply.error?.message).toBe(`socket activation: file descriptor 4 (bound to ${root.path('run', 'stray.sock')}) is none of virtsecretd's sockets (rw: ${s.rw}, ro: ${s.ro}, admin: ${s.admin}); name it rw, ro or admin (FileDescriptorName=) or bind it to one of those paths`);
  });
});
