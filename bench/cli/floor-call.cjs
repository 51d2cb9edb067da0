// The floor of `virtq list` / `dominfo` (bench/cli/run.mjs): node connects to a unix socket
// (argv[2]), writes one ready-made request frame (hex, argv[3]) and prints the reply's bytes as
// they are — no CBOR, no URI rules, no rendering.
const net = require('node:net');

const socket = net.connect(process.argv[2]);
socket.write(Buffer.from(process.argv[3], 'hex'));
let got = Buffer.alloc(0);
socket.on('data', (d) => {
  got = Buffer.concat([got, d]);
  if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
    process.stdout.write(got.subarray(4));
    socket.destroy();
  }
});
