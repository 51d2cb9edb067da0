// A daemon's remote access, opened once its unix sockets serve: the TLS listener when
// `--listen-tls` was given, and the access rules every socket is checked against.
import type { Layout } from '../protocol/index.js';
import type { CommonOptions } from './options.js';
import type { DaemonService } from './service.js';
import { NO_REMOTE, aclFileOf, tlsFilesOf } from './tls-options.js';

/** Puts the daemon's access rules in force (its `--acl` file, or CONFIG/DAEMON-acl.json when it exists). */
export async function loadAccess(service: DaemonService, common: CommonOptions, layout: Layout, daemon: string): Promise<void> {
  await service.loadAccessRules(aclFileOf(common.remote ?? NO_REMOTE, layout, daemon));
}

/** Opens the TLS listener if configured; resolves with its port. */
export async function openRemote(service: DaemonService, common: CommonOptions, layout: Layout): Promise<number | undefined> {
  const remote = common.remote ?? NO_REMOTE;
  if (remote.listenTls === undefined) return undefined;
  return service.listenTls(remote.listenTls.host, remote.listenTls.port, tlsFilesOf(remote, layout), remote.handshakeTimeoutMs);
}
