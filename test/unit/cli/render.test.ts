// Human output helpers: labels from field names, aligned tables and label blocks, and the
// generic renderer's choice of form by result shape.
import { describe, expect, it } from 'vitest';
import { columnHeading, formatValue, humanize, keyValues, oneLine, renderGeneric, table } from '../../../cli/render.js';

describe('render', () => {
  it('humanizes field names with units and acronyms', () => {
    expect(humanize('memoryMiB')).toBe('Memory (MiB)');
    expect(humanize('cpuTimeSec')).toBe('CPU time (s)');
    expect(humanize('qemuPid')).toBe('QEMU pid');
    expect(humanize('uuid')).toBe('UUID');
    expect(humanize('vcpus')).toBe('vCPUs');
    expect(humanize('rssBytes')).toBe('RSS (bytes)');
    expect(columnHeading('rdBytes')).toBe('RD_BYTES');
  });

  it('formats values', () => {
    expect(formatValue(true)).toBe('yes');
    expect(formatValue(undefined)).toBe('-');
    expect(formatValue(1.23456)).toBe('1.23');
    expect(formatValue(1_700_000_000_000, 'connectedAt')).toBe('2023-11-14T22:13:20.000Z');
  });

  it('aligns table columns under a rule', () => {
    expect(table(['NAME', 'STATE'], [['web1', 'running'], ['database', 'paused']])).toBe(
      ' NAME       STATE\n' +
      '--------------------\n' +
      ' web1       running\n' +
      ' database   paused\n');
  });

  it('aligns label blocks', () => {
    expect(keyValues([['Name', 'web1'], ['Memory (MiB)', '128']])).toBe('Name:          web1\nMemory (MiB):  128\n');
  });

  it('picks a form by shape', () => {
    expect(renderGeneric({})).toBe('');
    expect(renderGeneric({ disks: [{ target: 'vda', rdBytes: 1 }] })).toBe(' TARGET   RD_BYTES\n-------------------\n vda      1\n');
    expect(renderGeneric({ daemon: 'virtq-shim', limits: { maxClients: 5 } })).toBe('Daemon:              virtq-shim\nLimits max clients:  5\n');
    expect(renderGeneric({ details: { lock: { ok: true } }, tags: ['a', 'b'] })).toBe('Details lock ok:  yes\nTags:             a, b\n');
    expect(renderGeneric({ result: { a: [{ x: 1 }] } })).toContain('"x": 1');
  });

  it('puts messages on one line', () => {
    expect(oneLine('a\n  b\nc ')).toBe('a b c');
  });
});
