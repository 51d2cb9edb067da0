// The source shim's --undefine-source (shim/migration-setup.ts, undefineHere): a virtqemud killed
// during the migration is waited for, within a bound, so the VM that migrated away is not left
// defined here (cluster chaos seed 29509, session 30).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcServer, VirtqError, delay, silentLogger, systemClock, virtqProgram, type Handlers, type VirtqProgram } from '../../../protocol/index.js';
import { undefineHere } from '../../../shim/migration-setup.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const clock = systemClock();

describe('undefineHere', () => {
  let root: TmpRoot;
  let server: RpcServer | undefined;
  const removed: string[] = [];

  const serve = async (undefine: Handlers<VirtqProgram>['undefine']): Promise<void> => {
    const s = new RpcServer({ daemon: 'virtqemud', version: '0.1', role: 'aggregator', clock, log: silentLogger() });
    s.register({ program: virtqProgram, handlers: { undefine } });
    await s.listen(root.path('rw.sock'), 'rw', 0o600);
    server = s;
  };

  beforeEach(() => {
    root = tmpRoot();
    removed.length = 0;
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
    root.remove();
  });

  it('waits for a virtqemud that is down, then undefines', async () => {
    const asked = undefineHere(root.path('rw.sock'), 'vm1', clock, 10_000);
    await delay(clock, 400);
    await serve(({ name }) => { removed.push(name); return Promise.resolve({}); });
    await asked;
    expect(removed).toEqual(['vm1']);
  });

  it('asks again when the connection closes before the reply', async () => {
    let gone!: () => void;
    const firstGone = new Promise<void>((resolve) => { gone = resolve; });
    await serve(() => {
      // As a kill -9 mid-call: the server goes without replying, the caller sees CONNECTION_CLOSED.
      const s = server;
      server = undefined;
      void s?.close().then(gone);
      return new Promise<never>(() => undefined);
    });
    const asked = undefineHere(root.path('rw.sock'), 'vm2', clock, 10_000);
    await firstGone;
    await serve(({ name }) => { removed.push(name); return Promise.resolve({}); });
    await asked;
    expect(removed).toEqual(['vm2']);
  });

  it('takes NO_DOMAIN as done, and gives other refusals back at once', async () => {
    await serve(({ name }) => Promise.reject(name === 'gone'
      ? new VirtqError('NO_DOMAIN', `no VM "${name}"`)
      : new VirtqError('OPERATION_INVALID', `VM "${name}" has a snapshot`)));
    await expect(undefineHere(root.path('rw.sock'), 'gone', clock, 10_000)).resolves.toBeUndefined();
    const started = clock.monotonic();
    await expect(undefineHere(root.path('rw.sock'), 'kept', clock, 10_000)).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(clock.monotonic() - started).toBeLessThan(2000);
  });

  it('gives up with NO_CONNECT once its bound has passed', async () => {
    const started = clock.monotonic();
    await expect(undefineHere(root.path('rw.sock'), 'vm3', clock, 600)).rejects.toMatchObject({ code: 'NO_CONNECT' });
    const took = clock.monotonic() - started;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);
  });
});
