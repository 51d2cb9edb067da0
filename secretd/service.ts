// virtsecretd as a daemon of the framework: the secret store under the daemon's layout (values
// in lib/secrets, the host key in etc/secrets.key) and the `secret` program's handlers.
import { secretProgram } from '../protocol/index.js';
import { served, type ServiceDefinition } from '../daemon/run-service.js';
import { LineLogHub } from '../daemon/line-log.js';
import { SecretStore, secretStorePaths } from '../drivers/secret/secret-store.js';
import { secretHandlers } from './handlers.js';
import { SecretMetrics } from './metrics.js';

/** virtsecretd, defined for the framework. */
export function secretdService(version: string): ServiceDefinition<Record<string, never>> {
  return {
    daemon: 'virtsecretd',
    version,
    makeLogs: (opts) => new LineLogHub(opts),
    summary: `Keeps secrets (disk passphrases, keys): values encrypted at rest with a host key, never sent to
read-only clients, never logged; ephemeral secrets live in memory only.`,
    parseExtra: () => ({}),
    build: async ({ layout, logs, service }) => {
      const log = logs.module('secret');
      const store = new SecretStore(secretStorePaths(layout));
      const report = await store.open();
      for (const p of report.problems) log.warn({ reason: p.reason, file: p.file, uuid: p.uuid, msgId: 'SECRET_FILE_PROBLEM' }, p.message);
      log.info({ loaded: report.loaded, keyCreated: report.keyCreated, msgId: 'SECRETS_LOADED' }, 'secrets loaded');
      const metrics = new SecretMetrics(service.metrics, store);
      return {
        served: [served(secretProgram, secretHandlers(store, log, metrics))],
        info: () => ({ secrets: store.list().length }),
        close: async () => store.close(),
      };
    },
  };
}
