import { describe, expect, it } from 'vitest';
import { SampleHistory, type VmSample } from '../../../../aggregator/web/sample-history.js';

const sample = (name: string, cpuSeconds: number | undefined, rss: number | undefined): VmSample => ({
  name,
  families: [
    ...(cpuSeconds === undefined ? [] : [{ name: 'virtq_domain_cpu_seconds_total', help: '', type: 'counter', values: [{ labels: { domain: name }, value: cpuSeconds }] }]),
    ...(rss === undefined ? [] : [{ name: 'virtq_domain_qemu_resident_bytes', help: '', type: 'gauge', values: [{ labels: { domain: name }, value: rss }] }]),
  ],
});

describe('SampleHistory', () => {
  it('turns the CPU counter into the share of one CPU since the previous point', () => {
    const h = new SampleHistory();
    expect(h.add(1000, [sample('a', 10, 100)])).toEqual({ a: { t: 1000, cpu: null, mem: 100 } });
    expect(h.add(3000, [sample('a', 11, 120)])).toEqual({ a: { t: 3000, cpu: 0.5, mem: 120 } });
    expect(h.add(4000, [sample('a', 13, 130)])['a']?.cpu).toBe(2);
    expect(h.snapshot()['a']?.map((p) => p.t)).toEqual([1000, 3000, 4000]);
  });

  it('keeps a gap (null) where a shim did not answer, and a counter that went back gives no rate', () => {
    const h = new SampleHistory();
    h.add(1000, [sample('a', 10, 100)]);
    expect(h.add(2000, [{ name: 'a', families: undefined }])).toEqual({ a: { t: 2000, cpu: null, mem: null } });
    expect(h.add(3000, [sample('a', 12, 100)])['a']?.cpu).toBe(1);
    // A new QEMU under the same name (restarted between two refreshes) starts its counter again.
    expect(h.add(4000, [sample('a', 0.5, 100)])['a']?.cpu).toBeNull();
    expect(h.add(5000, [sample('a', 1, 100)])['a']?.cpu).toBe(0.5);
  });

  it('keeps the last points only, and forgets a VM that is no longer fetched', () => {
    const h = new SampleHistory(3);
    for (let i = 1; i <= 5; i++) h.add(i * 1000, [sample('a', i, i), sample('b', i, i)]);
    expect(h.snapshot()['a']?.map((p) => p.mem)).toEqual([3, 4, 5]);
    h.add(6000, [sample('b', 6, 6)]);
    expect(Object.keys(h.snapshot())).toEqual(['b']);
  });
});
