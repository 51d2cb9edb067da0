import { describe, expect, it } from 'vitest';
import parse from 'parse-prometheus-text-format';
import { renderExposition } from '../../../daemon/prom-text.js';

describe('renderExposition', () => {
  it('merges a family exported by several registries under one HELP and TYPE', () => {
    const fam = (domain: string, value: number) => [{ name: 'virtq_domain_vcpus', help: 'vCPUs', type: 'gauge', values: [{ labels: { domain }, value }] }];
    const text = renderExposition([fam('a', 1), fam('b', 2)]);
    expect(text.match(/# TYPE virtq_domain_vcpus/g)).toHaveLength(1);
    const parsed = parse(text);
    expect(parsed).toHaveLength(1);
    expect(parsed[0]?.metrics.map((m) => [m.labels?.['domain'], m.value])).toEqual([['a', '1'], ['b', '2']]);
  });

  it('escapes label values and help text so hostile names cannot break the format', () => {
    const text = renderExposition([[{ name: 'x', help: 'line\nbreak \\ here', type: 'gauge', values: [{ labels: { domain: 'a"b\\c\nd' }, value: Infinity }] }]]);
    expect(text).toContain('x{domain="a\\"b\\\\c\\nd"} +Inf');
    expect(text).toContain('# HELP x line\\nbreak \\\\ here');
    expect(parse(text)[0]?.metrics[0]?.labels?.['domain']).toBe('a"b\\c\nd');
  });

  it('renders histogram samples under their own metric names', () => {
    const text = renderExposition([[{ name: 'h', help: 'h', type: 'histogram', values: [
      { labels: { le: 0.1 }, value: 1, metricName: 'h_bucket' }, { labels: { le: '+Inf' }, value: 2, metricName: 'h_bucket' },
      { labels: {}, value: 0.3, metricName: 'h_sum' }, { labels: {}, value: 2, metricName: 'h_count' },
    ] }]]);
    expect(parse(text)[0]).toMatchObject({ name: 'h', type: 'HISTOGRAM', metrics: [{ buckets: { '0.1': '1', '+Inf': '2' }, count: '2', sum: '0.3' }] });
  });
});
