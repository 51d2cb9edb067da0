import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseSs, statusIds, unixPeerCreds } from '../../../daemon/acl/peer-creds.js';
import { tmpRoot } from '../../helpers/tmp-root.js';

const SS = [
  'u_str ESTAB 0      0      /tmp/x.sock 3938408 * 3938407 users:(("node",pid=16894,fd=21))',
  'u_str ESTAB 0      0                     * 3938407 * 3938408 users:(("node",pid=16894,fd=20),("node",pid=16900,fd=20))',
  'u_str LISTEN 0 511 /tmp/x.sock 3938400 * 0',
  'garbage',
].join('\n');

/** A connected pair: the server's accepted socket and the client. */
async function pair(fn: (accepted: Socket) => Promise<void>): Promise<void> {
  const root = tmpRoot();
  const path = root.path('s.sock');
  const srv = createServer();
  const got = new Promise<Socket>((resolve) => { srv.once('connection', resolve); });
  await new Promise<void>((resolve) => srv.listen(path, resolve));
  const client = connect(path);
  try {
    await fn(await got);
  } finally {
    client.destroy();
    srv.close();
    root.remove();
  }
}

describe('unix peer credentials without SO_PEERCRED', () => {
  it('parses ss rows (inode, peer inode, pids) and effective ids from /proc status', () => {
    const rows = parseSs(SS);
    expect(rows.get(3938408)).toEqual({ inode: 3938408, peer: 3938407, pids: [16894] });
    expect(rows.get(3938407)?.pids).toEqual([16894, 16900]);
    expect(rows.get(3938400)?.peer).toBe(0);
    expect(rows.size).toBe(3);
    expect(statusIds('Name:\tx\nUid:\t1000\t65534\t65534\t65534\nGid:\t100\t200\t200\t200\n')).toEqual({ uid: 65534, gid: 200 });
    expect(statusIds('Name:\tx\n')).toBeUndefined();
  });

  it('finds this process as the peer of a real connection', async () => {
    await pair(async (accepted) => {
      expect(await unixPeerCreds(accepted)).toEqual({ uid: process.getuid?.(), gid: process.getgid?.(), pid: process.pid });
    });
  });

  it('knows nothing when ss finds no peer, cannot run, or there is no fd', async () => {
    await pair(async (accepted) => {
      expect(await unixPeerCreds(accepted, async () => '')).toBeUndefined();
      expect(await unixPeerCreds(accepted, async () => { throw new Error('no ss'); })).toBeUndefined();
      expect(await unixPeerCreds({} as Socket)).toBeUndefined();
    });
  });
});
