// The bound path of a unix socket this process holds, from /proc (Node has no getsockname for
// unix sockets): what socket activation matches unnamed passed sockets by.
import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boundUnixPath, parseProcNetUnix, socketInode } from '../../../../drivers/host/unix-sockets.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

describe('boundUnixPath', () => {
  let root: TmpRoot;
  let server: Server | undefined;
  beforeEach(() => { root = tmpRoot('vq-fds-'); });
  afterEach(async () => {
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
    root.remove();
  });

  it('finds the path a listening socket of this process is bound to, and nothing for other descriptors', async () => {
    server = createServer();
    await new Promise<void>((r) => server?.listen(root.path('a.sock'), r));
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    expect(socketInode(fd)).toBeGreaterThan(0);
    expect(boundUnixPath(fd)).toBe(root.path('a.sock'));
    expect(boundUnixPath(0x7fff)).toBeUndefined();
  });

  it('parses /proc/net/unix lines, paths with spaces and abstract names included', () => {
    const text = 'Num       RefCount Protocol Flags    Type St Inode Path\n'
      + '0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/virtq/virtqemud.sock\n'
      + '0000000000000000: 00000002 00000000 00010000 0001 01 1235 /tmp/a b.sock\n'
      + '0000000000000000: 00000003 00000000 00000000 0001 03 1236\n'
      + '0000000000000000: 00000002 00000000 00010000 0001 01 1237 @/org/abstract\n';
    expect([...parseProcNetUnix(text)]).toEqual([[1234, '/run/virtq/virtqemud.sock'], [1235, '/tmp/a b.sock'], [1237, '@/org/abstract']]);
  });
});
