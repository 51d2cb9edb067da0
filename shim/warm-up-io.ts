// The third part of a pool shim's rehearsal (shim/warm-up.ts): Node's own socket and stream code
// that every start runs for the first time after the hand-off (issue 15 target 1, session 14:
// bench/shim/lazy-vqd.mjs listed net's listen path, a client's connect and the streams' read and
// write paths among the functions V8 compiled after it). A server listens on an abstract unix
// socket (no file: nothing is left even by a kill -9, and no other process can know its random
// name) and is closed at once; a client's connect to it is begun and destroyed; a PassThrough
// carries one chunk. All synchronous up to the closes, whose callbacks run later; nothing is
// accepted, read or written outside this process.
import { createServer, connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { tempSuffix } from '../protocol/node-crypto.js';

/** Runs the rehearsal; throws nothing a caller must handle beyond what warmUp already catches. */
export function rehearseIo(): void {
  const path = `\0virtq-shim-warm-up-${process.pid}-${tempSuffix()}`;
  const server = createServer((socket) => socket.destroy()); // nobody is meant to connect: anyone who did is let go
  server.on('error', () => undefined);
  server.listen(path);
  const client = connect(path);
  client.on('error', () => undefined);
  client.destroy();
  server.close();
  const stream = new PassThrough();
  stream.on('data', () => undefined);
  stream.write(Buffer.from('{"rehearsal":true}\n'));
  stream.end();
  stream.read();
}
