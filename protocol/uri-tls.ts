// Remote URIs over TLS (contract): `qemu+tls://HOST[:PORT]/system`, and `storage+tls://`,
// `secret+tls://`, `network+tls://`, `nodedev+tls://` for the other daemons. The client's
// certificate, key and CA are `clientcert.pem`, `clientkey.pem` and `cacert.pem` (libvirt's names)
// under `?pkipath=DIR`, by default the user's `~/.config/virtq/pki`. Parsing is pure.
import { isAbsolute, join } from 'node:path';
import { VirtqError } from './errors.js';
import { daemonForScheme, type DaemonName } from './services.js';

/** The PEM files a TLS client presents and trusts. */
export interface TlsClientFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A daemon on another host, over TLS. */
export interface RemoteTarget {
  kind: 'remote';
  daemon: DaemonName;
  host: string;
  port: number;
  pki: TlsClientFiles;
  /** Remote clients are read-write clients; access rules narrow what they may do. */
  readOnly: false;
  uri: string;
}

/** Each daemon's TLS port when a URI names none (libvirt's 16514 is left to libvirt). */
export const DEFAULT_TLS_PORTS: Readonly<Record<DaemonName, number>> = {
  virtqemud: 16520, virtstoraged: 16521, virtsecretd: 16522, virtnetworkd: 16523, virtnodedevd: 16524,
};

/** The client's PEM files under `dir`. */
export function clientPkiFiles(dir: string): TlsClientFiles {
  return { cert: join(dir, 'clientcert.pem'), key: join(dir, 'clientkey.pem'), ca: join(dir, 'cacert.pem') };
}

/** The default pkipath: `$XDG_CONFIG_HOME/virtq/pki` (or `~/.config/virtq/pki`). */
export function defaultPkiPath(env: NodeJS.ProcessEnv): string {
  return join(env['XDG_CONFIG_HOME'] ?? join(env['HOME'] ?? '/root', '.config'), 'virtq', 'pki');
}

/** A `SCHEME+tls:` URI's target, or undefined for any other scheme. */
export function parseTlsUri(url: URL, uri: string, env: NodeJS.ProcessEnv): RemoteTarget | undefined {
  if (!url.protocol.endsWith('+tls:')) return undefined;
  const daemon = daemonForScheme(url.protocol.slice(0, -'+tls:'.length));
  if (daemon === undefined) return undefined;
  if (url.hostname === '') throw new VirtqError('INVALID_ARG', `${uri}: a TLS URI names a host: ${url.protocol}//HOST[:PORT]/system`);
  if (url.pathname !== '/system') throw new VirtqError('INVALID_ARG', `${uri}: unknown path ${url.pathname} (a TLS URI reaches /system)`);
  for (const key of ['root', 'socket', 'mode']) {
    if (url.searchParams.has(key)) throw new VirtqError('INVALID_ARG', `${uri}: ?${key} does not apply to a remote daemon${key === 'mode' ? ' (read-only access is an access rule on the server)' : ''}`);
  }
  const pkipath = url.searchParams.get('pkipath') ?? defaultPkiPath(env);
  if (!isAbsolute(pkipath)) throw new VirtqError('INVALID_ARG', `${uri}: pkipath must be an absolute path`);
  const port = url.port === '' ? DEFAULT_TLS_PORTS[daemon] : Number(url.port);
  return { kind: 'remote', daemon, host: url.hostname.replace(/^\[|\]$/g, ''), port, pki: clientPkiFiles(pkipath), readOnly: false, uri };
}
