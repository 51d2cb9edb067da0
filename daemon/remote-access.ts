// A daemon's remote access, opened once its unix sockets serve: the TLS listener when
// `--listen-tls` was given (and, later, the access rules every socket is checked against).
import type { Layout } from '../protocol/index.js';
import type { CommonOptions } from './options.js';
import type { DaemonService } from './service.js';
import { NO_REMOTE, tlsFilesOf } from './tls-options.js';

/** Opens the TLS listener if configured; resolves with its port. */
export async function openRemote(service: DaemonService, common: CommonOptions, layout: Layout, daemon: string): Promise<number | undefined> {
  void daemon;
  const remote = common.remote ?? NO_REMOTE;
  if (remote.listenTls === undefined) return undefined;
  return service.listenTls(remote.listenTls.host, remote.listenTls.port, tlsFilesOf(remote, layout), remote.handshakeTimeoutMs);
}
