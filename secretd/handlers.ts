// virtsecretd's handlers: the `secret` program over the secret driver. The access rules live
// here: a value is never sent on the read-only socket (the catalogue's ACL), nor to getValue for
// a private secret; useValue hands any value to a consumer that says who it is, and is logged.
import { VirtqError, type Handlers, type Logger, type SecretProgram } from '../protocol/index.js';
import type { SecretDriver, SecretMeta } from '../drivers/secret/types.js';
import type { SecretMetrics } from './metrics.js';

function row(meta: SecretMeta): SecretMeta {
  return { ...meta };
}

/** The secret program's handlers. */
export function secretHandlers(store: SecretDriver, log: Logger, metrics: SecretMetrics): Handlers<SecretProgram> {
  return {
    listSecrets: () => ({ secrets: store.list().map(row) }),
    getSecret: ({ uuid }) => row(store.get(uuid)),
    lookupSecretByUsage: ({ usage }) => row(store.lookupByUsage(usage)),
    defineSecret: async ({ definition }) => {
      const meta = await store.define(definition);
      log.info({ uuid: meta.uuid, usage: meta.usage, private: meta.private, ephemeral: meta.ephemeral, msgId: 'SECRET_DEFINED' }, 'secret defined');
      return row(meta);
    },
    undefineSecret: async ({ uuid }) => {
      await store.undefine(uuid);
      log.info({ uuid, msgId: 'SECRET_UNDEFINED' }, 'secret undefined');
      return {};
    },
    setValue: async ({ uuid, value }) => {
      await store.setValue(uuid, value);
      log.info({ uuid, bytes: value.length, msgId: 'SECRET_VALUE_SET' }, 'secret value set');
      return {};
    },
    getValue: ({ uuid }) => {
      const meta = store.get(uuid);
      if (meta.private) {
        metrics.valueRead('getValue', 'PERMISSION_DENIED');
        throw new VirtqError('PERMISSION_DENIED', `secret ${meta.uuid} is private: its value is never read back (it is only handed to the VM or tool that uses it)`);
      }
      const value = store.getValue(uuid);
      metrics.valueRead('getValue', 'OK');
      return { value };
    },
    useValue: ({ uuid, consumer }) => {
      const value = store.getValue(uuid);
      metrics.valueRead('useValue', 'OK');
      log.info({ uuid, consumer, msgId: 'SECRET_USED' }, 'secret value handed to its consumer');
      return { value };
    },
  };
}
