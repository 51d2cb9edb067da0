// The URI a client uses when none is given (libvirt's uri_default), decided here and nowhere
// else: `VIRTQ_DEFAULT_URI`, else `uri_default` in the user's `$XDG_CONFIG_HOME/virtq/client.json`
// (`~/.config/virtq/client.json`), else qemu:///system for root and qemu:///session for others.
// Its own module, so the clients of the secondary daemons need not load the rest of the library.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
// Straight from its modules, not the index: the CLI's fast path bundles this file and must not
// evaluate the whole catalogue (docs/decisions/0028-cli-startup-snapshot.md).
import { VirtqError } from '../protocol/errors.js';
import { defaultUri, parseUri } from '../protocol/uri.js';

/** Where the default URI came from (`virtq uri`-style diagnostics and tests). */
export type DefaultUriSource = 'env' | 'config' | 'uid';

/** What the default URI is decided from (the real process's when absent). */
export interface DefaultUriOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

/** The per-user client configuration file: `$XDG_CONFIG_HOME/virtq/client.json`, else `$HOME/.config/virtq/client.json`; undefined without either variable. */
export function clientConfigPath(env: NodeJS.ProcessEnv): string | undefined {
  const xdg = env['XDG_CONFIG_HOME'];
  if (xdg !== undefined && xdg !== '') return join(xdg, 'virtq', 'client.json');
  const home = env['HOME'];
  return home === undefined || home === '' ? undefined : join(home, '.config', 'virtq', 'client.json');
}

/**
 * The `uri_default` of the client configuration file, or undefined when there is no file or it
 * sets none. A file that is not a JSON object, or whose `uri_default` is not a URI virtq parses,
 * is INVALID_ARG naming the file: a typo there must not silently send commands to another host.
 */
export function configuredUri(env: NodeJS.ProcessEnv): string | undefined {
  const path = clientConfigPath(env);
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new VirtqError('INVALID_ARG', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `${path} is not valid JSON (${(err as Error).message}); expected {"uri_default": "qemu:///system"}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new VirtqError('INVALID_ARG', `${path} must hold a JSON object such as {"uri_default": "qemu:///system"}`);
  }
  const uri = (parsed as Record<string, unknown>)['uri_default'];
  if (uri === undefined) return undefined;
  if (typeof uri !== 'string' || uri === '') throw new VirtqError('INVALID_ARG', `uri_default in ${path} must be a non-empty string`);
  try {
    parseUri(uri, env);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `uri_default in ${path}: ${VirtqError.from(err).message}`, { cause: err });
  }
  return uri;
}

/** The default URI and where it came from. */
export function defaultUriWithSource(opts: DefaultUriOptions = {}): { uri: string; source: DefaultUriSource } {
  const env = opts.env ?? process.env;
  const fromEnv = env['VIRTQ_DEFAULT_URI'];
  // An empty variable counts as unset, as `${VAR:-default}` does in a shell.
  if (fromEnv !== undefined && fromEnv !== '') return { uri: fromEnv, source: 'env' };
  const fromFile = configuredUri(env);
  if (fromFile !== undefined) return { uri: fromFile, source: 'config' };
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  return { uri: defaultUri({}, uid), source: 'uid' };
}

/**
 * The URI used when none is given (`-c` always wins over this): `VIRTQ_DEFAULT_URI`, else the
 * client configuration file's `uri_default`, else `qemu:///system` for root (the host's
 * virtqemud at /run/virtq) and `qemu:///session` for other users.
 */
export function resolveDefaultUri(opts: DefaultUriOptions = {}): string {
  return defaultUriWithSource(opts).uri;
}
