// virtqemud's registry program when a shim replaces another (an upgrade's successor): the old
// shim closes its connection before the successor registers, but virtqemud may read the
// successor's register before it sees that close (CI, stop 37: the upgrade was refused with
// NAME_IN_USE "already served by shim pid N"). A re-attaching registration now waits a short
// grace for the old connection's close; a shim that really still serves the VM is refused as before.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, RpcServer, registryProgram, silentLogger, systemClock } from '../../../protocol/index.js';
import { REPLACED_CLOSE_GRACE_MS, registryHandlers } from '../../../aggregator/handlers/registry-handlers.js';
import { DomainRegistry } from '../../../aggregator/registry.js';
import { Events } from '../../../aggregator/events.js';
import { HostJournal } from '../../../aggregator/host-journal.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const clock = systemClock();
const reg = (shimPid: number, reattach: boolean) => ({
  name: 'up1', uuid: '00000000-0000-4000-8000-0000000000a1', shimPid, qemuPid: 4242, socket: '/r/up1.sock', roSocket: '/r/up1-ro.sock',
  adminSocket: '/r/up1-admin.sock', stateFile: '/r/up1.json', state: 'running' as const, reason: 'booted', reattach,
});

describe('registry: a shim replacing another', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let registry: DomainRegistry;
  // The grace's own clock: a waiting registration is its one pending timer, and the grace passes only when advanced.
  let grace: FakeClock;
  const clients: RpcClient[] = [];
  const connect = async (): Promise<RpcClient> => {
    const c = await RpcClient.connect(root.path('rw.sock'), { clock, defaultTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };

  // Until the server holds a registration waiting for the grace (a few turns of the event loop, no sleep).
  const waitingForGrace = async (): Promise<void> => {
    for (let i = 0; i < 10_000 && grace.pending() === 0; i++) await new Promise((r) => setImmediate(r));
    expect(grace.pending()).toBe(1);
  };

  beforeEach(async () => {
    root = tmpRoot();
    grace = new FakeClock();
    registry = new DomainRegistry();
    const events = new Events(registry, clock, new HostJournal(root.path('state'), clock, silentLogger(), process.pid));
    server = new RpcServer({ daemon: 'virtqemud', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    server.register({ program: registryProgram, handlers: registryHandlers(registry, events, grace, () => undefined) });
    await server.listen(root.path('rw.sock'), 'rw', 0o600);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server.close();
    root.remove();
  });

  it('takes the successor whose register arrives before the old connection is seen closed', async () => {
    const old = await connect();
    await old.call('registry', 'register', reg(1001, false));
    const successor = await connect();
    // The register is in virtqemud's hands while the old connection is still open; it closes after.
    const registering = successor.call('registry', 'register', reg(1002, true));
    // Sent before the register is answered, as a shim's registrar does: it runs after the register, in order.
    const updating = successor.call('registry', 'update', { state: 'paused', reason: 'user' });
    await waitingForGrace();
    expect(registry.get('up1')?.shim?.pid).toBe(1001);
    old.close();
    await expect(registering).resolves.toEqual({});
    await expect(updating).resolves.toEqual({});
    // The successor's connection is the binding now, and the old close changed nothing.
    expect(registry.get('up1')?.shim?.pid).toBe(1002);
    expect(registry.get('up1')?.state).toBe('paused');
    await successor.call('registry', 'update', { state: 'running', reason: 'unpaused' });
    expect(registry.get('up1')?.state).toBe('running');
  });

  it('still refuses a second shim while the first keeps its connection, after the grace', async () => {
    const first = await connect();
    await first.call('registry', 'register', reg(1001, false));
    const second = await connect();
    let settled = false;
    const refused = second.call('registry', 'register', reg(1003, true)).finally(() => { settled = true; });
    refused.catch(() => undefined);
    await waitingForGrace();
    await grace.advance(REPLACED_CLOSE_GRACE_MS - 1);
    expect(settled).toBe(false);
    await grace.advance(1);
    await expect(refused).rejects.toMatchObject({ code: 'NAME_IN_USE', message: expect.stringContaining('already served by shim pid 1001') });
    // A fresh start (not a re-attach) is refused at once: no grace passes.
    await expect(second.call('registry', 'register', reg(1004, false))).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    expect(grace.pending()).toBe(0);
    expect(registry.get('up1')?.shim?.pid).toBe(1001);
  });
});
