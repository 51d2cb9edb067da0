// virtsecretd's own metrics, beside the framework's process and RPC ones: how many secrets it
// holds and how often values are read. Never a value, a UUID or a usage as a label.
import { Counter, Gauge, type Registry } from 'prom-client';
import { metricCatalogue as m } from '../daemon/metrics-catalogue.js';
import type { SecretDriver } from '../drivers/secret/types.js';

/** The secret daemon's metrics on `registry`. */
export class SecretMetrics {
  private readonly reads: Counter;

  constructor(registry: Registry, store: SecretDriver) {
    new Gauge({ name: m.secrets.name, help: m.secrets.help, labelNames: ['ephemeral'], registers: [registry], collect() {
      const all = store.list();
      this.set({ ephemeral: 'true' }, all.filter((s) => s.ephemeral).length);
      this.set({ ephemeral: 'false' }, all.filter((s) => !s.ephemeral).length);
    } });
    this.reads = new Counter({ name: m.secretValueReads.name, help: m.secretValueReads.help, labelNames: ['procedure', 'code'], registers: [registry] });
  }

  /** Counts one value read (or refusal). */
  valueRead(procedure: 'getValue' | 'useValue', code: 'OK' | 'PERMISSION_DENIED'): void {
    this.reads.inc({ procedure, code });
  }
}
