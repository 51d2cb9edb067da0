// Hostile input on a daemon's TLS port: plain TCP, garbage TLS records, a handshake that never
// finishes, more connections than the socket's cap, and fuzzed frames after a good handshake.
// Each costs the offender its connection only: a well-behaved client is served afterwards.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, connectAdmin } from '../../client/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { TestPki, clientPki, startTls, type TestCa } from '../helpers/tls-certs.js';
import { tmpRoot } from '../helpers/tmp-root.js';

/** Resolves once `socket` has closed. */
const closed = (socket: Socket): Promise<void> => new Promise((resolve) => {
  if (socket.destroyed) resolve();
  socket.on('error', () => undefined);
  // Read (and drop) what the server sends: a paused socket never sees the server's FIN.
  socket.resume();
  socket.once('close', () => resolve());
});

const rawConnect = (port: number): Promise<Socket> => new Promise((resolve, reject) => {
  const s = netConnect(port, '127.0.0.1', () => resolve(s));
  s.once('error', reject);
});

describe('the TLS port under hostile input', () => {
  let h: ServiceHarness;
  let pki: TestPki;
  let ca: TestCa;
  let port: number;
  let uri: string;
  beforeEach(async () => {
    h = new ServiceHarness(tmpRoot());
    pki = new TestPki(h.root.path('pki'));
    ca = pki.ca('main');
    port = (await startTls(h, 'virtqemud', pki, ca, ['--tls-handshake-timeout-ms', '500'])).port;
    uri = `qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'good', '/O=virtq-test/CN=good')}`;
  });
  afterEach(async () => { await h.cleanup(); });

  const stillServes = async (): Promise<void> => {
    const c = await connect(uri);
    expect((await c.virtq.listDomains({})).domains).toEqual([]);
    c.close();
  };

  it('drops plain TCP, garbage records and stalled handshakes, and keeps serving', async () => {
    const plain = await rawConnect(port);
    plain.write('GET / HTTP/1.0\r\n\r\n');
    await closed(plain);
    for (let i = 0; i < 20; i++) {
      const g = await rawConnect(port);
      // A handshake record header with a random body, or bytes at random.
      const body = randomBytes(1 + Math.floor(Math.random() * 2000));
      g.write(i % 2 === 0 ? Buffer.concat([Buffer.from([0x16, 0x03, 0x01, body.length >> 8, body.length & 0xff]), body]) : body);
      await closed(g);
    }
    // Nothing sent at all: dropped by the handshake timeout (500 ms here).
    const stalled = await rawConnect(port);
    await closed(stalled);
    // Half a ClientHello, then silence.
    const half = await rawConnect(port);
    half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await closed(half);
    await stillServes();
  }, 30_000);

  it('holds the TLS port to the per-socket client cap', async () => {
    const adm = await connectAdmin(h.uri('qemu'));
    await adm.admin.setConfig({ key: 'limits.maxClients', value: '10' });
    const sockets = await Promise.all(Array.from({ length: 40 }, () => rawConnect(port)));
    let open = sockets.length;
    for (const s of sockets) void closed(s).then(() => { open--; });
    await expect.poll(() => open, { timeout: 10_000 }).toBeLessThanOrEqual(10);
    for (const s of sockets) s.destroy();
    await expect.poll(() => open, { timeout: 10_000 }).toBe(0);
    // The unix socket is another socket: its clients were never affected.
    const local = await connect(h.uri('qemu'));
    expect((await local.virtq.listDomains({})).domains).toEqual([]);
    local.close();
    await adm.admin.setConfig({ key: 'limits.maxClients', value: '5000' });
    adm.close();
    await stillServes();
  }, 30_000);

  it('drops a verified client that sends fuzzed frames, and only that one', async () => {
    const good = await connect(uri);
    const pkiDir = `${pki.dir}/good-pki`;
    for (let i = 0; i < 30; i++) {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: '', ca: readFileSync(`${pkiDir}/cacert.pem`), cert: readFileSync(`${pkiDir}/clientcert.pem`), key: readFileSync(`${pkiDir}/clientkey.pem`) });
      await new Promise<void>((resolve, reject) => { s.once('secureConnect', () => resolve()); s.once('error', reject); });
      const body = randomBytes(1 + Math.floor(Math.random() * 512));
      // A plausible length prefix with random CBOR, or a length past the frame limit.
      const len = i % 3 === 0 ? 0x7fffffff : body.length;
      s.write(Buffer.concat([Buffer.from([len >>> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]), body]));
      s.end();
      await closed(s);
    }
    expect((await good.virtq.listDomains({})).domains).toEqual([]);
    good.close();
    await stillServes();
  }, 60_000);
});
