// Resource exhaustion from clients: connection floods bounded by maxClients (while the admin
// socket and existing clients are still served), clients that never finish a frame dropped after
// the partial-frame timeout, oversized length headers refused from the header alone, and clients
// that send calls but never read the replies unable to grow the daemon's memory.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { RpcClient, type TypedClient, type VirtqProgram } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { call, errorCode, exchange, open, rawFrame, rssMiB, splitFrames, waitFor } from './hostile-client.js';
import { createCodec } from '../../protocol/codec.js';

const PARTIAL_MS = 300;
const FLOOD = 10_000;
const codec = createCodec();

/** The soft limit on open files of this process. */
function fdLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = Number(line?.split(/\s+/)[3]);
  return Number.isFinite(soft) ? soft : 1024;
}

/** A flood connection: whether the server refused it, and with what. */
interface FloodConn { socket: Socket; codes: string[]; closed: boolean }

/** Opens `n` raw connections, `batch` at a time (a unix socket's backlog is finite). */
async function flood(path: string, n: number, batch = 250): Promise<FloodConn[]> {
  const conns: FloodConn[] = [];
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => open(path)));
    for (const socket of opened) {
      const c: FloodConn = { socket, codes: [], closed: false };
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        c.codes = splitFrames(buf).map((f) => errorCode(codec.decode(f)) ?? 'OK');
      });
      socket.once('close', () => { c.closed = true; });
      conns.push(c);
    }
  }
  return conns;
}

describe('connection floods, stalled frames and clients that never read', () => {
  let h: DaemonHarness;
  let pid: number;
  let old: TypedClient<VirtqProgram>;
  let admin: RpcClient;

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot());
    pid = (await h.startDaemon(['--partial-frame-timeout-ms', String(PARTIAL_MS), '--reconcile-ms', '0'])).proc.pid as number;
    old = (await h.client()).api;
    admin = (await h.connect(h.sockets.admin)).rpc;
    // Thirty definitions make every listing reply ~4 KiB.
    for (let i = 0; i < 30; i++) {
      await old.define({ definition: { name: `defined-vm-with-a-long-name-${i}`, memoryMiB: 32, kernel: { path: idleGuest().kernel } } });
    }
  });
  afterAll(async () => { await h.cleanup(); });

  const expectServed = async () => expect((await old.listDomains({})).domains).toHaveLength(30);

  it(`bounds a flood of ${FLOOD} connections to the read-only socket by maxClients; everything else is still served`, async () => {
    // The read-only socket is 0666: any local user can flood it. Before, its clients and the
    // read-write ones shared one cap, so the flood also locked out root's CLI and every shim
    // trying to register (no VM could start).
    await admin.call('admin', 'setLimits', { maxClients: 100 });
    onTestFinished(async () => { await admin.call('admin', 'setLimits', { maxClients: 5000 }); });
    const count = async (socket: string) => ((await admin.call('admin', 'listClients', {})) as { clients: Array<{ socket: string }> }).clients.filter((c) => c.socket === socket).length;
    const roBefore = await count('ro');
    const rwBefore = await count('rw');
    const conns = await flood(h.sockets.ro, FLOOD);
    onTestFinished(() => { for (const c of conns) c.socket.destroy(); });
    const accepted = 100 - roBefore;
    expect(await waitFor(() => conns.filter((c) => c.closed).length === FLOOD - accepted, 20_000)).toBe(true);
    const refused = conns.filter((c) => c.closed);
    expect(new Set(refused.map((c) => c.codes.join(',')))).toEqual(new Set(['TOO_MANY_CLIENTS']));
    // While the flood holds every read-only slot: a new read-only client is refused...
    const fresh = await RpcClient.connect(h.sockets.ro, { clock: h.clock });
    await expect(fresh.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'TOO_MANY_CLIENTS' });
    // ...the accepted flood connections are real clients and are served...
    const survivor = conns.find((c) => !c.closed) as FloodConn;
    survivor.socket.write(call('virtq', 'listDomains', {}, 42));
    expect(await waitFor(() => survivor.codes.length === 1, 5000)).toBe(true);
    expect(survivor.codes).toEqual(['OK']);
    // ...and existing, new read-write and admin clients are served, and a VM still starts (its shim registers).
    await expectServed();
    const rw = await h.client();
    await expect(rw.api.listDomains({})).resolves.toMatchObject({ domains: expect.any(Array) });
    rw.rpc.close();
    expect(await admin.call('admin', 'serverInfo', {})).toMatchObject({ limits: { maxClients: 100 } });
    const vm = await old.create({ definition: { name: 'during-flood', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } } });
    expect(vm).toMatchObject({ state: 'running' });
    await old.destroy({ name: 'during-flood' });
    for (const c of conns) c.socket.destroy();
    // The flood's slots are freed; the VM's shim has unregistered and gone.
    expect(await waitFor(async () => (await count('ro')) === roBefore && (await count('rw')) === rwBefore, 10_000)).toBe(true);
    await expect((await h.client(true)).api.listDomains({})).resolves.toMatchObject({ domains: expect.any(Array) });
  });

  it('bounds a flood of the read-write socket at the default limit with as many connections as file descriptors allow', async () => {
    await admin.call('admin', 'setLimits', { maxClients: 5000 });
    const n = Math.min(6000, fdLimit() - 500);
    const rwCount = async () => ((await admin.call('admin', 'listClients', {})) as { clients: Array<{ socket: string }> }).clients.filter((c) => c.socket === 'rw').length;
    const rwBefore = await rwCount();
    expect(rwBefore).toBeLessThan(5);
    const conns = await flood(h.sockets.rw, n);
    onTestFinished(() => { for (const c of conns) c.socket.destroy(); });
    const accepted = Math.min(n, 5000 - rwBefore);
    expect(await waitFor(() => conns.filter((c) => c.closed).length === n - accepted, 20_000)).toBe(true);
    for (const c of conns.filter((x) => x.closed)) expect(c.codes).toEqual(['TOO_MANY_CLIENTS']);
    expect(await rwCount()).toBe(rwBefore + accepted);
    await expectServed();
    await expect((await h.client(true)).api.listDomains({})).resolves.toMatchObject({ domains: expect.any(Array) });
    const fresh = await RpcClient.connect(h.sockets.rw, { clock: h.clock });
    if (n > accepted) await expect(fresh.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'TOO_MANY_CLIENTS' });
    fresh.close();
    for (const c of conns) c.socket.destroy();
    expect(await waitFor(async () => (await rwCount()) === rwBefore, 10_000)).toBe(true);
  });

  it('drops clients that never finish a frame after the partial-frame timeout, serving others meanwhile', async () => {
    const stalls = [
      Buffer.from([0, 0]), // half a length header
      rawFrame(100, Buffer.from([0xa1])), // a header and one byte of the body
      rawFrame(16 * 1024 * 1024, Buffer.alloc(1024)), // the largest frame allowed, barely begun
    ];
    const t0 = performance.now();
    const pending = Array.from({ length: 60 }, (_, i) => exchange(h.sockets.rw, stalls[i % stalls.length] as Buffer, { keepOpen: true, timeoutMs: 10_000 }));
    // One byte every 50 ms: steady progress, but the frame is never done within the timeout.
    const dribbler = await open(h.sockets.rw);
    const dribbled = new Promise<number>((resolve) => dribbler.once('close', () => resolve(performance.now() - t0)));
    const drip = setInterval(() => dribbler.write(Buffer.from([0])), 50);
    // Meanwhile a well-behaved client is served promptly.
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await expectServed();
      expect(performance.now() - t).toBeLessThan(250);
    }
    const outs = await Promise.all(pending);
    const dripMs = await dribbled;
    clearInterval(drip);
    for (const out of outs) {
      expect(out.closedByServer).toBe(true);
      expect(out.replies.map(errorCode)).toEqual(['FRAME_TIMEOUT']);
      expect(out.ms).toBeGreaterThanOrEqual(PARTIAL_MS - 20);
      expect(out.ms).toBeLessThan(PARTIAL_MS + 3000);
    }
    expect(dripMs).toBeLessThan(PARTIAL_MS + 3000);
    await expectServed();
  });

  it('drops a client announcing an oversized frame at once, from the length header alone', async () => {
    const before = rssMiB(pid);
    const outs = await Promise.all(Array.from({ length: 50 }, (_, i) => exchange(h.sockets.ro, rawFrame(i % 2 === 0 ? 0xffff_ffff : 16 * 1024 * 1024 + 1), { keepOpen: true, timeoutMs: 10_000 })));
    for (const out of outs) {
      expect(out.closedByServer).toBe(true);
      expect(out.replies.map(errorCode)).toEqual(['FRAME_TOO_LARGE']);
      expect(out.ms).toBeLessThan(PARTIAL_MS);
    }
    // Fifty 16 MiB buffers would be 800 MiB.
    expect(rssMiB(pid) - before).toBeLessThan(64);
    await expectServed();
  });

  it('stops reading from a client that sends calls but never reads the replies', async () => {
    // Before: every reply was queued in memory; each 1.5 MB of calls grew virtqemud by ~30 MB.
    const s = await open(h.sockets.ro);
    s.pause();
    const batch = Buffer.concat(Array.from({ length: 20_000 }, (_, i) => call('virtq', 'listDomains', {}, i + 1)));
    const before = rssMiB(pid);
    for (let round = 0; round < 6; round++) s.write(batch);
    // Give the daemon time to take in whatever it will take in, checking it keeps serving others.
    for (let i = 0; i < 15; i++) {
      await expectServed();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(rssMiB(pid) - before).toBeLessThan(60);
    // The client that reads again is answered: nothing was dropped, only paced.
    const received = new Promise<number>((resolve) => {
      let bytes = 0;
      s.on('data', (d: Buffer) => { bytes += d.length; if (bytes > 4 * 1024 * 1024) resolve(bytes); });
    });
    s.resume();
    await expect(received).resolves.toBeGreaterThan(4 * 1024 * 1024);
    s.destroy();
    await expectServed();
  });
});
