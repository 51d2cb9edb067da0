// RpcClient's per-call deadlines (one timer for all calls) and how its call frames reach the
// socket (the first of a tick at once, the rest of the tick in one write), against a fake peer.
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RpcClient } from '../../../protocol/client.js';
import { createCodec } from '../../../protocol/codec.js';
import { VirtqError } from '../../../protocol/errors.js';
import { encodeFrame, FrameDecoder } from '../../../protocol/framing.js';
import { FakeClock } from '../../helpers/fake-clock.js';

/** The other end of the client's channel: every write the client makes (one entry per _write or _writev), and replies. */
function fakePeer() {
  const codec = createCodec();
  const decoder = new FrameDecoder();
  const writes: number[] = [];
  const serials: number[] = [];
  const took = (chunk: Buffer) => { for (const f of decoder.push(chunk)) serials.push((codec.decode(f) as { serial: number }).serial); };
  const channel = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) { writes.push(1); took(chunk); cb(); },
    writev(chunks, cb) { writes.push(chunks.length); for (const c of chunks) took(c.chunk as Buffer); cb(); },
  });
  const answer = (serial: number, body: unknown) => channel.push(encodeFrame(codec.encode({ prog: 'test', proc: 'echo', type: 'reply', serial, status: 'ok', body })));
  return { channel, writes, serials, answer };
}

/** A call's outcome so far: its value, its error, or undefined while it waits. */
function track(p: Promise<unknown>) {
  const s: { value?: unknown; error?: VirtqError } = {};
  p.then((v) => { s.value = v; }, (e: unknown) => { s.error = e as VirtqError; });
  return s;
}

describe('RpcClient calls', () => {
  it('fails a call with TIMEOUT at its deadline, not before', async () => {
    const clock = new FakeClock();
    const peer = fakePeer();
    const c = new RpcClient(peer.channel, { clock });
    const call = track(c.call('test', 'echo', {}, { timeoutMs: 1000 }));
    await clock.advance(999);
    expect(call.error).toBeUndefined();
    await clock.advance(1);
    expect(call.error?.code).toBe('TIMEOUT');
    expect(call.error?.message).toBe('test.echo did not answer within 1000 ms');
    expect(clock.pending()).toBe(0);
    c.close();
  });

  it('keeps each call to its own deadline, a shorter later one included, and never times out an answered one', async () => {
    const clock = new FakeClock();
    const peer = fakePeer();
    const c = new RpcClient(peer.channel, { clock, defaultTimeoutMs: 5000 });
    const long = track(c.call('test', 'echo', {}));
    await clock.advance(10);
    const short = track(c.call('test', 'echo', {}, { timeoutMs: 1000 }));
    const middle = track(c.call('test', 'echo', {}, { timeoutMs: 3000 }));
    const never = track(c.call('test', 'echo', {}, { timeoutMs: 0 }));
    await clock.advance(999);
    expect(short.error).toBeUndefined();
    await clock.advance(1);
    expect(short.error?.code).toBe('TIMEOUT');
    expect(middle.error).toBeUndefined();
    peer.answer(1, { n: 1 });
    await new Promise((resolve) => setImmediate(resolve)); // the stream's 'data' comes in a later tick
    await clock.advance(1999);
    expect(long.value).toEqual({ n: 1 });
    expect(middle.error).toBeUndefined();
    await clock.advance(1);
    expect(middle.error?.message).toBe('test.echo did not answer within 3000 ms');
    // The long call's deadline (5010) passes answered; the one without a deadline still waits.
    await clock.advance(100_000);
    expect(long.error).toBeUndefined();
    expect(never.error).toBeUndefined();
    expect(clock.pending()).toBe(0);
    // A call after the others runs to its own deadline.
    const later = track(c.call('test', 'echo', {}, { timeoutMs: 50 }));
    await clock.advance(50);
    expect(later.error?.code).toBe('TIMEOUT');
    c.close();
    await clock.advance(0);
    expect(never.error?.code).toBe('CONNECTION_CLOSED');
  });

  it('writes a lone call at once, and the calls that follow it in the same tick in one write', async () => {
    const peer = fakePeer();
    const c = new RpcClient(peer.channel, { clock: new FakeClock() });
    void c.call('test', 'echo', {}).catch(() => undefined);
    expect(peer.writes).toEqual([1]);
    for (let i = 0; i < 3; i++) void c.call('test', 'echo', {}).catch(() => undefined);
    expect(peer.writes).toEqual([1]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(peer.writes).toEqual([1, 3]);
    expect(peer.serials).toEqual([1, 2, 3, 4]);
    // The next tick's first call goes out at once again.
    void c.call('test', 'echo', {}).catch(() => undefined);
    expect(peer.writes).toEqual([1, 3, 1]);
    c.close();
  });
});
