// QmpMonitor against real QEMU 7.2 in the shim topology: the test listens, QEMU dials its client
// chardev (reconnect=1), and a second listener on the same path is found again by QEMU, as a
// replacement shim would be. Nothing sleeps: every wait is on an event, bounded by a deadline.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { QmpMonitor } from '../../drivers/hypervisor/qemu/qmp/monitor.js';
import type { QmpEventCallbacks } from '../../drivers/hypervisor/qemu/qmp/monitor.js';

interface Rig { dir: string; qemu?: ChildProcess; servers: Server[]; monitors: QmpMonitor[]; stderr: string; stderrChanged: Array<() => void> }

const rigs: Rig[] = [];

afterEach(async () => {
  for (const r of rigs.splice(0)) await teardown(r);
});

/** Kills QEMU no matter what state the test left it in, then removes the temp dir. */
async function teardown(r: Rig): Promise<void> {
  for (const m of r.monitors) m.close();
  for (const s of r.servers) s.close();
  const q = r.qemu;
  if (q !== undefined && q.exitCode === null && q.signalCode === null) {
    const exited = new Promise((resolve) => q.once('exit', resolve));
    q.kill('SIGKILL');
    await exited;
  }
  await rm(r.dir, { recursive: true, force: true });
}

/** Rejects with a message naming `what` if `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms); });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

async function listen(path: string, r: Rig): Promise<{ server: Server; accepted: Promise<Socket> }> {
  await rm(path, { force: true }); // a killed shim leaves its socket file behind
  const server = createServer();
  r.servers.push(server);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, () => resolve()));
  return { server, accepted: new Promise((resolve) => server.once('connection', resolve)) };
}

function startQemu(r: Rig, sock: string): ChildProcess {
  const qemu = spawn('qemu-system-x86_64', [
    '-chardev', `socket,id=mon0,path=${sock},reconnect=1`,
    '-mon', 'chardev=mon0,mode=control',
    '-S', '-nodefaults', '-display', 'none', '-accel', 'tcg', '-m', '64',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  qemu.stderr?.on('data', (chunk: Buffer) => {
    r.stderr += chunk.toString('utf8');
    for (const f of r.stderrChanged.splice(0)) f();
  });
  return qemu;
}

function stderrMatches(r: Rig, re: RegExp): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => { if (re.test(r.stderr)) resolve(); else r.stderrChanged.push(check); };
    check();
  });
}

function eventRecorder(): { callbacks: QmpEventCallbacks; next: (name: string) => Promise<void> } {
  const waiting = new Map<string, () => void>();
  const fire = (name: string): void => { waiting.get(name)?.(); waiting.delete(name); };
  return {
    callbacks: { onStop: () => fire('STOP'), onResume: () => fire('RESUME'), onShutdown: () => fire('SHUTDOWN') },
    next: (name) => new Promise((resolve) => waiting.set(name, resolve)),
  };
}

describe('QmpMonitor with real QEMU', () => {
  it('drives a VM and re-attaches when QEMU redials a new listener on the same path', async () => {
    const r: Rig = { dir: await mkdtemp(join(tmpdir(), 'virtq-qmp-')), servers: [], monitors: [], stderr: '', stderrChanged: [] };
    rigs.push(r);
    const sock = join(r.dir, 'qmp.sock');
    const clock = systemClock();

    const first = await listen(sock, r);
    const qemu = startQemu(r, sock);
    r.qemu = qemu;
    const exited = new Promise<number | null>((resolve) => qemu.once('exit', (code) => resolve(code)));
    const events = eventRecorder();
    const monitor = await QmpMonitor.attach(await within(first.accepted, 10_000, 'qemu dialling the monitor'), {
      clock, callbacks: events.callbacks, commandTimeoutMs: 10_000,
    });
    r.monitors.push(monitor);
    expect(monitor.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);

    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'prelaunch', running: false });
    const resumed = events.next('RESUME');
    await monitor.cont();
    await within(resumed, 5000, 'RESUME event');
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'running', running: true });
    const stopped = events.next('STOP');
    await monitor.stop();
    await within(stopped, 5000, 'STOP event');
    await expect(monitor.queryStatus()).resolves.toEqual({ status: 'paused', running: false });
    await expect(monitor.deviceDel('nope')).rejects.toMatchObject({ code: 'QMP_ERROR', details: { class: 'DeviceNotFound' } });

    // The shim goes away: monitor and listener close, and nobody listens for a while.
    monitor.close();
    first.server.close();
    await within(monitor.closed, 2000, 'monitor close');
    // QEMU redials once a second after the hang-up; wait until it has failed at least once.
    await within(stderrMatches(r, /Unable to connect character device mon0/), 5000, 'qemu redialling an absent listener');

    // A replacement shim binds the same path; QEMU finds it on its next redial.
    const second = await listen(sock, r);
    const listenedAt = performance.now();
    const socket = await within(second.accepted, 2500, 'qemu redialling the new listener');
    const redialMs = performance.now() - listenedAt;
    expect(redialMs).toBeLessThan(2000);
    const events2 = eventRecorder();
    const again = await QmpMonitor.attach(socket, { clock, callbacks: events2.callbacks, commandTimeoutMs: 10_000 });
    r.monitors.push(again);
    await expect(again.queryStatus()).resolves.toEqual({ status: 'paused', running: false });

    const shutdown = events2.next('SHUTDOWN');
    await again.quit();
    await within(shutdown, 5000, 'SHUTDOWN event');
    await within(again.closed, 5000, 'monitor close after quit');
    await expect(within(exited, 10_000, 'qemu exit')).resolves.toBe(0);
  });
});
