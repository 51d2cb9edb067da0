// The --cluster URI and the fleet's claim values: hostile input gets INVALID_ARG, never a key.
import { describe, expect, it } from 'vitest';
import { clusterKeys, nameClaimValue, parseClaim, parseClusterUri, parseHostEntry } from '../../../protocol/cluster.js';

describe('parseClusterUri', () => {
  it('reads endpoints and a prefix', () => {
    expect(parseClusterUri('etcd://127.0.0.1:2379,127.0.0.1:22379,[::1]:2379/fleet/a')).toEqual({ endpoints: ['127.0.0.1:2379', '127.0.0.1:22379', '[::1]:2379'], prefix: 'fleet/a' });
    expect(parseClusterUri('etcd://etcd-1.example:2379/virtq/').prefix).toBe('virtq');
  });
  it.each([
    'http://127.0.0.1:2379/p', 'etcd://127.0.0.1/p', 'etcd://127.0.0.1:0/p', 'etcd://127.0.0.1:70000/p', 'etcd://127.0.0.1:2379/',
    'etcd://127.0.0.1:2379/../x', 'etcd://127.0.0.1:2379/a//b', 'etcd://127.0.0.1:2379/a b', 'etcd://127.0.0.1:2379/p?x=1',
    'etcd://u:p@127.0.0.1:2379/p', `etcd://${'a,'.repeat(20)}a:1/p`, `etcd://127.0.0.1:2379/${'x'.repeat(70)}`, 'etcd://:2379/p', '',
  ])('refuses %j with INVALID_ARG', (uri) => {
    expect(() => parseClusterUri(uri)).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
  });
});

describe('claim values', () => {
  it('round-trip, and UUIDs are keyed lower-case', () => {
    expect(parseClaim(nameClaimValue('h1', 'ABCD'))).toEqual({ host: 'h1', uuid: 'abcd' });
    expect(clusterKeys('p').uuid('ABCD')).toBe('p/uuids/abcd');
  });
  it('foreign values are not claims or host entries', () => {
    for (const v of ['', 'null', '[]', '{"host":1}', '{"host":"h"}', 'not json']) {
      expect(parseClaim(v)).toBeUndefined();
      expect(parseHostEntry(v)).toBeUndefined();
    }
  });
});
