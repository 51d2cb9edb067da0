// How every virtq process reaches an etcd fleet (docs/decisions/0024): the endpoints' scheme,
// the TLS material (--cluster-cacert, with --cluster-cert/--cluster-key when etcd asks for client
// certificates: --client-cert-auth) and the deadline of each unary call — a minority member
// answers nothing until quorum is back. One builder for virtqemud, the fleet view and the etcd lock
// plugin: the gRPC client's options (etcd3) and the JSON gateway's https options come from here.
import { readFileSync } from 'node:fs';
import type { IOptions } from 'etcd3';
import { VirtqError, type ErrorCode } from './errors.js';

/** TLS to etcd: the CA its server certificates are checked against, and this side's certificate (file paths). */
export interface ClusterTls {
  cacert: string;
  cert?: string;
  key?: string;
}

/** Checks a TLS option set: cert and key go together, and neither without a CA. */
export function clusterTls(cacert: string | undefined, cert: string | undefined, key: string | undefined): ClusterTls | undefined {
  if ((cert === undefined) !== (key === undefined)) throw new VirtqError('INVALID_ARG', '--cluster-cert and --cluster-key go together (the client certificate and its key)');
  if (cacert === undefined) {
    if (cert !== undefined) throw new VirtqError('INVALID_ARG', '--cluster-cert needs --cluster-cacert (the CA that signed etcd\'s server certificates)');
    return undefined;
  }
  return { cacert, ...(cert === undefined || key === undefined ? {} : { cert, key }) };
}

/** The PEM files of a TLS option set, read. */
export interface ClusterTlsPem {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Reads the PEM files of `tls`; an unreadable file is a typed `code` error naming its option. */
export function readClusterTls(tls: ClusterTls, code: ErrorCode = 'INVALID_ARG'): ClusterTlsPem {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new VirtqError(code, `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const ca = read(tls.cacert, '--cluster-cacert');
  if (tls.cert === undefined || tls.key === undefined) return { ca };
  return { ca, cert: read(tls.cert, '--cluster-cert'), key: read(tls.key, '--cluster-key') };
}

/** Where an etcd client connects, and how: what both transports (gRPC and the JSON gateway) share. */
export interface EtcdConnectOptions {
  endpoints: readonly string[];
  /** The deadline of each unary call, and of dialling. */
  callMs: number;
  tls?: ClusterTls;
  /** The error code an unreadable PEM file is reported with (INVALID_ARG for a flag, LOCK_MANAGER_UNAVAILABLE in a plugin). */
  pemErrorCode?: ErrorCode;
}

/** `http://` or `https://` and each endpoint (HOST:PORT). */
export function etcdUrls(endpoints: readonly string[], tls: ClusterTls | undefined): string[] {
  return endpoints.map((e) => `${tls === undefined ? 'http' : 'https'}://${e}`);
}

/** etcd3 (gRPC) client options: every unary call with a deadline, TLS when `tls` is given. */
export function etcdClientOptions(o: EtcdConnectOptions, extra: Pick<IOptions, 'grpcOptions'> = {}): IOptions {
  const pem = o.tls === undefined ? undefined : readClusterTls(o.tls, o.pemErrorCode);
  return {
    hosts: etcdUrls(o.endpoints, o.tls),
    dialTimeout: o.callMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.callMs }),
    ...extra,
    ...(pem === undefined ? {} : {
      credentials: { rootCertificate: pem.ca, ...(pem.cert === undefined || pem.key === undefined ? {} : { certChain: pem.cert, privateKey: pem.key }) },
    }),
  };
}
