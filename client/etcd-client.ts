// The options of an etcd3 client for a fleet (virtqemud --cluster and the fleet view alike):
// plain gRPC, or TLS when a CA is given (--cluster-cacert, with --cluster-cert/--cluster-key when
// etcd asks for client certificates: --client-cert-auth). Every unary call has a deadline: a
// minority member answers nothing until quorum is back.
import { readFileSync } from 'node:fs';
import type { IOptions } from 'etcd3';
import { VirtqError } from '../protocol/index.js';

/** TLS to etcd: the CA its server certificates are checked against, and this side's certificate. */
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

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** etcd3 client options for `endpoints` (HOST:PORT), with TLS when `tls` is given. */
export function etcdClientOptions(endpoints: readonly string[], callMs: number, tls: ClusterTls | undefined, extra: Pick<IOptions, 'grpcOptions'> = {}): IOptions {
  return {
    hosts: endpoints.map((e) => `${tls === undefined ? 'http' : 'https'}://${e}`),
    dialTimeout: callMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callMs }),
    ...extra,
    ...(tls === undefined ? {} : {
      credentials: {
        rootCertificate: readPem(tls.cacert, '--cluster-cacert'),
        ...(tls.cert === undefined || tls.key === undefined ? {} : { certChain: readPem(tls.cert, '--cluster-cert'), privateKey: readPem(tls.key, '--cluster-key') }),
      },
    }),
  };
}
