// The baseline client: node:net, a 4-byte length prefix, cbor-x, and a Map from serial to the
// waiting promise (any Node caller awaits, so the promise is part of the baseline).
import { connect } from 'node:net';
import { Encoder } from 'cbor-x';
import { args, need, runClient } from './common.js';

const opts = args();
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const socket = connect(need(opts, 'socket'));
socket.setNoDelay(true);
const pending = new Map<number, (body: unknown) => void>();
let nextSerial = 1;
let buf: Buffer = Buffer.alloc(0);

interface Reply { serial: number; body: unknown }

socket.on('data', (chunk: Buffer) => {
  buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
  let off = 0;
  while (buf.length - off >= 4) {
    const len = buf.readUInt32BE(off);
    if (buf.length - off - 4 < len) break;
    const msg = cbor.decode(buf.subarray(off + 4, off + 4 + len)) as Reply;
    off += 4 + len;
    const resolve = pending.get(msg.serial);
    if (resolve !== undefined) {
      pending.delete(msg.serial);
      resolve(msg.body);
    }
  }
  buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
});

// Frames written in one tick go out in one write, as virtq's do.
let corked = false;
const uncork = (): void => {
  corked = false;
  socket.uncork();
};

const args1 = { name: 'web1' };
function call(): Promise<unknown> {
  const serial = nextSerial++;
  return new Promise((resolve) => {
    pending.set(serial, resolve);
    const body = cbor.encode({ prog: 'virtq', proc: 'getState', type: 'call', serial, status: 'ok', body: args1 });
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    frame.set(body, 4);
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    socket.write(frame);
  });
}

socket.once('connect', () => {
  runClient(call, opts, { impl: 'bare' }).then(() => socket.end(), (err: unknown) => { console.error(err); process.exit(1); });
});
