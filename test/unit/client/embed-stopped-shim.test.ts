// Embedded mode, a VM that has just stopped: its shim exits, and a call on the connection the
// application still holds can meet that close (CI, session 10: suspend after destroy got
// CONNECTION_CLOSED). With the state file recording a final state, the call is answered as for
// any stopped VM. The "shim" here is a socket that reads a call and closes the connection: only
// the router's handling of that close is under test (test/e2e/embed.test.ts runs real shims).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../../client/index.js';
import { rootLayout, shimStateFile } from '../../../protocol/index.js';

const cleanups: Array<() => void> = [];
afterEach(() => { for (const c of cleanups.splice(0).reverse()) c(); });

/** A socket that takes a connection and closes it once a call arrives (as a shim exiting). */
function closingShim(path: string): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.once('data', () => s.destroy());
  });
  cleanups.push(() => { for (const s of sockets) s.destroy(); server.close(); });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

function stoppedVm(dir: string, state: 'shutoff' | 'running', rw: string): void {
  const layout = rootLayout(dir);
  const file = shimStateFile(layout, 'gone');
  mkdirSync(join(file, '..'), { recursive: true });
  const def = { name: 'gone', uuid: '6f1c1a52-4a1e-4bd4-9a43-0d3c1fd0a0aa', memoryMiB: 32, vcpus: 1 };
  writeFileSync(file, JSON.stringify({
    format: 1, name: 'gone', uuid: def.uuid, shimPid: process.pid, qemuPid: undefined, qemuStartedAt: undefined, accel: 'tcg',
    sockets: { rw, ro: `${rw}.ro`, admin: `${rw}.admin`, monitor: `${rw}.mon`, console: `${rw}.con` },
    definition: def, state, reason: state === 'shutoff' ? 'destroyed' : 'booted', tainted: false, private: true, updatedAt: Date.now(),
  }));
}

describe('embedded mode, a shim closing as its VM stops', () => {
  it('answers a call that meets the close as for a stopped VM once the state file says the VM stopped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vq-embed-stop-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rw = join(dir, 'gone.sock');
    await closingShim(rw);
    stoppedVm(dir, 'shutoff', rw);
    const c = await connect(`qemu:///embed?root=${dir}`, { shimCommand: ['/bin/false'] });
    cleanups.push(() => c.close());
    await expect(c.domain('gone').suspend()).rejects.toMatchObject({ code: 'OPERATION_INVALID', message: expect.stringContaining('shutoff') });
  });

  it('passes the close on when the state file says the VM still runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vq-embed-stop-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const rw = join(dir, 'gone.sock');
    await closingShim(rw);
    stoppedVm(dir, 'running', rw);
    const c = await connect(`qemu:///embed?root=${dir}`, { shimCommand: ['/bin/false'] });
    cleanups.push(() => c.close());
    await expect(c.domain('gone').suspend()).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });
});
