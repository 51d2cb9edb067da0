// Read-only etcd for the fleet view and fleet routing: KV.Range as one gRPC call over node:http2,
// its protobuf read by hand (etcd-range-wire.ts). Not the etcd3 library: loading it parses etcd's
// .proto files and loads gRPC at run time (~0.4 s of a `virtq fleet` process), and its decoding of
// a 10,000-claim reply costs ~75 ms of CPU; etcd's JSON gateway was measured too and makes etcd
// itself slower (docs/decisions/0024, "Reading the fleet"). Writes stay on etcd3: this file never
// changes etcd.
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { VirtqError, type Clock } from '../protocol/index.js';
import { readClusterTls, type ClusterTlsPem, type EtcdConnectOptions } from '../protocol/etcd-options.js';
import { prefixEnd } from './etcd-range.js';
import { decodeRangeReply, encodeRangeRequest, type RangeReply, type RangeRequest } from './etcd-range-wire.js';

/** One key and its value, as UTF-8. */
export type EtcdPair = [key: string, value: string];

/**
 * A read-only client of one fleet's etcd. Each call goes to one member and, when that member
 * fails or does not answer within its share of `callMs`, to the next: the whole call stays within
 * `callMs`. One HTTP/2 session per member is kept until `close()`.
 */
export class EtcdReader {
  readonly #o: EtcdConnectOptions;
  readonly #clock: Clock;
  readonly #tls: ClusterTlsPem | undefined;
  readonly #sessions = new Map<string, ClientHttp2Session>();
  #next = 0;

  constructor(o: EtcdConnectOptions, clock: Clock) {
    this.#o = o;
    this.#clock = clock;
    this.#tls = o.tls === undefined ? undefined : readClusterTls(o.tls, o.pemErrorCode);
  }

  /** Every key under `prefix` with its value, in key order, `page` keys per request. */
  async rangePrefix(prefix: string, page = 10_000): Promise<EtcdPair[]> {
    const start = Buffer.from(prefix);
    const rangeEnd = prefixEnd(start);
    const out: EtcdPair[] = [];
    let key = start;
    for (;;) {
      const res = await this.#range({ key, rangeEnd, limit: page });
      for (const kv of res.kvs) out.push([kv.key.toString(), kv.value.toString()]);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) return out;
      // The next page starts just after the last key read.
      key = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  /** The value of `key` (UTF-8), or null when there is none. */
  async get(key: string): Promise<string | null> {
    const kv = (await this.#range({ key: Buffer.from(key), limit: 1 })).kvs[0];
    return kv === undefined ? null : kv.value.toString();
  }

  /** Closes every session. */
  close(): void {
    for (const s of this.#sessions.values()) s.destroy();
    this.#sessions.clear();
  }

  async #range(req: RangeRequest): Promise<RangeReply> {
    const { endpoints, callMs } = this.#o;
    const body = encodeRangeRequest(req);
    const deadline = this.#clock.monotonic() + callMs;
    const errors: string[] = [];
    const first = this.#next;
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[(first + i) % endpoints.length] as string;
      // The time left is shared among the members not yet asked: a silent one cannot use it all.
      const share = Math.max(1, Math.floor((deadline - this.#clock.monotonic()) / (endpoints.length - i)));
      try {
        const reply = decodeRangeReply(await this.#unary(endpoint, '/etcdserverpb.KV/Range', body, share));
        this.#next = (first + i) % endpoints.length;
        return reply;
      } catch (err) {
        // node:http2 wraps a failed connect ("the pending stream has been canceled"): the cause is what to tell.
        const why = err instanceof Error && err.cause instanceof Error ? err.cause : err;
        errors.push(`${endpoint}: ${why instanceof Error ? why.message : String(why)}`);
      }
    }
    this.#next = (first + 1) % endpoints.length;
    throw new VirtqError('CLUSTER_UNAVAILABLE', errors.join('; '));
  }

  #session(endpoint: string): ClientHttp2Session {
    const open = this.#sessions.get(endpoint);
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const tls = this.#tls;
    const session = connect(`${tls === undefined ? 'http' : 'https'}://${endpoint}`, tls === undefined ? {} : {
      ca: tls.ca, ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
    });
    // Its streams report the same failure; an 'error' without a listener would end the process.
    session.on('error', () => undefined);
    session.on('close', () => {
      if (this.#sessions.get(endpoint) === session) this.#sessions.delete(endpoint);
    });
    this.#sessions.set(endpoint, session);
    return session;
  }

  /** One unary gRPC call: the request message framed (flag 0, length), the reply's one message. */
  #unary(endpoint: string, path: string, message: Buffer, timeoutMs: number): Promise<Buffer> {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    return new Promise((resolve, reject) => {
      const session = this.#session(endpoint);
      const stream = session.request({
        ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': `${timeoutMs}m`,
      });
      const chunks: Buffer[] = [];
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      const timer = this.#clock.setTimeout(() => {
        // A member that does not answer in time is not asked again on this session.
        session.destroy();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      stream.on('response', (h) => { headers = h; });
      stream.on('trailers', (t) => { trailers = t; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => {
        timer.dispose();
        reject(err);
      });
      stream.on('close', () => {
        timer.dispose();
        const failed = grpcFailure(headers, trailers, stream.rstCode);
        if (failed !== undefined) {
          reject(new Error(failed));
          return;
        }
        const data = Buffer.concat(chunks);
        const length = data.length >= 5 ? data.readUInt32BE(1) : -1;
        if (length < 0 || data[0] !== 0 || data.length < 5 + length) reject(new Error(`a gRPC reply of ${data.length} bytes that is not one uncompressed message`));
        else resolve(data.subarray(5, 5 + length));
      });
      stream.end(frame);
    });
  }
}

/** Why a finished gRPC call failed (HTTP status, grpc-status and its message), or undefined when it did not. */
function grpcFailure(headers: IncomingHttpHeaders, trailers: IncomingHttpHeaders, rstCode: number): string | undefined {
  const httpStatus = headers[':status'] as unknown;
  if (httpStatus !== 200) return `HTTP status ${String(httpStatus ?? 'none')}${rstCode === constants.NGHTTP2_NO_ERROR ? '' : ` (stream reset, code ${rstCode})`}`;
  const status = trailers['grpc-status'] ?? headers['grpc-status'];
  if (status === '0') return undefined;
  const message = trailers['grpc-message'] ?? headers['grpc-message'];
  return `gRPC status ${String(status ?? 'none')}${typeof message === 'string' ? `: ${decodeURIComponent(message)}` : ''}`;
}
