#!/usr/bin/env node
// The Node floor of bench/storage: what any Node daemon pays for virtstoraged's small operations,
// with no framework at all (issue #13, sessions 27 and 33). A minimal server (one unix socket, one
// text line per call and per answer) makes a file the way virtstoraged makes a raw volume (temp
// O_EXCL, ftruncate, link, unlink, fsync of the descriptor in the thread pool) and deletes one
// the way it deletes a volume (unlink, fsync of the directory in the thread pool); the helper is
// its client in a process of its own that never forks, timing each call as vqs.mjs and lvs.py
// time theirs. Beside libvirt it shows whether a gap is the framework's or Node's.
//
//   node node-min.mjs --server SOCK DIR     the server; sends 'ready' over IPC when listening
//   node node-min.mjs --helper DIR          starts the server on DIR, then one JSON command per
//                                           line on stdin, one answer per line on stdout:
//     noop                                  a line there and back; ms
//     create name bytes                     the create above; ms
//     delete name                           the delete above; ms
import { fork } from 'node:child_process';
import { close, fsync, ftruncateSync, linkSync, openSync, rmSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const [mode, ...rest] = process.argv.slice(2);

/** Serves `sock`: 'n' (noop), 'c NAME BYTES' (create), 'd NAME' (delete); answers 'ok' or 'error MESSAGE'. */
function serve(sock, dir) {
  let n = 0;
  const flushed = (c, fd) => (err) => close(fd, () => c.write(err ? `error ${err.message}\n` : 'ok\n'));
  const handle = (c, line) => {
    const [op, name, bytes] = line.split(' ');
    if (op === 'n') return void c.write('ok\n');
    if (op === 'c') {
      const tmp = join(dir, `.t${n++}`);
      const fd = openSync(tmp, 'wx', 0o600);
      ftruncateSync(fd, Number(bytes));
      linkSync(tmp, join(dir, name));
      unlinkSync(tmp);
      return void fsync(fd, flushed(c, fd));
    }
    unlinkSync(join(dir, name));
    const dfd = openSync(dir, 'r');
    fsync(dfd, flushed(c, dfd));
  };
  rmSync(sock, { force: true }); // a socket file a killed server left in this bench-owned directory
  net.createServer((c) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try { handle(c, line); } catch (err) { c.write(`error ${err.message}\n`); }
      }
    });
  }).listen(sock, () => process.send?.('ready'));
  // Ends with its starter, however that ends (the IPC channel closes), not left serving nobody.
  process.once('disconnect', () => process.exit(0));
}

/** Starts the server on `dir` and connects; `call(line)` resolves to its answer. */
export async function minimalServer(dir, sock = join(dir, '.node-min.sock')) {
  const child = fork(fileURLToPath(import.meta.url), ['--server', sock, dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve, reject) => { child.once('message', resolve); child.once('exit', (code) => reject(new Error(`node-min server exited (${code})`))); });
  const c = net.connect(sock);
  await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject); });
  const waiting = [];
  createInterface({ input: c }).on('line', (l) => waiting.shift()?.(l));
  return {
    child,
    call: (line) => new Promise((resolve, reject) => {
      waiting.push((answer) => (answer === 'ok' ? resolve() : reject(new Error(answer))));
      c.write(`${line}\n`);
    }),
    close: () => { c.destroy(); child.kill('SIGKILL'); },
  };
}

if (mode === '--server') serve(rest[0], rest[1]);
else if (mode === '--helper') {
  const srv = await minimalServer(rest[0]);
  const lines = { noop: () => 'n', create: (m) => `c ${m.name} ${m.bytes}`, delete: (m) => `d ${m.name}` };
  const answer = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
  for await (const l of createInterface({ input: process.stdin })) {
    const m = JSON.parse(l);
    if (m.op === 'quit') break;
    const line = lines[m.op]?.(m);
    if (line === undefined) { answer({ ok: false, error: `unknown op ${m.op}` }); continue; }
    try {
      const t0 = performance.now();
      await srv.call(line);
      answer({ ok: true, ms: performance.now() - t0 });
    } catch (err) {
      answer({ ok: false, error: err.message });
    }
  }
  srv.close();
  process.exit(0);
}
