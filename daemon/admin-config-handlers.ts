// The generic runtime configuration of every daemon (`virtq admin config-get/config-set`) and
// the reloads (`tls-reload`, `config-reload`): one table of keys, each with how to read it and
// how to change it. A change that fails (bad files, bad rules) leaves the old setting in force.
import { VirtqError, adminProgram, type Handlers, type RpcServer, type TlsListener } from '../protocol/index.js';
import type { Logs } from './log-filters.js';
import type { AclGuard } from './acl/acl-guard.js';

/** What the configuration handlers reach. */
export interface ConfigSurface {
  server: RpcServer;
  logs: Logs;
  tls(): TlsListener | undefined;
  acl(): AclGuard | undefined;
}

interface Key {
  get(s: ConfigSurface): unknown;
  set(s: ConfigSurface, value: string): Promise<void> | void;
}

function limit(name: 'maxClients' | 'maxInflightPerClient' | 'workerConcurrency'): Key {
  return {
    get: (s) => s.server.limits[name],
    set: (s, value) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new VirtqError('INVALID_ARG', `limits.${name} must be a whole number ≥ 1, not "${value}"`);
      s.server.limits[name] = n;
    },
  };
}

function tlsFile(which: 'cert' | 'key' | 'ca'): Key {
  return {
    get: (s) => s.tls()?.paths[which] ?? null,
    set: async (s, value) => {
      const tls = s.tls();
      if (tls === undefined) throw new VirtqError('OPERATION_INVALID', 'this daemon does not listen for TLS (start it with --listen-tls HOST:PORT)');
      await tls.reload({ ...tls.paths, [which]: value });
    },
  };
}

const KEYS: Readonly<Record<string, Key>> = {
  'log.filters': { get: (s) => s.logs.filtersText, set: (s, v) => s.logs.setFilters(v) },
  'log.outputs': { get: (s) => s.logs.outputsText, set: (s, v) => s.logs.setOutputs(v) },
  'limits.maxClients': limit('maxClients'),
  'limits.maxInflightPerClient': limit('maxInflightPerClient'),
  'limits.workerConcurrency': limit('workerConcurrency'),
  'tls.cert': tlsFile('cert'),
  'tls.key': tlsFile('key'),
  'tls.ca': tlsFile('ca'),
  'acl.file': {
    get: (s) => s.acl()?.file ?? null,
    set: async (s, v) => { await guard(s).load(v); },
  },
};

/** The keys config-get and config-set know. */
export const CONFIG_KEYS = Object.keys(KEYS);

function key(name: string): Key {
  const k = Object.hasOwn(KEYS, name) ? KEYS[name] : undefined;
  if (k === undefined) throw new VirtqError('INVALID_ARG', `unknown configuration key "${name}"; known keys: ${CONFIG_KEYS.join(', ')}`, { details: { known: CONFIG_KEYS } });
  return k;
}

function guard(s: ConfigSurface): AclGuard {
  const g = s.acl();
  if (g === undefined) throw new VirtqError('OPERATION_INVALID', 'access rules are not set up on this daemon');
  return g;
}

/** The admin handlers for configuration and reloads. */
export function adminConfigHandlers(s: ConfigSurface): { program: typeof adminProgram; handlers: Handlers<typeof adminProgram> } {
  return {
    program: adminProgram,
    handlers: {
      getConfig: ({ key: name }) => ({
        values: name === undefined ? Object.fromEntries(CONFIG_KEYS.map((k) => [k, key(k).get(s)])) : { [name]: key(name).get(s) },
      }),
      setConfig: async ({ key: name, value }) => {
        const k = key(name);
        await k.set(s, value);
        return { key: name, value: k.get(s) };
      },
      reloadTls: async () => {
        const tls = s.tls();
        if (tls === undefined) throw new VirtqError('OPERATION_INVALID', 'this daemon does not listen for TLS (start it with --listen-tls HOST:PORT)');
        return tls.reload();
      },
      reloadConfig: () => guard(s).load(),
    },
  };
}
