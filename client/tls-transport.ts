// Dials a daemon on another host over mutual TLS 1.3 (`qemu+tls://HOST[:PORT]/system`): reads
// the client's PEM files from the URI's pkipath, verifies the server against the CA, and hands
// the secured socket to an RpcClient. Errors name what to fix: a missing file, the address
// nobody answers at, or the server refusing the certificate.
import { readFile } from 'node:fs/promises';
import { RpcClient, VirtqError, nodeTls, type RemoteTarget, type RpcClientOptions } from '../protocol/index.js';

/** How long the TCP connect and TLS handshake may take together (default 20 s). */
export const TLS_CONNECT_TIMEOUT_MS = 20_000;

async function readPem(what: string, path: string, uri: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new VirtqError('NO_CONNECT', `cannot read the client ${what} ${path} for ${uri}: ${(err as Error).message} (set ?pkipath=DIR holding clientcert.pem, clientkey.pem and cacert.pem)`, { cause: err });
  }
}

/** Connects to `target` and completes the handshake; NO_CONNECT (or PERMISSION_DENIED when the server refuses the certificate) otherwise. */
export async function dialTls(target: RemoteTarget, opts: RpcClientOptions, connectTimeoutMs = TLS_CONNECT_TIMEOUT_MS): Promise<RpcClient> {
  const [cert, key, ca] = await Promise.all([
    readPem('certificate', target.pki.cert, target.uri), readPem('key', target.pki.key, target.uri), readPem('CA certificate', target.pki.ca, target.uri),
  ]);
  const where = `${target.host}:${target.port}`;
  return new Promise((resolve, reject) => {
    const socket = nodeTls().connect({ host: target.host, port: target.port, cert, key, ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', servername: isIp(target.host) ? '' : target.host });
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    function fail(err: NodeJS.ErrnoException): void {
      clearTimeout(timer);
      socket.destroy();
      const refused = /alert|certificate/i.test(err.message) && err.code !== 'ECONNREFUSED';
      reject(new VirtqError(refused ? 'PERMISSION_DENIED' : 'NO_CONNECT', `cannot connect to ${where} (${target.uri}): ${err.message}${refused ? ' (is the client certificate signed by the CA the server trusts, and current?)' : ` (is ${target.daemon} listening for TLS there?)`}`, { details: { address: where }, cause: err }));
    }
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      // TLS 1.3: the server checks the client's certificate after the client's handshake ends, so
      // a refusal arrives as the first read; the RpcClient reports it as the connection closing.
      resolve(new RpcClient(socket, opts, where));
    });
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
