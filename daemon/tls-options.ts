// The remote-access options every daemon takes: `--listen-tls HOST:PORT` and the PEM files it
// serves with (by default libvirt's names under the config dir's pki/), the handshake bound, and
// the access-rules file. Parsed here, beside the common options, so each daemon gets them alike.
import { join } from 'node:path';
import { VirtqError, type Layout, type TlsFiles } from '../protocol/index.js';
import { parseHttpAddress } from './http-address.js';
import type { ParseArgsConfig } from 'node:util';

// Not imported from options.ts, which imports this file: the option table must exist first.
type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type OptionValues = Readonly<Record<string, string | boolean | undefined>>;
const stringOption = (values: OptionValues, name: string): string | undefined => (typeof values[name] === 'string' ? values[name] : undefined);

/** The option table (merged into every daemon's). */
export const REMOTE_OPTIONS = {
  'listen-tls': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'tls-ca': { type: 'string' },
  'tls-handshake-timeout-ms': { type: 'string' }, acl: { type: 'string' },
} as const satisfies OptionsConfig;

/** Their usage lines. */
export const REMOTE_USAGE = `  --listen-tls HOST:PORT  also serve the read-write API over TCP with mutual TLS 1.3 (SCHEME+tls://HOST:PORT/system)
  --tls-cert FILE     the server certificate (default CONFIG/pki/servercert.pem)
  --tls-key FILE      its key (default CONFIG/pki/serverkey.pem)
  --tls-ca FILE       the CA client certificates must chain to (default CONFIG/pki/cacert.pem)
  --tls-handshake-timeout-ms N  drop a TLS connection whose handshake takes longer (default 10000)
  --acl FILE          access rules (JSON; default CONFIG/DAEMON-acl.json when it exists)`;

/** The remote-access settings of a daemon, as given (paths resolved against the layout later). */
export interface RemoteOptions {
  listenTls: { host: string; port: number } | undefined;
  cert: string | undefined;
  key: string | undefined;
  ca: string | undefined;
  handshakeTimeoutMs: number;
  aclFile: string | undefined;
}

/** Reads the remote-access options. */
export function parseRemoteOptions(values: OptionValues): RemoteOptions {
  const listen = stringOption(values, 'listen-tls');
  let listenTls: RemoteOptions['listenTls'];
  if (listen !== undefined) {
    try {
      listenTls = parseHttpAddress(listen);
    } catch {
      throw new VirtqError('INVALID_ARG', `bad --listen-tls address "${listen}" (expected HOST:PORT)`);
    }
  }
  return {
    listenTls, cert: stringOption(values, 'tls-cert'), key: stringOption(values, 'tls-key'), ca: stringOption(values, 'tls-ca'),
    handshakeTimeoutMs: positive(stringOption(values, 'tls-handshake-timeout-ms'), 'tls-handshake-timeout-ms', 10_000),
    aclFile: stringOption(values, 'acl'),
  };
}

/** The TLS files under `layout` (libvirt's names in CONFIG/pki/), each overridden by its option. */
export function tlsFilesOf(remote: RemoteOptions, layout: Layout): TlsFiles {
  const pki = join(layout.config, 'pki');
  return { cert: remote.cert ?? join(pki, 'servercert.pem'), key: remote.key ?? join(pki, 'serverkey.pem'), ca: remote.ca ?? join(pki, 'cacert.pem') };
}

/** The access-rules file of `daemon` under `layout`, unless one was given. */
export function aclFileOf(remote: RemoteOptions, layout: Layout, daemon: string): string {
  return remote.aclFile ?? join(layout.config, `${daemon}-acl.json`);
}

function positive(value: string | undefined, flag: string, fallback: number): number {
  const n = Number(value ?? String(fallback));
  if (!Number.isInteger(n) || n < 1) throw new VirtqError('INVALID_ARG', `--${flag} must be a whole number ≥ 1`);
  return n;
}

/** The remote options when none were given. */
export const NO_REMOTE: RemoteOptions = { listenTls: undefined, cert: undefined, key: undefined, ca: undefined, handshakeTimeoutMs: 10_000, aclFile: undefined };
