// Reads every key under a prefix of etcd in pages: one reply must stay under gRPC's 4 MiB receive
// limit, which a single range over a large fleet's claims would pass (docs/decisions/0025).
import type { Etcd3 } from 'etcd3';

/** The key just past every key starting with `prefix` (etcd's range end for a prefix). */
export function prefixEnd(prefix: Buffer | string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Every key under `prefix` with its value (UTF-8), in key order, `page` keys per request. */
export async function rangeAll(client: Etcd3, prefix: string, page = 1000): Promise<Array<[string, string]>> {
  const end = prefixEnd(prefix);
  const out: Array<[string, string]> = [];
  let from: Buffer = Buffer.from(prefix);
  for (;;) {
    const res = await client.getAll().inRange({ start: from, end }).limit(page).exec();
    for (const kv of res.kvs) out.push([kv.key.toString(), kv.value.toString()]);
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) return out;
    // The next page starts just after the last key read.
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
}
