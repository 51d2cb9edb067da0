// The shared QMP socket under hostile clients, on a real shim and QEMU: bad JSON, oversized input,
// a thousand connections, a client that never reads. The shim, the VM and well-behaved clients
// keep being served throughout. Also: the socket turned off per VM and host-wide, and the
// host-wide allow-list.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { shimSockets, shimStateFile } from '../../protocol/index.js';
import { guestDefinition, ShimHarness } from '../helpers/shim-harness.js';
import { SocatQmp } from '../helpers/socat-qmp.js';
import { tmpRoot } from '../helpers/tmp-root.js';

/** A raw connection collecting the JSON lines it receives. */
function raw(path: string): { socket: Socket; lines: string[]; closed: Promise<void>; refused: () => boolean } {
  const socket = createConnection({ path });
  const lines: string[] = [];
  let rest = '';
  socket.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\r\n');
    rest = parts.pop() ?? '';
    lines.push(...parts.filter((l) => l !== ''));
  });
  // A connect the kernel refuses (the listen backlog is full) is the kernel's answer to a flood, not the shim's.
  let refused = false;
  socket.on('error', (err: NodeJS.ErrnoException) => { if (err.syscall === 'connect') refused = true; });
  return { socket, lines, closed: new Promise((resolve) => socket.once('close', () => resolve())), refused: () => refused };
}

async function negotiated(path: string): Promise<SocatQmp> {
  const c = new SocatQmp(path);
  await c.next((m) => 'QMP' in m);
  await c.call({ execute: 'qmp_capabilities' }, 'neg');
  return c;
}

describe('shared QMP socket, hostile clients', () => {
  let h: ShimHarness;
  const clients: SocatQmp[] = [];
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await h.cleanup();
  });

  it('answers bad input with QMP errors, drops oversized input, a flood of connections and a client that never reads, and keeps serving', async () => {
    const vm = await h.start(guestDefinition('qph'));
    const path = shimSockets(h.layout, 'qph').qmpProxy;
    const good = await negotiated(path);
    clients.push(good);

    // Bad input: an error each, and the connection goes on.
    const bad = await negotiated(path);
    clients.push(bad);
    let from = bad.received.length;
    bad.send('{"execute": "query-status",, }\nhello there\n[1, 2]\n{"execute":"query-status","bogus":1,"id":"b1"}\n');
    bad.send('{"exec-oob":"query-status","id":"b2"}{"arguments":{},"id":"b3"}{"execute":"query-status","arguments":[1],"id":"b4"}\n');
    await bad.next((m) => m['id'] === 'b4', 20_000, from);
    expect(bad.received.slice(from)).toEqual([
      { error: { class: 'GenericError', desc: expect.stringContaining('JSON parse error') } },
      { error: { class: 'GenericError', desc: expect.stringContaining('JSON parse error') } },
      { error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } },
      { error: { class: 'GenericError', desc: "QMP input member 'bogus' is unexpected" }, id: 'b1' },
      { error: { class: 'GenericError', desc: expect.stringContaining('out-of-band') }, id: 'b2' },
      { error: { class: 'GenericError', desc: "QMP input lacks member 'execute'" }, id: 'b3' },
      { error: { class: 'GenericError', desc: "QMP input member 'arguments' must be an object" }, id: 'b4' },
    ]);
    expect(await bad.call({ execute: 'query-status' }, 'b5')).toMatchObject({ return: { running: true }, id: 'b5' });
    from = bad.received.length;
    expect(await bad.call({ execute: 'qmp_capabilities' }, 'again')).toEqual({ error: { class: 'CommandNotFound', desc: expect.stringContaining('already complete') }, id: 'again' });

    // Oversized input: an error, then the connection is closed; nothing of it was kept.
    const big = raw(path);
    big.socket.write(`{"execute":"qmp_capabilities"}{"execute":"query-status","arguments":{"x":"${'a'.repeat(2 * 1024 * 1024)}"}}\n`);
    await big.closed;
    expect(JSON.parse(big.lines.at(-1) ?? '{}')).toEqual({ error: { class: 'GenericError', desc: expect.stringContaining('longer than') } });

    // Random bytes on many connections, in batches under the client bound: errors or closes, nothing else.
    for (let batch = 0; batch < 10; batch++) {
      const conns = Array.from({ length: 20 }, () => raw(path));
      for (const c of conns) c.socket.end(randomBytes(1 + Math.floor(Math.random() * 8192)));
      await Promise.all(conns.map((c) => c.closed));
    }
    expect(await good.call({ execute: 'query-status' }, 'after-fuzz')).toMatchObject({ return: { running: true } });

    // A thousand connections at once: a bounded number are served, the others told why and closed.
    const flood = Array.from({ length: 1000 }, () => raw(path));
    await expect.poll(() => flood.filter((c) => c.lines.length > 0 || c.refused()).length, { timeout: 30_000 }).toBe(1000);
    const greeted = flood.filter((c) => c.lines[0]?.startsWith('{"QMP"')).length;
    const told = flood.filter((c) => c.lines[0]?.includes('too many clients')).length;
    expect(greeted).toBeGreaterThan(0);
    expect(greeted).toBeLessThanOrEqual(32);
    expect(told).toBeGreaterThan(400);
    expect(greeted + told + flood.filter((c) => c.refused()).length).toBe(1000);
    expect(await good.call({ execute: 'query-status' }, 'during-flood')).toMatchObject({ return: { running: true } });
    for (const c of flood) c.socket.destroy();
    await Promise.all(flood.map((c) => c.closed));
    const after = await negotiated(path);
    clients.push(after);

    // A client that never reads: disconnected once its unread replies pass the bound.
    const slow = createConnection({ path });
    slow.on('error', () => undefined);
    const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.write(`{"execute":"qmp_capabilities"}${'{"execute":"query-qmp-schema"}'.repeat(80)}`);
    await expect.poll(() => readFileSync(h.root.path('log', 'qph.log'), 'utf8'), { timeout: 30_000 }).toContain('"msgId":"QMP_PROXY_CLIENT_SLOW"');
    let replies = 0;
    slow.on('data', (d: Buffer) => { replies += d.toString().split('\r\n').length - 1; });
    await slowClosed;
    expect(replies).toBeLessThan(81);

    // The shim, the VM and the other clients were served all along.
    from = good.received.length;
    await vm.api.suspend({ name: 'qph' });
    await good.next((m) => m['event'] === 'STOP', 20_000, from);
    await after.next((m) => m['event'] === 'STOP');
    await vm.api.resume({ name: 'qph' });
    expect(await after.call({ execute: 'query-status' }, 'end')).toMatchObject({ return: { running: true }, id: 'end' });
    expect(await vm.api.getInfo({ name: 'qph' })).toMatchObject({ state: 'running', tainted: false });
  });

  it('is off for a VM whose definition says so and for every VM of a shim started with --no-qmp-proxy; the host-wide allow-list adds up with the VM\'s', async () => {
    await h.start(guestDefinition('qpoff', { qmpProxy: { enabled: false } }));
    expect(existsSync(shimSockets(h.layout, 'qpoff').qmpProxy)).toBe(false);
    expect(JSON.parse(readFileSync(shimStateFile(h.layout, 'qpoff'), 'utf8')).sockets.qmpProxy).toBeUndefined();
    await h.start(guestDefinition('qphost'), ['--no-register', '--no-qmp-proxy']);
    expect(existsSync(shimSockets(h.layout, 'qphost').qmpProxy)).toBe(false);

    const vm = await h.start(guestDefinition('qpallow', { qmpProxy: { allow: ['chardev-remove'] } }), ['--no-register', '--qmp-proxy-allow', 'chardev-add,quit']);
    const c = await negotiated(shimSockets(h.layout, 'qpallow').qmpProxy);
    clients.push(c);
    expect(await c.call({ execute: 'chardev-add', arguments: { id: 't1', backend: { type: 'null', data: {} } } }, 1)).toEqual({ return: {}, id: 1 });
    expect(await c.call({ execute: 'chardev-remove', arguments: { id: 't1' } }, 2)).toEqual({ return: {}, id: 2 });
    // Listing one of the shim's own commands changes nothing (and is logged).
    expect(await c.call({ execute: 'quit' }, 3)).toMatchObject({ error: { class: 'GenericError', desc: expect.stringContaining('reserved') } });
    expect(readFileSync(h.root.path('log', 'qpallow.log'), 'utf8')).toContain('"msgId":"QMP_PROXY_ALLOW_IGNORED"');
    expect(await vm.api.getInfo({ name: 'qpallow' })).toMatchObject({ state: 'running', tainted: true });
  });
});
