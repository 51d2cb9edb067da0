// The hand-written protobuf of etcd's KV.Range against protobufjs reading etcd's own .proto files
// (the ones the etcd3 library ships): what one writes the other reads, field for field.
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { decodeRangeReply, encodeRangeRequest } from '../../../client/etcd-range-wire.js';
import { prefixEnd } from '../../../client/etcd-range.js';

const protoDir = join(dirname(createRequire(import.meta.url).resolve('etcd3/package.json')), 'proto');
// keepCase: the field names as etcd's .proto spells them (range_end, create_revision...).
const root = new protobuf.Root().loadSync(join(protoDir, 'rpc.proto'), { keepCase: true });
const RangeRequest = root.lookupType('etcdserverpb.RangeRequest');
const RangeResponse = root.lookupType('etcdserverpb.RangeResponse');

describe('etcd-range-wire', () => {
  it('writes a RangeRequest etcd reads as key, range_end and limit', () => {
    const bytes = encodeRangeRequest({ key: Buffer.from('fleet/names/'), rangeEnd: Buffer.from('fleet/names0'), limit: 50_000 });
    const r = RangeRequest.toObject(RangeRequest.decode(bytes), { longs: Number }) as { key: Uint8Array; range_end: Uint8Array; limit: number };
    expect(Buffer.from(r.key).toString()).toBe('fleet/names/');
    expect(Buffer.from(r.range_end).toString()).toBe('fleet/names0');
    expect(r.limit).toBe(50_000);
    const one = RangeRequest.toObject(RangeRequest.decode(encodeRangeRequest({ key: Buffer.from('k') })), { longs: Number, defaults: true }) as { range_end: Uint8Array; limit: number };
    expect([one.range_end.length, one.limit]).toEqual([0, 0]);
  });

  it('reads keys, values and more of a RangeResponse, skipping the header, revisions, leases and count', () => {
    const kvs = Array.from({ length: 300 }, (_, i) => ({
      key: Buffer.from(`p/names/vm${i}`), value: Buffer.from(JSON.stringify({ host: `h${i % 7}`, uuid: `u${i}` })),
      create_revision: 2 ** 40 + i, mod_revision: 2 ** 40 + i, version: 1, lease: i % 2 === 0 ? 0 : 2 ** 50,
    }));
    kvs.push({ key: Buffer.from('p/names/empty'), value: Buffer.alloc(0), create_revision: 5, mod_revision: 5, version: 1, lease: 0 });
    const bytes = RangeResponse.encode(RangeResponse.fromObject({ header: { cluster_id: 2 ** 60, member_id: 7, revision: 2 ** 41, raft_term: 3 }, kvs, more: true, count: 12_345 })).finish();
    const reply = decodeRangeReply(Buffer.from(bytes));
    expect(reply.more).toBe(true);
    expect(reply.kvs.map((kv) => [kv.key.toString(), kv.value.toString()])).toEqual(kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
    const last = RangeResponse.encode(RangeResponse.fromObject({ header: { revision: 9 }, kvs: [], count: 0 })).finish();
    expect(decodeRangeReply(Buffer.from(last))).toEqual({ kvs: [], more: false });
  });

  it('throws on a reply cut inside a field instead of reading past it', () => {
    const bytes = Buffer.from(RangeResponse.encode(RangeResponse.fromObject({ kvs: [{ key: Buffer.from('k'), value: Buffer.from('value') }] })).finish());
    expect(() => decodeRangeReply(bytes.subarray(0, bytes.length - 2))).toThrow(/past the end/);
  });

  it('ends a prefix range just past every key of the prefix', () => {
    expect(prefixEnd(Buffer.from('a/b/')).toString()).toBe('a/b0');
    expect([...prefixEnd(Buffer.from([0x61, 0xff]))]).toEqual([0x62]);
    expect([...prefixEnd(Buffer.from([0xff, 0xff]))]).toEqual([0]);
  });
});
