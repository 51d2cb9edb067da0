// A raw, misbehaving client for the hostile-input suite: it writes whatever bytes it is given to a
// daemon socket and reports what came back (the frames, decoded without trusting them) and how the
// connection ended. Also: hand-built frames and process facts read from /proc.
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createCodec } from '../../protocol/codec.js';
import { encodeFrame } from '../../protocol/framing.js';
import { isErrorCode } from '../../protocol/errors.js';

const codec = createCodec();

/** One message as a frame. */
export function frame(msg: unknown): Buffer {
  return encodeFrame(codec.encode(msg));
}

/** A call frame. */
export function call(prog: string, proc: string, body: unknown, serial = 1): Buffer {
  return frame({ prog, proc, type: 'call', serial, status: 'ok', body });
}

/** A length header announcing `length` bytes, followed by `body`. */
export function rawFrame(length: number, body: Uint8Array = new Uint8Array()): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(length >>> 0, 0);
  return Buffer.concat([head, body]);
}

/** Opens a raw connection, retrying while the listen backlog is full (EAGAIN), as a client would. */
export async function open(path: string): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(path);
        s.once('error', reject);
        s.once('connect', () => {
          s.off('error', reject);
          s.on('error', () => undefined);
          resolve(s);
        });
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt >= 200) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** What the server did with a connection. */
export interface Outcome {
  /** Every complete frame received, decoded (undefined where not decodable). */
  replies: unknown[];
  /** True when the server closed the connection before we did. */
  closedByServer: boolean;
  ms: number;
}

/**
 * Writes `bytes`, half-closes, and waits until the server closes (it must: it reads our end of
 * stream) or `timeoutMs` passes. With `keepOpen`, does not half-close and waits for the server to
 * act on its own (answer `expectReplies` frames, or drop us).
 */
export async function exchange(path: string, bytes: Uint8Array, opts: { timeoutMs?: number; keepOpen?: boolean; expectReplies?: number } = {}): Promise<Outcome> {
  const t0 = performance.now();
  const s = await open(path);
  const chunks: Buffer[] = [];
  let closedByServer = false;
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.expectReplies !== undefined && splitFrames(Buffer.concat(chunks)).length >= opts.expectReplies) resolve();
    });
    s.once('close', () => { closedByServer = true; resolve(); });
    setTimeout(resolve, opts.timeoutMs ?? 5000).unref();
  });
  s.write(bytes);
  if (opts.keepOpen !== true) s.end();
  await done;
  const ms = performance.now() - t0;
  s.destroy();
  const replies = splitFrames(Buffer.concat(chunks)).map((f) => {
    try {
      return codec.decode(f);
    } catch {
      return undefined;
    }
  });
  return { replies, closedByServer, ms };
}

/** Splits bytes into complete frame bodies (ignores a trailing partial frame). */
export function splitFrames(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (bytes.length - off >= 4) {
    const len = bytes.readUInt32BE(off);
    if (bytes.length - off - 4 < len) break;
    out.push(bytes.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

/** True when `m` is a well-formed reply: a header a client can match, an error from the catalogue. */
export function isWellFormedReply(m: unknown): boolean {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (r['type'] !== 'reply' && r['type'] !== 'stream' && r['type'] !== 'event') return false;
  if (typeof r['serial'] !== 'number' || typeof r['prog'] !== 'string' || typeof r['proc'] !== 'string') return false;
  if (r['status'] === 'ok') return true;
  if (r['status'] !== 'error') return false;
  const body = r['body'] as { code?: unknown; message?: unknown } | undefined;
  return isErrorCode(body?.code) && typeof body?.message === 'string';
}

/** The error code of a reply, if it is an error. */
export function errorCode(m: unknown): string | undefined {
  const r = m as { status?: unknown; body?: { code?: unknown } } | undefined;
  return r?.status === 'error' && typeof r.body?.code === 'string' ? r.body.code : undefined;
}

/** Resident memory of `pid` in MiB (-1 when it is gone). */
export function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
  } catch {
    return -1;
  }
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Polls `check` every 20 ms until it holds or `ms` passes; returns its last result. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
