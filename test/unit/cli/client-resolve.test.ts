// The client library's socket resolution: daemon URIs, a shim's socket path and its -ro and
// -admin siblings, a shim found by name through its state file, and the errors that name what
// was tried.
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseUri, type Target } from '../../../protocol/index.js';
import { resolveSocket } from '../../../client/resolve.js';
import { connect, connectAdmin, resolveDefaultUri } from '../../../client/index.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const target = (uri: string) => parseUri(uri) as Exclude<Target, { kind: 'embed' }>;

describe('client socket resolution', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => root.remove());

  it('dials the daemon\'s read-write, read-only or admin socket', async () => {
    await expect(resolveSocket(target(`qemu:///system?root=${root.dir}`), 'api')).resolves.toMatchObject({ peer: 'daemon', socket: root.path('run', 'virtqemud.sock'), readOnly: false });
    await expect(resolveSocket(target(`qemu:///system?root=${root.dir}&mode=ro`), 'api')).resolves.toMatchObject({ socket: root.path('run', 'virtqemud-ro.sock'), readOnly: true });
    await expect(resolveSocket(target(`qemu:///system?root=${root.dir}`), 'admin')).resolves.toMatchObject({ socket: root.path('run', 'virtqemud-admin.sock') });
  });

  it('finds a shim\'s -ro and -admin sockets beside the one given', async () => {
    await expect(resolveSocket(target('qemu+shim:///r/run/shims/web1.sock?mode=ro'), 'api')).resolves.toMatchObject({ peer: 'shim', socket: '/r/run/shims/web1-ro.sock', readOnly: true });
    await expect(resolveSocket(target('qemu+shim:///r/run/shims/web1.sock'), 'admin')).resolves.toMatchObject({ socket: '/r/run/shims/web1-admin.sock' });
    await expect(resolveSocket(target('qemu+shim:///r/run/shims/web1-ro.sock?mode=ro'), 'api')).resolves.toMatchObject({ socket: '/r/run/shims/web1-ro.sock' });
    await expect(resolveSocket(target('qemu+shim:///r/odd?mode=ro'), 'api')).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });

  it('reads a named shim\'s sockets from its state file', async () => {
    mkdirSync(root.path('run', 'shims'), { recursive: true });
    const sockets = { rw: '/s/h-1.sock', ro: '/s/h-1-ro.sock', admin: '/s/h-1-admin.sock', monitor: '/s/m', console: '/s/c' };
    writeFileSync(root.path('run', 'shims', 'web1.json'), JSON.stringify({ format: 1, name: 'web1', uuid: 'u', state: 'running', reason: 'booted', sockets, definition: {} }));
    await expect(resolveSocket(target(`shim:///web1?root=${root.dir}`), 'api')).resolves.toMatchObject({ socket: '/s/h-1.sock' });
    await expect(resolveSocket(target(`shim:///web1?root=${root.dir}&mode=ro`), 'api')).resolves.toMatchObject({ socket: '/s/h-1-ro.sock', readOnly: true });
    await expect(resolveSocket(target(`shim:///web1?root=${root.dir}`), 'admin')).resolves.toMatchObject({ socket: '/s/h-1-admin.sock' });
    await expect(resolveSocket(target(`shim:///nope?root=${root.dir}`), 'api')).rejects.toMatchObject({ code: 'NO_DOMAIN', message: expect.stringContaining('nope.json') });
  });

  it('fails with NO_CONNECT naming the socket and what is probably not running', async () => {
    await expect(connect(`qemu:///system?root=${root.dir}`)).rejects.toMatchObject({
      code: 'NO_CONNECT', message: `cannot connect to ${root.path('run', 'virtqemud.sock')}: no such socket (is virtqemud running for qemu:///system?root=${root.dir}?)`,
      details: { socket: root.path('run', 'virtqemud.sock') },
    });
    await expect(connectAdmin(`qemu:///embed?root=${root.dir}`)).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });

  it('defaults to VIRTQ_DEFAULT_URI, else session for users and system for root', () => {
    expect(resolveDefaultUri({ env: { VIRTQ_DEFAULT_URI: 'qemu:///embed?root=/x' }, uid: 0 })).toBe('qemu:///embed?root=/x');
    expect(resolveDefaultUri({ env: {}, uid: 1000 })).toBe('qemu:///session');
    expect(resolveDefaultUri({ env: {}, uid: 0 })).toBe('qemu:///system');
  });
});
