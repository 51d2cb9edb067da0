// QmpTransport framing and handshake: chunks are fed by hand into an unconnected socket so chunk
// boundaries are exact; connectQmp and the handshake run against the fake QMP server.
import { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { VirtqError } from '../../../../../../protocol/errors.js';
import { QmpTransport, connectQmp } from '../../../../../../drivers/hypervisor/qemu/qmp/transport.js';
import type { QmpMessage } from '../../../../../../drivers/hypervisor/qemu/qmp/transport.js';
import { FakeClock } from '../../../../../helpers/fake-clock.js';
import { FakeQmpServer, loadQmpFixture } from '../../../../../helpers/fake-qmp-server.js';

function handFed(maxLineBytes?: number): { socket: Socket; transport: QmpTransport; messages: QmpMessage[]; written: string[] } {
  const socket = new Socket();
  const written: string[] = [];
  vi.spyOn(socket, 'write').mockImplementation((chunk: unknown) => { written.push(String(chunk)); return true; });
  const transport = new QmpTransport(socket, maxLineBytes === undefined ? {} : { maxLineBytes });
  const messages: QmpMessage[] = [];
  transport.listen((m) => messages.push(m));
  return { socket, transport, messages, written };
}

const feed = (socket: Socket, text: string | Buffer): boolean => socket.emit('data', Buffer.from(text));

describe('QmpTransport', () => {
  it('delivers a message only when its line is complete', () => {
    const { socket, messages } = handFed();
    feed(socket, '{"return": {"status": "run');
    feed(socket, 'ning"}, "id": "virtq-1"}');
    expect(messages).toEqual([]);
    feed(socket, '\r\n');
    expect(messages).toEqual([{ return: { status: 'running' }, id: 'virtq-1' }]);
  });

  it('delivers every message in order when one chunk holds several lines', () => {
    const { socket, messages } = handFed();
    feed(socket, '{"event": "STOP"}\r\n{"return": {}, "id": "a"}\r\n\r\n{"event": "RESUME"}\r\n{"ret');
    expect(messages.map((m) => m['event'] ?? m['id'])).toEqual(['STOP', 'a', 'RESUME']);
    feed(socket, 'urn": 1, "id": "b"}\n');
    expect(messages[3]).toEqual({ return: 1, id: 'b' });
  });

  it('decodes a multi-byte character split across chunks', () => {
    const { socket, messages } = handFed();
    const bytes = Buffer.from('{"return": "h\u00e9\u2603"}\n', 'utf8');
    const cut = bytes.indexOf(0xe2) + 1;
    feed(socket, bytes.subarray(0, cut));
    feed(socket, bytes.subarray(cut));
    expect(messages).toEqual([{ return: 'h\u00e9\u2603' }]);
  });

  it('closes with FRAME_TOO_LARGE when a partial line outgrows the limit', async () => {
    const { socket, transport, messages } = handFed(64);
    feed(socket, `{"return": "${'x'.repeat(40)}`);
    expect(transport.isClosed).toBe(false);
    feed(socket, 'y'.repeat(40));
    expect(transport.isClosed).toBe(true);
    expect((await transport.closed).code).toBe('FRAME_TOO_LARGE');
    feed(socket, '"}\n{"return": {}}\n');
    expect(messages).toEqual([]);
  });

  it('closes with FRAME_TOO_LARGE when one chunk holds a complete over-long line', async () => {
    const { socket, transport } = handFed(16);
    feed(socket, `{"return": "${'x'.repeat(40)}"}\n`);
    expect((await transport.closed).code).toBe('FRAME_TOO_LARGE');
  });

  it('accepts a line of exactly the limit', () => {
    const line = '{"return": "abc"}';
    const { socket, transport, messages } = handFed(line.length);
    feed(socket, `${line}\n`);
    expect(transport.isClosed).toBe(false);
    expect(messages).toHaveLength(1);
  });

  it('closes with MALFORMED_FRAME when a line is not JSON', async () => {
    const { socket, transport, messages } = handFed();
    feed(socket, 'this is not json\n{"return": {}}\n');
    expect((await transport.closed).code).toBe('MALFORMED_FRAME');
    expect(messages).toEqual([]);
  });

  it('closes with MALFORMED_FRAME when a line is JSON but not an object', async () => {
    const { socket, transport } = handFed();
    feed(socket, '[1, 2]\n');
    expect((await transport.closed).code).toBe('MALFORMED_FRAME');
  });

  it('reports the close once with the first reason', async () => {
    const { socket, transport } = handFed();
    transport.close(new VirtqError('TIMEOUT', 'first'));
    transport.close(new VirtqError('INTERNAL', 'second'));
    socket.emit('close', false);
    expect((await transport.closed).message).toBe('first');
    expect(() => transport.send({ execute: 'stop' })).toThrow(expect.objectContaining({ code: 'CONNECTION_CLOSED' }) as Error);
  });

  it('writes each message as one JSON line', () => {
    const { transport, written } = handFed();
    transport.send({ execute: 'query-status', id: 'virtq-1' });
    expect(written).toEqual(['{"execute":"query-status","id":"virtq-1"}\n']);
  });

  it('negotiates capabilities after reading the greeting', async () => {
    const { fake, socket } = await FakeQmpServer.accepted();
    const transport = new QmpTransport(socket);
    const greeting = await transport.handshake(new FakeClock(), 1000);
    expect(greeting).toEqual({ version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }, capabilities: ['oob'] });
    expect(fake.received).toEqual([{ execute: 'qmp_capabilities' }]);
    transport.close();
    await fake.dispose();
  });

  it('fails the handshake with QMP_ERROR when qmp_capabilities is refused', async () => {
    const { fake, socket } = await FakeQmpServer.accepted({ capabilitiesReply: loadQmpFixture('qmp_capabilities-already-negotiated') });
    const transport = new QmpTransport(socket);
    await expect(transport.handshake(new FakeClock(), 1000)).rejects.toMatchObject({ code: 'QMP_ERROR', details: { class: 'CommandNotFound' } });
    expect(transport.isClosed).toBe(true);
    await fake.dispose();
  });

  it('fails the handshake with MALFORMED_MESSAGE when the first message is no greeting', async () => {
    const { fake, socket } = await FakeQmpServer.accepted({ greeting: { return: {} } });
    await expect(new QmpTransport(socket).handshake(new FakeClock(), 1000)).rejects.toMatchObject({ code: 'MALFORMED_MESSAGE' });
    await fake.dispose();
  });

  it('fails the handshake with CONNECTION_CLOSED when the peer hangs up first', async () => {
    const { fake, socket } = await FakeQmpServer.accepted({ greeting: null });
    const handshake = new QmpTransport(socket).handshake(new FakeClock(), 1000);
    fake.hangUp();
    await expect(handshake).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await fake.dispose();
  });
});

describe('connectQmp', () => {
  it('returns a connected socket when a server listens', async () => {
    const server = await FakeQmpServer.listening();
    const socket = await connectQmp(server.path, new FakeClock(), 1000);
    const transport = new QmpTransport(socket);
    await transport.handshake(new FakeClock(), 1000);
    transport.close();
    await (await server.fake).dispose();
    await server.dispose();
  });

  it('fails with NO_CONNECT when nothing listens at the path', async () => {
    await expect(connectQmp('/nonexistent/virtq/qmp.sock', new FakeClock(), 1000)).rejects.toMatchObject({ code: 'NO_CONNECT' });
  });
});
