// One server of bench/rpc/layers.mjs, in its own process so its CPU per call is its own:
//   bare   node:net, 4-byte length prefix, the call's frame echoed back unparsed
//   codec  node:net + protocol/framing.ts's FrameDecoder + codec.ts (CBOR) + parseMessage, a fixed reply
//   rpc    protocol/'s RpcServer serving the storage program, listJobs a noop (no logger, no metrics)
// Usage: node layers-server.mjs DIST LAYER SOCKET   (prints "ready" once listening)
import { createServer } from 'node:net';
import { join } from 'node:path';

const [dist, layer, path] = process.argv.slice(2);
const p = await import(join(dist, 'lib', 'protocol', 'index.js'));
if (layer === 'bare') {
  createServer((s) => {
    let held = Buffer.alloc(0);
    s.on('data', (chunk) => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      while (held.length >= 4) {
        const n = held.readUInt32BE(0);
        if (held.length < 4 + n) break;
        s.write(held.subarray(0, 4 + n));
        held = held.subarray(4 + n);
      }
    });
  }).listen(path, () => console.log('ready'));
} else if (layer === 'codec') {
  createServer((s) => {
    const dec = new p.FrameDecoder();
    const codec = p.createCodec(p.DEFAULT_CALL_LIMITS);
    s.setNoDelay(true);
    s.on('data', (chunk) => {
      for (const f of dec.push(chunk)) {
        const m = p.parseMessage(codec.decode(f));
        s.write(p.encodeFrame(codec.encode({ prog: m.prog, proc: m.proc, type: 'reply', serial: m.serial, status: 'ok', body: { jobs: [] } })));
      }
    });
  }).listen(path, () => console.log('ready'));
} else if (layer === 'rpc') {
  const server = new p.RpcServer({ daemon: 'virtstoraged', version: '0', role: 'storage', clock: p.systemClock(), log: p.silentLogger() });
  server.register({ program: p.storageProgram, handlers: { listJobs: () => ({ jobs: [] }) } });
  await server.listen(path, 'rw', 0o600);
  console.log('ready');
} else {
  throw new Error(`unknown layer ${layer}`);
}
