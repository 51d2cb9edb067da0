import { describe, expect, it } from 'vitest';
import { advertisedHttp, fleetSdGroups } from '../../../aggregator/cluster/fleet-sd.js';
import { parseHostEntry, type HostEntry } from '../../../protocol/cluster.js';

const entry = (host: string, metrics?: string): HostEntry => ({ host, pid: 1, socket: '/s', roSocket: '/r', since: 0, conflicts: [], ...(metrics === undefined ? {} : { metrics }) });

describe('fleet service discovery', () => {
  it('gives one target group per host advertising metrics, in host order', () => {
    expect(fleetSdGroups([entry('b', 'b.example:9100'), entry('nohttp'), entry('a', '10.0.0.1:9100')], 'dc1/virtq')).toEqual([
      { targets: ['10.0.0.1:9100'], labels: { __metrics_path__: '/metrics', host: 'a', cluster: 'dc1/virtq' } },
      { targets: ['b.example:9100'], labels: { __metrics_path__: '/metrics', host: 'b', cluster: 'dc1/virtq' } },
    ]);
    expect(fleetSdGroups([], 'p')).toEqual([]);
  });

  it('advertises the listen address, the machine name for a wildcard, brackets for IPv6', () => {
    expect(advertisedHttp('127.0.0.1', 9100, 'kvm01')).toBe('127.0.0.1:9100');
    expect(advertisedHttp('0.0.0.0', 9100, 'kvm01')).toBe('kvm01:9100');
    expect(advertisedHttp('::', 9100, 'kvm01')).toBe('kvm01:9100');
    expect(advertisedHttp('fd00::1', 9100, 'kvm01')).toBe('[fd00::1]:9100');
  });

  it('reads the metrics address of a host entry only when it is a string', () => {
    expect(parseHostEntry(JSON.stringify(entry('a', 'x:1')))?.metrics).toBe('x:1');
    expect(parseHostEntry(JSON.stringify({ ...entry('a'), metrics: 5 }))).not.toHaveProperty('metrics');
  });
});
