// `virtq admin config-get [KEY]`, `config-set KEY VALUE`, `tls-reload` and `config-reload`:
// positional keys and values, printed as `key = value` lines (JSON with --json).
import type { CallAdapter } from './command.js';

const show = (values: Record<string, unknown>): string => Object.entries(values).map(([k, v]) => `${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}\n`).join('');

/** The adapters of the configuration commands, by procedure. */
export const configAdapters: Readonly<Record<'getConfig' | 'setConfig' | 'reloadTls' | 'reloadConfig', CallAdapter>> = {
  getConfig: {
    arguments: [{ name: 'key', field: 'key', description: 'a setting, e.g. log.filters or acl.file (default: all of them)', required: false }],
    render: (result) => show((result as { values: Record<string, unknown> }).values),
  },
  setConfig: {
    arguments: [
      { name: 'key', field: 'key', description: 'the setting, e.g. limits.maxClients', required: true },
      { name: 'value', field: 'value', description: 'its new value', required: true },
    ],
    render: (result) => { const r = result as { key: string; value: unknown }; return show({ [r.key]: r.value }); },
  },
  reloadTls: { render: (result) => { const r = result as { cert: string; key: string; ca: string }; return `TLS certificates reloaded (${r.cert}, ${r.key}, CA ${r.ca})\n`; } },
  reloadConfig: { render: (result) => { const r = result as { file: string; rules: number }; return `${r.rules} access rule(s) in force from ${r.file}\n`; } },
};
