// A real three-member etcd cluster for tests: Debian's etcd-server (3.4) run as three processes
// on free loopback ports, each with its data directory under one temporary root. Members can be
// paused (SIGSTOP), resumed (SIGCONT) or killed for fault tests; stop() kills all of them and
// removes the root. With `tls`, clients must speak TLS (server certificate from tls-certs.ts) and,
// with clientCertAuth, present a certificate the CA signed; peers stay plain on loopback.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpRoot, type TmpRoot } from './tmp-root.js';
import { freePort } from './free-port.js';

/** Debian's etcd binary (package etcd-server). */
export const ETCD = '/usr/bin/etcd';

/** One member of the test cluster. */
export interface EtcdMember {
  readonly name: string;
  /** host:port of its client endpoint. */
  readonly client: string;
  readonly proc: ChildProcess;
}

/** TLS for the members' client endpoints. */
export interface EtcdTls {
  /** The CA (PEM file) that signed the server certificate, and client certificates when clientCertAuth. */
  ca: string;
  cert: string;
  key: string;
  clientCertAuth: boolean;
  /** A client certificate and key for the helper's own health checks (needed with clientCertAuth). */
  client?: { cert: string; key: string };
}

/** A running etcd cluster. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client endpoint (host:port), comma-separated: the --cluster URI's host list. */
  readonly endpoints: string;
  readonly dir: TmpRoot;
  /** The --cluster URI for `prefix`. */
  uri(prefix: string): string;
  pause(i: number): void;
  resume(i: number): void;
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `size` members (default 3) and resolves once the cluster has a leader. */
export async function startEtcdCluster(size = 3, tls?: EtcdTls): Promise<EtcdCluster> {
  const dir = tmpRoot('vq-etcd-');
  const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peer = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const procs: ChildProcess[] = [];
  const logs: string[] = names.map(() => '');
  const members = names.map((name, i): EtcdMember => {
    const client = `127.0.0.1:${ports[2 * i]}`;
    const proc = spawn(ETCD, [
      '--name', name, '--data-dir', dir.path(name),
      '--listen-client-urls', `${tls === undefined ? 'http' : 'https'}://${client}`, '--advertise-client-urls', `${tls === undefined ? 'http' : 'https'}://${client}`,
      ...(tls === undefined ? [] : ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, ...(tls.clientCertAuth ? ['--client-cert-auth'] : [])]),
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `vq-${process.pid}`,
      // Loopback and a busy test machine: short elections keep fault tests quick, without flapping.
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--logger', 'zap', '--log-outputs', 'stderr',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d: Buffer) => { logs[i] = (logs[i] + d.toString()).slice(-20_000); });
    procs.push(proc);
    return { name, client, proc };
  });
  const exited = procs.map((p) => new Promise<void>((resolve) => { if (p.exitCode !== null) resolve(); else p.once('exit', () => resolve()); }));
  const cluster: EtcdCluster = {
    members, dir,
    endpoints: members.map((m) => m.client).join(','),
    uri: (prefix) => `etcd://${members.map((m) => m.client).join(',')}/${prefix}`,
    pause: (i) => { procs[i]?.kill('SIGSTOP'); },
    resume: (i) => { procs[i]?.kill('SIGCONT'); },
    kill: async (i) => { procs[i]?.kill('SIGKILL'); await exited[i]; },
    stop: async () => {
      for (const p of procs) { p.kill('SIGCONT'); p.kill('SIGKILL'); }
      await Promise.all(exited);
      dir.remove();
    },
  };
  try {
    await waitHealthy(members, logs, tls);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

// Ready when every member answers /health with a leader elected (etcd 3.4's health endpoint).
async function waitHealthy(members: EtcdMember[], logs: string[], tls: EtcdTls | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const [i, m] of members.entries()) {
    for (;;) {
      if (m.proc.exitCode !== null) throw new Error(`etcd member ${m.name} exited (${m.proc.exitCode}): ${logs[i]}`);
      const ok = await (tls === undefined ? fetch(`http://${m.client}/health`).then(async (r) => await r.text()) : httpsGet(`https://${m.client}/health`, tls))
        .then((body) => (JSON.parse(body) as { health?: string }).health === 'true', () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy after 30 s: ${logs[i]}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function httpsGet(url: string, tls: EtcdTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(tls.ca), ...(tls.client === undefined ? {} : { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(2000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}
