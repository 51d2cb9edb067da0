// The shared QMP socket's allow-list decisions and its input splitter (pure logic; the socket
// itself is tested on real QEMU in test/integration/qmp-proxy*.test.ts).
import { describe, expect, it } from 'vitest';
import { classify, isShimOwnedCommand } from '../../../shim/qmp-proxy/policy.js';
import { JsonStreamSplitter, PieceTooLarge } from '../../../shim/qmp-proxy/json-stream.js';
import { isVirtqOwnedId } from '../../../drivers/hypervisor/qemu/owned-ids.js';
import { effectiveAllow } from '../../../shim/qmp-proxy/config.js';
import { parseAllowList } from '../../../daemon/qmp-proxy-options.js';

const allow = new Set(['device_add', 'device_del', 'object-del', 'quit', 'qom-get', 'migrate']);

describe('shared QMP socket policy', () => {
  it('passes query-* always, listed changes only, and never the shim\'s own commands even when listed', () => {
    expect(classify('query-status', undefined, new Set())).toEqual({ kind: 'read' });
    expect(classify('device_add', { driver: 'virtio-rng-pci', id: 'mine' }, allow)).toEqual({ kind: 'write' });
    expect(classify('device_add', { driver: 'virtio-rng-pci' }, new Set())).toMatchObject({ kind: 'refused', desc: expect.stringContaining('allow-list') });
    for (const name of ['quit', 'stop', 'cont', 'system_reset', 'system_powerdown', 'migrate', 'migrate-set-parameters', 'migrate_cancel', 'human-monitor-command', 'getfd', 'add-fd', 'blockdev-del', 'transaction']) {
      expect(classify(name, {}, allow)).toMatchObject({ kind: 'refused', desc: expect.stringContaining('reserved') });
      expect(isShimOwnedCommand(name)).toBe(true);
    }
  });

  it('refuses adding or removing what virtq made, by id or QOM path', () => {
    for (const id of ['disk-vda', 'proto-vdb', 'fmt-vda', 'sec-vda', 'rp-nic0', 'nic0', 'net1', 'nic-525400123456', 'mon0', 'ser0', '/machine/peripheral/disk-vda']) {
      expect(isVirtqOwnedId(id)).toBe(true);
      expect(classify('device_del', { id }, allow)).toMatchObject({ kind: 'refused', desc: expect.stringContaining('managed by virtq') });
    }
    expect(classify('object-del', { id: 'sec-vda' }, allow)).toMatchObject({ kind: 'refused' });
    expect(classify('device_add', { driver: 'virtio-blk-pci', id: 'disk-vdz' }, allow)).toMatchObject({ kind: 'refused' });
    expect(classify('qom-get', { path: '/objects/sec-vda', property: 'data' }, allow)).toMatchObject({ kind: 'refused' });
    for (const id of ['tool-rng', 'diskette', 'network', 'nic']) expect(isVirtqOwnedId(id)).toBe(false);
    expect(classify('device_del', { id: 'tool-rng' }, allow)).toEqual({ kind: 'write' });
  });

  it('is off when the host or the VM says so; allow-lists add up; bad names are refused', () => {
    expect(effectiveAllow({ enabled: false, allow: [] }, undefined)).toBeUndefined();
    expect(effectiveAllow({ enabled: true, allow: [] }, { enabled: false })).toBeUndefined();
    expect([...(effectiveAllow({ enabled: true, allow: ['a'] }, { allow: ['b'] }) ?? [])]).toEqual(['a', 'b']);
    expect(parseAllowList(' device_add, chardev-add ,')).toEqual(['device_add', 'chardev-add']);
    expect(() => parseAllowList('ok,bad name')).toThrow(/"bad name" is not a QMP command name/);
  });
});

describe('QMP input splitter', () => {
  const split = (chunks: string[], maxBytes = 1024) => {
    const s = new JsonStreamSplitter({ maxBytes, maxDepth: 8 });
    return chunks.flatMap((c) => s.push(Buffer.from(c)));
  };

  it('splits by structure across chunks, with or without newlines, strings and escapes included', () => {
    expect(split(['{"execute":"a"}{"exe', 'cute":"b","arguments":{"s":"}\\"{"}}\n  [1]'])).toEqual([
      { kind: 'json', text: '{"execute":"a"}' },
      { kind: 'json', text: '{"execute":"b","arguments":{"s":"}\\"{"}}' },
      { kind: 'json', text: '[1]' },
    ]);
  });

  it('reports bytes that cannot start a command up to the end of the line or the next object', () => {
    expect(split(['hello\n', 'x{"a":1}'])).toEqual([{ kind: 'garbage', text: 'hello' }, { kind: 'garbage', text: 'x' }, { kind: 'json', text: '{"a":1}' }]);
  });

  it('survives random bytes: only ever pieces, or its own size error', () => {
    const alphabet = Buffer.from('{}[]"\\ \n\rax:,1\u00ff');
    let seed = 7;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let round = 0; round < 300; round++) {
      const s = new JsonStreamSplitter({ maxBytes: 4096, maxDepth: 16 });
      try {
        for (let c = 0; c < 8; c++) {
          const chunk = Buffer.from(Array.from({ length: rand(700) }, () => alphabet[rand(alphabet.length)] as number));
          for (const piece of s.push(chunk)) {
            if (piece.kind === 'json') expect(piece.text[0] === '{' || piece.text[0] === '[').toBe(true);
          }
        }
      } catch (err) {
        expect(err).toBeInstanceOf(PieceTooLarge);
      }
    }
  });

  it('refuses input past its size or nesting bound', () => {
    expect(() => split([`{"a":"${'x'.repeat(600)}`, `${'x'.repeat(600)}"}`])).toThrow(PieceTooLarge);
    expect(() => split(['['.repeat(9)])).toThrow(/nesting/);
    expect(() => split(['x'.repeat(2000)])).toThrow(PieceTooLarge);
  });
});
