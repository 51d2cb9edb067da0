// 10,000 connections, half idle and half with a frame begun and never finished, against
// virtqemud and a secondary daemon (virtstoraged), both at their default client cap (5,000 per
// socket): the rest are refused with a typed TOO_MANY_CLIENTS frame, the daemon keeps serving its
// other sockets and clients, its memory stays bounded, and everything closes cleanly. Root raises
// RLIMIT_NOFILE for the daemons (prlimit) and for this process, so the flood is not cut short by
// the default soft limit.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RpcClient, systemClock, type DaemonName } from '../../protocol/index.js';
import { createCodec } from '../../protocol/codec.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { alive, errorCode, open, rawFrame, rssMiB, splitFrames, waitFor } from './hostile-client.js';

const FLOOD = 10_000;
const CAP = 5000;
/** The hard limit on open files: the soft one is raised to it (CI's root may have a higher one). */
const NOFILE = Number(/Max open files\s+\d+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
const codec = createCodec();

interface FloodConn { socket: Socket; codes: string[]; closed: boolean }

// This process needs one fd per flood connection: its soft limit is raised to the hard one.
function raiseOwnNofile(): void {
  expect(NOFILE).toBeGreaterThan(FLOOD + 1000);
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${NOFILE}:${NOFILE}`]);
}

async function flood(path: string, n: number, batch = 500): Promise<FloodConn[]> {
  const conns: FloodConn[] = [];
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => open(path)));
    opened.forEach((socket, j) => {
      const c: FloodConn = { socket, codes: [], closed: false };
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        c.codes = splitFrames(buf).map((f) => errorCode(codec.decode(f)) ?? 'OK');
      });
      socket.on('error', () => undefined);
      socket.once('close', () => { c.closed = true; });
      // Every other connection starts a 4 KiB frame and sends 16 bytes of it.
      if ((i + j) % 2 === 1) socket.write(rawFrame(4096, new Uint8Array(16)));
      conns.push(c);
    });
  }
  return conns;
}

const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

describe(`a flood of ${FLOOD} connections, idle and half-written`, () => {
  let h: ServiceHarness;
  beforeEach(() => { raiseOwnNofile(); h = new ServiceHarness(tmpRoot(), ['prlimit', `--nofile=${NOFILE}:${NOFILE}`]); });
  afterEach(async () => { await h?.cleanup(); });

  for (const [daemon, prog, proc] of [['virtqemud', 'virtq', 'listDomains'], ['virtstoraged', 'storage', 'listPools']] as const) {
    it(`${daemon}: refuses past the cap with TOO_MANY_CLIENTS, serves everyone else, stays bounded, closes cleanly`, async () => {
      const d = await h.start(daemon as DaemonName);
      expect(Number(readFileSync(`/proc/${d.pid}/limits`, 'utf8').match(/Max open files\s+(\d+)/)?.[1])).toBe(NOFILE);
      const sockets = h.sockets(daemon as DaemonName);
      const clock = systemClock();
      const admin = await RpcClient.connect(sockets.admin, { clock });
      const rw = await RpcClient.connect(sockets.rw, { clock });
      await rw.call(prog, proc, {});
      const fdsBefore = fdCount(d.pid);
      const rssBefore = rssMiB(d.pid);

      const conns = await flood(sockets.rw, FLOOD);
      try {
        const accepted = CAP - 1; // the rw client above holds one slot
        expect(await waitFor(() => conns.filter((c) => c.closed).length === FLOOD - accepted, 30_000)).toBe(true);
        expect(new Set(conns.filter((c) => c.closed).map((c) => c.codes.join(',')))).toEqual(new Set(['TOO_MANY_CLIENTS']));
        // The existing client, the admin socket and the read-only socket are served; a new rw client is refused, typed.
        await expect(rw.call(prog, proc, {})).resolves.toBeDefined();
        const clients = (await admin.call('admin', 'listClients', {})) as { clients: Array<{ socket: string }> };
        expect(clients.clients.filter((c) => c.socket === 'rw')).toHaveLength(CAP);
        const ro = await RpcClient.connect(sockets.ro, { clock });
        await expect(ro.call(prog, proc, {})).resolves.toBeDefined();
        ro.close();
        const fresh = await RpcClient.connect(sockets.rw, { clock });
        await expect(fresh.call(prog, proc, {})).rejects.toMatchObject({ code: 'TOO_MANY_CLIENTS' });
        fresh.close();
        // Memory: bounded by the cap and the partial-frame budget, not by the flood.
        expect(rssMiB(d.pid) - rssBefore).toBeLessThan(400);
      } finally {
        for (const c of conns) c.socket.destroy();
      }
      // Everything closes: the slots, the fds; the daemon is alive and serves a new client.
      expect(await waitFor(async () => ((await admin.call('admin', 'listClients', {})) as { clients: Array<{ socket: string }> }).clients.filter((c) => c.socket === 'rw').length === 1, 15_000)).toBe(true);
      expect(await waitFor(() => fdCount(d.pid) <= fdsBefore + 2, 10_000)).toBe(true);
      expect(alive(d.pid)).toBe(true);
      const after = await RpcClient.connect(sockets.rw, { clock });
      await expect(after.call(prog, proc, {})).resolves.toBeDefined();
      after.close();
      rw.close();
      admin.close();
    }, 60_000);
  }
});
