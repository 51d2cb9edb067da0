// The shim's registrar (shim/registration.ts): a start's updates go out at once, not each after
// the previous reply, and the registrar counts them for the ready line (issue 15, session 14):
// virtqemud's start reply then waits for its own listing instead of the shim waiting for replies.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcServer, registryProgram, silentLogger, systemClock } from '../../../protocol/index.js';
import { connectRegistrar, type Registrar } from '../../../shim/registration.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const clock = systemClock();

describe('VirtqemudRegistrar', () => {
  let root: TmpRoot;
  let server: RpcServer;
  let registrar: Registrar | undefined;
  const seen: string[] = [];
  const release: Array<() => void> = [];

  beforeEach(async () => {
    root = tmpRoot();
    seen.length = 0;
    release.length = 0;
    server = new RpcServer({ daemon: 'virtqemud', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    server.register({
      program: registryProgram,
      handlers: {
        register: () => ({}),
        // Replies only when the test releases it: a later update must not wait for it.
        update: (u) => { seen.push(u.state); return new Promise((resolve) => release.push(() => resolve({}))); },
        unregister: () => ({}),
      },
    });
    await server.listen(root.path('rw.sock'), 'rw', 0o600);
  });

  afterEach(async () => {
    registrar?.close();
    await server.close();
    root.remove();
  });

  it('sends each update without waiting for the previous reply, counts them, and flush waits for every reply', async () => {
    registrar = await connectRegistrar(root.path('rw.sock'), clock, silentLogger(), 5000);
    registrar.update({ state: 'starting', reason: 'booting' }); // before register: kept for re-registration, not sent
    expect(registrar.sent).toBe(0);
    await registrar.register({
      name: 'r1', uuid: '00000000-0000-4000-8000-000000000001', shimPid: process.pid, socket: '/r/r1.sock', roSocket: '/r/r1-ro.sock',
      adminSocket: '/r/r1-admin.sock', stateFile: '/r/r1.json', state: 'starting', reason: 'booting', reattach: false,
    });
    registrar.update({ state: 'starting', reason: 'booting', qemuPid: 42 });
    registrar.update({ state: 'running', reason: 'booted', qemuPid: 42 });
    expect(registrar.sent).toBe(2);
    await registrar.posted();
    // Both reached virtqemud's handler although the first is not answered yet.
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['starting', 'running']);
    let flushed = false;
    void registrar.flush().then(() => { flushed = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(flushed).toBe(false);
    for (const r of release) r();
    await registrar.flush();
    expect(flushed).toBe(true);
  });
});
