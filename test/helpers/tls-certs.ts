// Certificates for TLS tests, made with the openssl CLI under a test's temporary root: a CA,
// server and client certificates it signs, an expired client certificate, and a second CA
// whose certificates the first must refuse. Nothing here is ever reused between tests.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { ServiceHarness, RunningProcess } from './service-harness.js';
import { join } from 'node:path';

/** A CA's files. */
export interface TestCa {
  readonly name: string;
  readonly cert: string;
  readonly key: string;
}

/** A certificate and its key. */
export interface TestCert {
  readonly cert: string;
  readonly key: string;
  /** The subject as given to openssl, e.g. `/O=virtq-test/CN=alice`. */
  readonly subject: string;
}

const openssl = (args: readonly string[], cwd: string): void => {
  execFileSync('openssl', [...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
};

/** Makes certificates under `dir`. */
export class TestPki {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /** A self-signed CA named `name`. */
  ca(name: string): TestCa {
    const cert = join(this.dir, `${name}-cacert.pem`);
    const key = join(this.dir, `${name}-cakey.pem`);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', `/O=virtq-test/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], this.dir);
    return { name, cert, key };
  }

  /**
   * A certificate signed by `ca` for `subject` (`/O=.../CN=...`): a server one (with the
   * subjectAltName `localhost` and 127.0.0.1) or a client one; `expired` backdates it.
   */
  issue(ca: TestCa, file: string, subject: string, kind: 'server' | 'client', expired = false): TestCert {
    const key = join(this.dir, `${file}-key.pem`);
    const csr = join(this.dir, `${file}.csr`);
    const cert = join(this.dir, `${file}-cert.pem`);
    const ext = join(this.dir, `${file}.ext`);
    writeFileSync(ext, kind === 'server'
      ? 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n'
      : 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subject], this.dir);
    // An expired certificate: OpenSSL 3.0's x509 takes a negative -days (notAfter a day before notBefore = now).
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-extfile', ext, '-days', expired ? '-1' : '2'], this.dir);
    return { cert, key, subject };
  }
}

/** Starts `daemon` listening for TLS on a free loopback port; resolves with its port. */
export async function startTls(h: ServiceHarness, daemon: 'virtqemud' | 'virtstoraged', pki: TestPki, ca: TestCa, extra: string[] = []): Promise<{ port: number; proc: RunningProcess }> {
  const server = pki.issue(ca, `${daemon}-server`, `/O=virtq-test/CN=${daemon}.localhost`, 'server');
  const proc = await h.start(daemon, ['--listen-tls', '127.0.0.1:0', '--tls-cert', server.cert, '--tls-key', server.key, '--tls-ca', ca.cert, ...extra]);
  const port = (proc.reply as { tlsPort?: number }).tlsPort;
  if (port === undefined) throw new Error(`${daemon} reported no tlsPort: ${JSON.stringify(proc.reply)}`);
  return { port, proc };
}

/** A pkipath directory with `clientcert.pem`, `clientkey.pem` and `cacert.pem`. */
export function clientPki(pki: TestPki, ca: TestCa, file: string, subject: string, opts: { expired?: boolean; trust?: TestCa } = {}): string {
  const c = pki.issue(ca, file, subject, 'client', opts.expired ?? false);
  const dir = `${pki.dir}/${file}-pki`;
  new TestPki(dir);
  copyFileSync(c.cert, `${dir}/clientcert.pem`);
  copyFileSync(c.key, `${dir}/clientkey.pem`);
  copyFileSync((opts.trust ?? ca).cert, `${dir}/cacert.pem`);
  return dir;
}
