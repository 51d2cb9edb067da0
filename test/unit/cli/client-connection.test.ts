// The client library's Connection against an in-process RpcServer serving the `virtq` program
// as a shim would: typed methods, per-VM handles, filtered lifecycle events, the console stream,
// the read-only socket and the admin connection. No QEMU involved.
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  RpcServer, silentLogger, systemClock, virtqProgram, type LifecycleEvent,
} from '../../../protocol/index.js';
import { connect, connectAdmin, type Connection, type DomainHandle, type VirtqMethods } from '../../../client/index.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const UUID = '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f';
const event = (name: string, kind: LifecycleEvent['event']): LifecycleEvent => ({ name, uuid: UUID, event: kind, state: 'paused', reason: 'user', timestamp: 1 });

describe('Connection', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let conn: Connection;
  const seen: Array<{ proc: string; args: unknown }> = [];

  beforeEach(async () => {
    root = tmpRoot();
    seen.length = 0;
    server = new RpcServer({ daemon: 'fake-shim', version: '0.1', role: 'shim', clock: systemClock(), log: silentLogger() });
    server.register({
      program: virtqProgram,
      handlers: {
        getState: (args) => { seen.push({ proc: 'getState', args }); return { state: 'running' as const, reason: 'booted' }; },
        shutdown: (args) => { seen.push({ proc: 'shutdown', args }); return { state: 'shutoff' as const, reason: 'shutdown' }; },
        suspend: (args) => {
          seen.push({ proc: 'suspend', args });
          server.publish('virtq', 'lifecycle', event('other', 'suspended'), (c) => c.subscriptions.has('lifecycle'));
          server.publish('virtq', 'lifecycle', { junk: true }, (c) => c.subscriptions.has('lifecycle'));
          server.publish('virtq', 'lifecycle', event(args.name, 'suspended'), (c) => c.subscriptions.has('lifecycle'));
          return { state: 'paused' as const, reason: 'user' };
        },
        subscribeEvents: (_a, ctx) => { ctx.client.subscriptions.add('lifecycle'); return {}; },
        openConsole: (_a, ctx) => {
          const stream = ctx.openStream();
          void (async () => { for await (const chunk of stream) stream.write(Buffer.from(`echo:${Buffer.from(chunk).toString()}`)); })();
          return {};
        },
      },
    });
    await server.listen(root.path('web1.sock'), 'rw', 0o600);
    await server.listen(root.path('web1-ro.sock'), 'ro', 0o666);
    await server.listen(root.path('web1-admin.sock'), 'admin', 0o600);
    conn = await connect(`qemu+shim://${root.path('web1.sock')}`);
  });

  afterEach(async () => {
    conn.close();
    await server.close();
    root.remove();
  });

  it('has a typed method per non-stream procedure', async () => {
    expect(conn.peer).toBe('shim');
    expect(Object.keys(conn.virtq).sort()).toEqual(Object.entries(virtqProgram.procs).filter(([, s]) => !s.stream).map(([n]) => n).sort());
    await expect(conn.virtq.getState({ name: 'web1' })).resolves.toEqual({ state: 'running', reason: 'booted' });
    expectTypeOf(conn.virtq.getState).returns.resolves.toEqualTypeOf<{ state: LifecycleEvent['state']; reason: string }>();
    expectTypeOf<keyof VirtqMethods>().not.toEqualTypeOf<'openConsole'>();
  });

  it('binds the VM name in a domain handle', async () => {
    const web1 = conn.domain('web1');
    await expect(web1.shutdown({ timeoutSec: 5 })).resolves.toEqual({ state: 'shutoff', reason: 'shutdown' });
    await web1.getState();
    expect(seen).toEqual([{ proc: 'shutdown', args: { name: 'web1', timeoutSec: 5 } }, { proc: 'getState', args: { name: 'web1' } }]);
    expect(Object.keys(web1)).not.toContain('listDomains');
    expect(Object.keys(web1)).not.toContain('openConsole');
    expectTypeOf<DomainHandle['attachDisk']>().parameter(0).toHaveProperty('disk');
  });

  it('delivers only valid lifecycle events of the VM asked for', async () => {
    const events = await conn.domain('web1').events();
    await conn.virtq.suspend({ name: 'web1' });
    const first = await events.next();
    expect(first.value).toMatchObject({ name: 'web1', event: 'suspended' });
    await events.return?.();
    await expect(events.next()).resolves.toMatchObject({ done: true });
  });

  it('opens the console as a byte stream both ways', async () => {
    const serial = await conn.console('web1');
    serial.write('hi');
    const it = serial[Symbol.asyncIterator]();
    const chunk = await it.next();
    expect(Buffer.from(chunk.value as Uint8Array).toString()).toBe('echo:hi');
    serial.end();
  });

  it('reads on the read-only socket and is refused changes there', async () => {
    const ro = await connect(`qemu+shim://${root.path('web1.sock')}?mode=ro`);
    try {
      expect(ro.readOnly).toBe(true);
      await expect(ro.virtq.getState({ name: 'web1' })).resolves.toMatchObject({ state: 'running' });
      await expect(ro.virtq.suspend({ name: 'web1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    } finally {
      ro.close();
    }
  });

  it('reaches the admin socket beside the shim socket', async () => {
    const adm = await connectAdmin(`qemu+shim://${root.path('web1.sock')}`);
    try {
      expect(adm.socket).toBe(root.path('web1-admin.sock'));
      await expect(adm.admin.serverInfo({})).resolves.toMatchObject({ daemon: 'fake-shim' });
    } finally {
      adm.close();
    }
  });
});
