// Access rules on a real virtqemud: x509 identities over TLS limited to some VMs and classes,
// anonymous-ro narrowed, the listing hiding (and counting) VMs, denials counted and logged;
// config-reload keeping the old rules on a syntax error (line and column) or a lock-out; the
// generic configuration (config-get/config-set, from the CLI too) and tls-reload keeping clients.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, connectAdmin, type AdminConnection } from '../../client/index.js';
import type { AclRule } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { TestPki, clientPki, startTls, type TestCa } from '../helpers/tls-certs.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const ALICE = 'O=virtq-test,CN=alice';
const RULES: AclRule[] = [
  { id: 'ro-no-defs', match: { anonymousRo: true }, procedures: ['getDefinition'], action: 'deny' },
  { id: 'alice-web', match: { x509: ALICE }, procedures: ['read', 'lifecycle'], vms: ['web*'], action: 'allow' },
  { id: 'alice-rest', match: { x509: 'O=virtq-test,CN=a*' }, procedures: ['*'], action: 'deny' },
];

describe('access rules', () => {
  let h: ServiceHarness;
  let pki: TestPki;
  let ca: TestCa;
  let adm: AdminConnection;
  const aclFile = (): string => h.root.path('acl.json');
  beforeEach(() => {
    h = new ServiceHarness(tmpRoot());
    pki = new TestPki(h.root.path('pki'));
    ca = pki.ca('main');
    writeFileSync(aclFile(), JSON.stringify({ rules: RULES }, null, 2));
  });
  afterEach(async () => { adm?.close(); await h.cleanup(); });

  it('limits identities to procedures and VMs, hides VMs from the listing, counts and logs denials', async () => {
    const { port } = await startTls(h, 'virtqemud', pki, ca, ['--acl', aclFile()]);
    const owner = await connect(h.uri('qemu'));
    for (const name of ['web1', 'web2', 'db1']) await owner.virtq.define({ definition: idleDef(name) });
    const alice = await connect(`qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'alice', `/O=virtq-test/CN=alice`)}`);
    const listed = await alice.virtq.listDomains({});
    expect(listed.domains.map((d) => d.name).sort()).toEqual(['web1', 'web2']);
    expect(listed.hidden).toBe(1);
    expect(await alice.virtq.getState({ name: 'web1' })).toMatchObject({ state: 'shutoff' });
    await expect(alice.virtq.getState({ name: 'db1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/virtq\.getState on "db1" is denied to x509 "O=virtq-test,CN=alice" by access rule alice-rest/) });
    await expect(alice.virtq.define({ definition: idleDef('db2') })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { rule: 'alice-rest', procedure: 'virtq.define' } });
    await expect(alice.virtq.qemuMonitorCommand({ name: 'web1', command: { execute: 'query-status' } })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { rule: 'alice-rest' } });
    expect(await alice.virtq.getDefinition({ name: 'web1' })).toMatchObject({ name: 'web1' });
    // The owner's unix socket keeps today's behaviour; the read-only socket is narrowed by anonymous-ro.
    expect((await owner.virtq.listDomains({})).hidden).toBeUndefined();
    const ro = await connect(h.uri('qemu', true));
    await expect(ro.virtq.getDefinition({ name: 'web1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { rule: 'ro-no-defs' } });
    expect((await ro.virtq.listDomains({})).domains).toHaveLength(3);
    ro.close();

    adm = await connectAdmin(h.uri('qemu'));
    const families = (await adm.admin.getMetrics({})).families as Array<{ name: string; values: Array<{ value: number; labels: Record<string, string> }> }>;
    const denied = families.find((f) => f.name === 'virtq_rpc_access_denied_total');
    expect(denied?.values).toContainEqual(expect.objectContaining({ value: 1, labels: expect.objectContaining({ procedure: 'virtq.getState', rule: 'alice-rest' }) }));
    expect(denied?.values).toContainEqual(expect.objectContaining({ value: 1, labels: expect.objectContaining({ procedure: 'virtq.getDefinition', rule: 'ro-no-defs' }) }));
    const log = readFileSync(h.root.path('log', 'virtqemud.log'), 'utf8').split('\n').filter((l) => l.includes('"access-denied"'));
    expect(log.map((l) => JSON.parse(l) as Record<string, unknown>)).toContainEqual(expect.objectContaining({ procedure: 'virtq.define', rule: 'alice-rest', identity: `x509 "${ALICE}"`, vm: 'db2' }));

    // A syntax error: the reload names line and column; the old rules stay in force.
    writeFileSync(aclFile(), '{\n  "rules": [\n    { "match": {}, }\n  ]\n}\n');
    await expect(adm.admin.reloadConfig({})).rejects.toMatchObject({ code: 'INVALID_ARG', details: { line: 3, column: 20 } });
    await expect(alice.virtq.getState({ name: 'db1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    // A rule set that would lock the owner out of the admin socket is refused whole.
    writeFileSync(aclFile(), JSON.stringify({ rules: [{ id: 'oops', match: {}, procedures: ['admin'], action: 'deny' }] }));
    await expect(adm.admin.reloadConfig({})).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('locking the admin out') });
    await expect(alice.virtq.getState({ name: 'db1' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    // A good file takes effect for connected clients.
    writeFileSync(aclFile(), JSON.stringify({ rules: [{ match: { x509: ALICE }, procedures: ['qmp'], action: 'deny' }] }));
    expect(await adm.admin.reloadConfig({})).toEqual({ file: aclFile(), rules: 1 });
    expect(await alice.virtq.getState({ name: 'db1' })).toMatchObject({ state: 'shutoff' });
    expect((await alice.virtq.listDomains({})).hidden).toBeUndefined();
    alice.close();
    owner.close();
  }, 60_000);

  it('reads and changes runtime settings by key, and reloads certificates without dropping clients', async () => {
    const { port } = await startTls(h, 'virtqemud', pki, ca);
    adm = await connectAdmin(h.uri('qemu'));
    await expect(adm.admin.setConfig({ key: 'limits.nope', value: '1' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('known keys: log.filters, log.outputs, limits.maxClients') });
    expect(await adm.admin.setConfig({ key: 'limits.maxClients', value: '77' })).toEqual({ key: 'limits.maxClients', value: 77 });
    expect((await adm.admin.getLimits({})).maxClients).toBe(77);
    await expect(adm.admin.setConfig({ key: 'limits.maxClients', value: '-3' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    const cli = await run(process.execPath, [CLI, '-c', h.uri('qemu'), 'admin', 'config-set', 'log.filters', 'debug:rpc.acl']);
    expect(cli.stdout).toBe('log.filters = debug:rpc.acl\n');
    expect((await run(process.execPath, [CLI, '-c', h.uri('qemu'), 'admin', 'config-get', 'acl.file'])).stdout).toBe(`acl.file = ${h.root.path('etc', 'virtqemud-acl.json')}\n`);
    const all = (await adm.admin.getConfig({})).values;
    expect(Object.keys(all)).toEqual(['log.filters', 'log.outputs', 'limits.maxClients', 'limits.maxInflightPerClient', 'limits.workerConcurrency', 'tls.cert', 'tls.key', 'tls.ca', 'acl.file']);

    // tls-reload: a client connected before keeps working; new handshakes get the new certificate.
    const alice = await connect(`qemu+tls://127.0.0.1:${port}/system?pkipath=${clientPki(pki, ca, 'alice', `/O=virtq-test/CN=alice`)}`);
    const serial = (): Promise<string> => new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), cert: readFileSync(`${pki.dir}/alice-pki/clientcert.pem`), key: readFileSync(`${pki.dir}/alice-pki/clientkey.pem`), servername: '' }, () => { resolve(s.getPeerCertificate().serialNumber); s.destroy(); });
      s.once('error', reject);
    });
    const before = await serial();
    const paths = (await adm.admin.getConfig({ key: 'tls.cert' })).values['tls.cert'] as string;
    const fresh = pki.issue(ca, 'renewed', '/O=virtq-test/CN=virtqemud.localhost', 'server');
    copyFileSync(fresh.cert, paths);
    copyFileSync(fresh.key, paths.replace(/-cert\.pem$/, '-key.pem'));
    expect(await adm.admin.reloadTls({})).toMatchObject({ cert: paths });
    expect(await serial()).not.toBe(before);
    expect((await alice.virtq.listDomains({})).domains).toEqual([]);
    // A bad path is refused and the old files stay in force.
    await expect(adm.admin.setConfig({ key: 'tls.ca', value: h.root.path('missing.pem') })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('missing.pem') });
    expect((await adm.admin.getConfig({ key: 'tls.ca' })).values['tls.ca']).toBe(ca.cert);
    expect(await serial()).not.toBe(before);
    alice.close();
  }, 60_000);
});
