// TLS to etcd: a real three-member etcd serving its clients over TLS only, with client
// certificates required (--client-cert-auth), certificates made by openssl (tls-certs.ts).
// virtqemud and `virtq fleet` given the right CA and a client certificate claim and list over
// TLS; given another CA they are refused with CLUSTER_UNAVAILABLE naming the certificate problem,
// and plain gRPC to the TLS endpoints claims nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { idleGuest } from '../../helpers/test-guest.js';
import { DaemonHarness } from '../../helpers/daemon-harness.js';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.js';
import { TestPki, type TestCa, type TestCert } from '../../helpers/tls-certs.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';
import { virtq } from '../../e2e/virtq-cli.js';
import type { VirtqError } from '../../../protocol/index.js';
import type { FleetDomain } from '../../../client/fleet-view.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('TLS to etcd (--cluster-cacert/--cluster-cert/--cluster-key)', () => {
  let dir: TmpRoot;
  let etcd: EtcdCluster;
  let ca: TestCa;
  let other: TestCa;
  let host: TestCert;
  const harnesses: DaemonHarness[] = [];
  const prefix = `vq-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    dir = tmpRoot('vq-etcd-tls-');
    const pki = new TestPki(dir.path('pki'));
    ca = pki.ca('etcd-ca');
    other = pki.ca('other-ca');
    const server = pki.issue(ca, 'etcd-server', '/O=virtq-test/CN=localhost', 'server');
    host = pki.issue(ca, 'host0', '/O=virtq-test/CN=host0', 'client');
    etcd = await startEtcdCluster(3, { ca: ca.cert, cert: server.cert, key: server.key, clientCertAuth: true, client: host });
  }, 120_000);
  afterAll(async () => {
    for (const h of harnesses) await h.cleanup();
    await etcd?.stop();
    dir?.remove();
  }, 120_000);

  // Members named as their certificate names them: an IP address works too, but Node then warns
  // (DEP0123) that TLS's server name cannot be an IP address.
  const uri = (): string => etcd.uri(prefix).replaceAll('127.0.0.1:', 'localhost:');
  const daemon = async (id: string, tls: string[]) => {
    const h = new DaemonHarness(tmpRoot());
    harnesses.push(h);
    await h.startDaemon(['--cluster', uri(), '--cluster-host', id, '--cluster-ttl', '2', '--reconcile-ms', '0', ...tls]);
    return (await h.client()).api;
  };

  it('claims and lists over TLS with the right CA and a client certificate', async () => {
    const api = await daemon('host0', ['--cluster-cacert', ca.cert, '--cluster-cert', host.cert, '--cluster-key', host.key]);
    await api.define({ definition: idleDef('tls-vm') });
    // A VM with a disk: its shim's etcd lock plugin takes the disk's key over TLS too, with the
    // certificates virtqemud hands it in run/cluster-lease.json (over plain gRPC it would be refused).
    const disk = dir.path('tls-disk.img');
    writeFileSync(disk, Buffer.alloc(1024 * 1024));
    await api.create({ definition: { ...idleDef('tls-disked'), disks: [{ path: disk, format: 'raw', target: 'vda' }] } });
    const r = await virtq(['fleet', '--cluster', uri(), '--cluster-cacert', ca.cert, '--cluster-cert', host.cert, '--cluster-key', host.key, '--json']);
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout) as FleetDomain[]).map((d) => [d.host, d.name, d.state])).toEqual([['host0', 'tls-disked', 'running'], ['host0', 'tls-vm', 'shutoff']]);
    await api.destroy({ name: 'tls-disked' });
  }, 90_000);

  it('refuses etcd\'s certificate when given another CA, naming the certificate problem', async () => {
    const api = await daemon('host1', ['--cluster-cacert', other.cert, '--cluster-cert', host.cert, '--cluster-key', host.key]);
    const err = await api.define({ definition: idleDef('tls-vm2') }).then(() => undefined, (e: VirtqError) => e);
    expect(err?.code).toBe('CLUSTER_UNAVAILABLE');
    expect(err?.message).toMatch(/certificate/i);
    const r = await virtq(['fleet', '--cluster', uri(), '--cluster-cacert', other.cert, '--cluster-cert', host.cert, '--cluster-key', host.key], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^virtq: CLUSTER_UNAVAILABLE: .*certificate/i);
  }, 90_000);

  it('claims nothing over plain gRPC to TLS endpoints, and checks the option set', async () => {
    const api = await daemon('host2', []);
    const err = await api.define({ definition: idleDef('tls-vm3') }).then(() => undefined, (e: VirtqError) => e);
    expect(err?.code).toBe('CLUSTER_UNAVAILABLE');
    const r = await virtq(['hosts', '--cluster', uri(), '--cluster-cert', host.cert]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^virtq: INVALID_ARG: --cluster-cert and --cluster-key go together/);
    const missing = await virtq(['hosts', '--cluster', uri(), '--cluster-cacert', dir.path('nope.pem')]);
    expect(missing.stderr).toMatch(/^virtq: INVALID_ARG: cannot read --cluster-cacert .*ENOENT/);
  }, 90_000);
});
