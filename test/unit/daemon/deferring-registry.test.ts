// The framework's registry that adds Node's process metrics later (issue 15 target 4, session 13):
// whatever was deferred is in the first scrape, in either form, and is added once.
import { describe, expect, it } from 'vitest';
import { Gauge } from 'prom-client';
import { DeferringRegistry, collectProcessMetrics, serviceMetrics } from '../../../daemon/service.js';

describe('DeferringRegistry', () => {
  it('adds what was deferred at the first text scrape, once', async () => {
    const registry = new DeferringRegistry();
    let added = 0;
    registry.defer(() => { added++; new Gauge({ name: 'late_gauge', help: 'added late', registers: [registry] }).set(3); });
    expect(added).toBe(0);
    expect(await registry.metrics()).toContain('late_gauge 3');
    await registry.metrics();
    registry.settle();
    expect(added).toBe(1);
  });

  it('adds Node process metrics before a JSON scrape, or at settle()', async () => {
    const m = serviceMetrics('virtqemud', [], true, false);
    m.registry.defer(() => collectProcessMetrics(m.registry));
    const names = (await m.registry.getMetricsAsJSON()).map((f) => f.name);
    expect(names).toContain('virtq_daemon_process_cpu_seconds_total');
    const other = serviceMetrics('virtqemud', [], true, false);
    other.registry.defer(() => collectProcessMetrics(other.registry));
    other.registry.settle();
    expect(other.registry.getSingleMetric('virtq_daemon_process_cpu_seconds_total')).toBeDefined();
  });
});
