// The save's copier: a `cat` child moves a socket's bytes to a descriptor at its offset (after
// virtq's header), the shim reads none of them, and a copier that cannot run fails the save.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { catCopier } from '../../../shim/vm/stream-copy.js';

describe('catCopier', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vq-copy-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // A connected pair over a unix socket, the accepting side paused as saveToFile's server makes it.
  async function pair(): Promise<{ writer: Socket; accepted: Socket }> {
    const path = join(dir, 's.sock');
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((r) => server.listen(path, r));
    const acceptedP = new Promise<Socket>((ok) => server.once('connection', (s) => { server.close(); ok(s); }));
    const writer = connect(path);
    await new Promise<void>((r) => writer.once('connect', r));
    return { writer, accepted: await acceptedP };
  }

  it('writes the whole stream after what the descriptor already holds', async () => {
    const { writer, accepted } = await pair();
    const fh = await open(join(dir, 'img'), 'wx');
    await fh.write(Buffer.from('HEADER'), 0, 6, null);
    const payload = Buffer.alloc(3 * 2 ** 20 + 17, 7);
    const copied = catCopier()(accepted, fh.fd);
    writer.end(payload);
    await copied;
    await fh.close();
    const out = readFileSync(join(dir, 'img'));
    expect(out.length).toBe(6 + payload.length);
    expect(out.subarray(0, 6).toString()).toBe('HEADER');
    expect(out.subarray(6).equals(payload)).toBe(true);
  });

  it('fails with OPERATION_FAILED when the copier cannot run', async () => {
    const { writer, accepted } = await pair();
    const fh = await open(join(dir, 'img'), 'wx');
    try {
      await expect(catCopier(join(dir, 'no-such-cat'))(accepted, fh.fd)).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    } finally {
      writer.destroy();
      await fh.close();
    }
  });
});
