// The shared QMP socket on a real shim running the test guest under QEMU, spoken to by clients
// nobody here wrote: raw QMP through Debian's socat and npm's qemu-qmp, connected at once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type QMPType from 'qemu-qmp';
import { shimSockets, shimStateFile } from '../../protocol/index.js';
import { guestDefinition, ShimHarness } from '../helpers/shim-harness.js';
import { SocatQmp } from '../helpers/socat-qmp.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const QMP = createRequire(import.meta.url)('qemu-qmp') as typeof QMPType;

/** npm's qemu-qmp, connected (it sends qmp_capabilities itself), with promises around it. */
async function npmClient(path: string): Promise<{ qmp: QMPType; run(command: string, args?: Record<string, unknown>): Promise<unknown> }> {
  const qmp = new QMP();
  await new Promise<void>((resolve, reject) => qmp.connect(path, (err) => (err === null ? resolve() : reject(err))));
  const run = (command: string, args?: Record<string, unknown>) => new Promise<unknown>((resolve, reject) => {
    const done = (err: Error | null, result: unknown) => (err === null ? resolve(result) : reject(err));
    if (args === undefined) qmp.execute(command, done);
    else qmp.execute(command, args, done);
  });
  return { qmp, run };
}

function once(qmp: QMPType, event: string): Promise<void> {
  return new Promise((resolve) => qmp.once(event, () => resolve()));
}

const refusedAs = (text: string) => ({ error: { class: 'GenericError', desc: expect.stringContaining(text) } });

describe('shared QMP socket', () => {
  let h: ShimHarness;
  const clients: Array<{ close(): unknown }> = [];
  beforeEach(() => { h = new ShimHarness(tmpRoot()); });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await h.cleanup();
  });

  it('serves two independent clients at once: own ids, replies in order, every event; refuses the shim\'s commands; taints only when a change ran', async () => {
    const def = guestDefinition('qp1', { qmpProxy: { allow: ['chardev-add', 'chardev-remove', 'device_add', 'device_del'] } });
    const vm = await h.start(def);
    const con = await h.console(vm.rpc, 'qp1');
    const booted = con.reader.waitFor('GUEST-READY', 60_000);
    const path = shimSockets(h.layout, 'qp1').qmpProxy;
    expect(JSON.parse(readFileSync(shimStateFile(h.layout, 'qp1'), 'utf8')).sockets.qmpProxy).toBe(path);

    const a = new SocatQmp(path);
    clients.push(a);
    const greeting = await a.next((m) => 'QMP' in m);
    expect(greeting).toMatchObject({ QMP: { version: { qemu: { major: expect.any(Number) } }, capabilities: [] } });
    expect((greeting['QMP'] as { version: { qemu: { major: number } } }).version.qemu.major).toBeGreaterThanOrEqual(6);
    // Commands before negotiation are refused as QEMU refuses them.
    expect(await a.call({ execute: 'query-status' }, 'early')).toEqual({ error: { class: 'CommandNotFound', desc: expect.stringContaining('qmp_capabilities') }, id: 'early' });
    expect(await a.call({ execute: 'qmp_capabilities' }, 'neg')).toEqual({ return: {}, id: 'neg' });

    const b = await npmClient(path);
    clients.push({ close: () => b.qmp.destroy() });
    expect(b.qmp.version.qemu.major).toBe((greeting['QMP'] as { version: { qemu: { major: number } } }).version.qemu.major);
    expect(await b.run('query-status')).toMatchObject({ running: true, status: 'running' });

    // Any JSON id comes back as sent; two commands in one write with no newline are answered in order.
    expect(await a.call({ execute: 'query-status' }, { n: [1, 'x'] })).toMatchObject({ return: { running: true }, id: { n: [1, 'x'] } });
    const from = a.received.length;
    a.send('{"execute":"query-name","id":1}{"execute":"query-kvm","id":2}');
    await a.next((m) => m['id'] === 2, 20_000, from);
    expect(a.received.slice(from).map((m) => m['id'])).toEqual([1, 2]);

    // Events caused by virtq itself reach both clients.
    const mark = a.received.length;
    const stopB = once(b.qmp, 'stop');
    const resumeB = once(b.qmp, 'resume');
    await vm.api.suspend({ name: 'qp1' });
    await stopB;
    await a.next((m) => m['event'] === 'STOP', 20_000, mark);
    await vm.api.resume({ name: 'qp1' });
    await resumeB;
    await a.next((m) => m['event'] === 'RESUME', 20_000, mark);

    // The shim's own commands are refused with a readable QMP error, allow-list or not; nothing changes.
    for (const [command, text] of [
      [{ execute: 'quit' }, 'reserved'], [{ execute: 'stop' }, 'virtq suspend'], [{ execute: 'cont' }, 'virtq resume'],
      [{ execute: 'system_reset' }, 'virtq reset'], [{ execute: 'migrate', arguments: { uri: 'exec:cat' } }, 'migration'],
      [{ execute: 'human-monitor-command', arguments: { 'command-line': 'quit' } }, 'HMP'], [{ execute: 'getfd', arguments: { fdname: 'x' } }, 'file descriptors'],
      [{ execute: 'blockdev-del', arguments: { 'node-name': 'fmt-vda' } }, 'block graph'],
      [{ execute: 'device_del', arguments: { id: 'disk-vda' } }, 'managed by virtq'], [{ execute: 'object-del', arguments: { id: 'sec-vda' } }, 'managed by virtq'],
      [{ execute: 'device_del', arguments: { id: '/machine/peripheral/nic0' } }, 'managed by virtq'],
      [{ execute: 'object-add', arguments: { 'qom-type': 'secret', id: 'x', data: 'y' } }, 'allow-list'],
    ] as const) {
      expect(await a.call(command, command.execute)).toEqual({ ...refusedAs(text), id: command.execute });
    }
    await expect(b.run('quit')).rejects.toThrow(/reserved to virtq/);
    expect(await b.run('query-status')).toMatchObject({ running: true });
    // An allowed command that QEMU refuses changed nothing: still untainted.
    expect(await a.call({ execute: 'chardev-remove', arguments: { id: 'no-such' } }, 'rm0')).toMatchObject({ error: { class: 'GenericError' }, id: 'rm0' });
    expect((await vm.api.getInfo({ name: 'qp1' })).tainted).toBe(false);

    // An allowed command that ran taints the VM, in getInfo and the state file, and is logged.
    expect(await a.call({ execute: 'chardev-add', arguments: { id: 'tool0', backend: { type: 'null', data: {} } } }, 'add')).toEqual({ return: {}, id: 'add' });
    expect((await vm.api.getInfo({ name: 'qp1' })).tainted).toBe(true);
    await expect.poll(() => JSON.parse(readFileSync(shimStateFile(h.layout, 'qp1'), 'utf8')).tainted).toBe(true);
    await expect.poll(() => readFileSync(h.root.path('log', 'qp1.log'), 'utf8')).toMatch(/"msgId":"QMP_PROXY_COMMAND".*"command":"chardev-add"/);

    // A device a tool hot-plugs and unplugs: DEVICE_DELETED (the guest released it) reaches both clients.
    await booted;
    const deletedB = once(b.qmp, 'device_deleted');
    const before = a.received.length;
    expect(await b.run('device_add', { driver: 'virtio-rng-pci', id: 'tool-rng' })).toEqual({});
    expect(await a.call({ execute: 'device_del', arguments: { id: 'tool-rng' } }, 'del')).toEqual({ return: {}, id: 'del' });
    await a.next((m) => m['event'] === 'DEVICE_DELETED' && (m['data'] as { device?: string } | undefined)?.device === 'tool-rng', 30_000, before);
    await deletedB;
    expect((await vm.api.getInfo({ name: 'qp1' })).state).toBe('running');
    con.close();
  });

  it('is served again by a successor after the shim is killed: its clients see the close, reconnect and get events again', async () => {
    const vm = await h.start(guestDefinition('qpkill'));
    const path = shimSockets(h.layout, 'qpkill').qmpProxy;
    const before = new SocatQmp(path);
    await before.next((m) => 'QMP' in m);
    await before.call({ execute: 'qmp_capabilities' }, 'neg');
    vm.proc.kill('SIGKILL');
    await expect(before.exited).resolves.toBe(0);

    const successor = await h.run(['--no-register', '--attach', 'qpkill'], 'qpkill');
    expect(successor.reply).toMatchObject({ ok: true, state: 'running' });
    const after = new SocatQmp(path);
    clients.push(after);
    await after.next((m) => 'QMP' in m);
    await after.call({ execute: 'qmp_capabilities' }, 'neg');
    const api = (await h.connect(successor.reply.socket as string)).api;
    await api.suspend({ name: 'qpkill' });
    await after.next((m) => m['event'] === 'STOP');
    expect(await after.call({ execute: 'query-status' }, 's')).toMatchObject({ return: { running: false, status: 'paused' }, id: 's' });
    expect((await api.getInfo({ name: 'qpkill' })).tainted).toBe(false);
  });
});
