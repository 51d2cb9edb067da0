// The baseline server: node:net, a 4-byte big-endian length prefix and cbor-x, nothing else.
// It decodes each complete frame and answers with a reply of the same shape and size as
// virtq's (same header fields, same result body), so both sides do the same CBOR work. Replies
// to one read go out in one write, as virtq's do.
import { createServer, type Socket } from 'node:net';
import { Encoder } from 'cbor-x';
import { args, need, serveControl } from './common.js';

const path = need(args(), 'socket');
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const result = { state: 'running', reason: 'booted' };

interface Call { prog: string; proc: string; serial: number }

function serve(socket: Socket): void {
  socket.setNoDelay?.(true);
  let buf: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let off = 0;
    // One write for all the replies to one read.
    socket.cork();
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (buf.length - off - 4 < len) break;
      const msg = cbor.decode(buf.subarray(off + 4, off + 4 + len)) as Call;
      off += 4 + len;
      const body = cbor.encode({ prog: msg.prog, proc: msg.proc, type: 'reply', serial: msg.serial, status: 'ok', body: result });
      const frame = Buffer.allocUnsafe(4 + body.length);
      frame.writeUInt32BE(body.length, 0);
      frame.set(body, 4);
      socket.write(frame);
    }
    socket.uncork();
    buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
  });
  socket.on('error', () => socket.destroy());
}

createServer(serve).listen(path, () => serveControl());
