#!/usr/bin/env node
// Shapes of a durable sparse raw create, in-process, interleaved (issue #13, session 13): the disk
// cache flushes each completes (/sys/dev/block/MAJ:MIN/stat field 15: load-proof while nobody else
// fsyncs much) and its time (direction only on a shared machine).
//   libvirt         open O_EXCL, ftruncate, fsync (what libvirt's createRawFile does)
//   ours_now        main's: temp, ftruncate, record line, link, unlink temp, fsync DIR ∥ fdatasync log
//   ours_norecord   the same without the record
//   link_filefsync  this branch's: temp, ftruncate, link, unlink temp, fsync of the file
//   dir_and_file    fsync of the file ∥ fsync of the directory (do two concurrent fsyncs share a flush?)
//   env -u NODE_EXTRA_CA_CERTS nice -n 5 node bench/storage/flush-shapes.mjs [rounds] [dir]
import fs from 'node:fs';
import { promisify } from 'node:util';
const fsyncP = promisify(fs.fsync), fdatasyncP = promisify(fs.fdatasync);
const dir = fs.mkdtempSync(`${process.argv[3] ?? '/var/tmp'}/vqfs-`);
const log = fs.openSync(`${dir}/log`, 'a');
const SIZE = 1 << 30;
const devStat = (() => { const { dev } = fs.statSync(dir); const id = `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`; return fs.existsSync(`/sys/dev/block/${id}/partition`) ? `/sys/dev/block/${id}/../stat` : `/sys/dev/block/${id}/stat`; })();
const stat = () => fs.readFileSync(devStat, 'utf8').trim().split(/\s+/).map(Number);
let n = 0;
const fsyncPath = async (p) => { const fd = fs.openSync(p, 'r'); try { await fsyncP(fd); } finally { fs.closeSync(fd); } };
const shapes = {
  libvirt: async (name) => { const fd = fs.openSync(`${dir}/${name}`, 'wx', 0o600); fs.ftruncateSync(fd, SIZE); await fsyncP(fd); fs.closeSync(fd); },
  ours_now: async (name) => {
    const t = `${dir}/.t${n++}`; const fd = fs.openSync(t, 'wx', 0o600); fs.ftruncateSync(fd, SIZE); fs.closeSync(fd);
    fs.writeSync(log, `{"k":"p/${name}","r":{"format":"raw"}}\n`);
    fs.linkSync(t, `${dir}/${name}`); fs.unlinkSync(t);
    await Promise.all([fsyncPath(dir), new Promise((r) => setImmediate(r)).then(() => fdatasyncP(log))]);
  },
  ours_norecord: async (name) => {
    const t = `${dir}/.t${n++}`; const fd = fs.openSync(t, 'wx', 0o600); fs.ftruncateSync(fd, SIZE); fs.closeSync(fd);
    fs.linkSync(t, `${dir}/${name}`); fs.unlinkSync(t); await fsyncPath(dir);
  },
  link_filefsync: async (name) => {
    const t = `${dir}/.t${n++}`; const fd = fs.openSync(t, 'wx', 0o600); fs.ftruncateSync(fd, SIZE);
    fs.linkSync(t, `${dir}/${name}`); fs.unlinkSync(t); await fsyncP(fd); fs.closeSync(fd);
  },
  dir_and_file: async (name) => {
    const t = `${dir}/.t${n++}`; const fd = fs.openSync(t, 'wx', 0o600); fs.ftruncateSync(fd, SIZE);
    fs.linkSync(t, `${dir}/${name}`); fs.unlinkSync(t); await Promise.all([fsyncP(fd), fsyncPath(dir)]); fs.closeSync(fd);
  },
};
const R = Number(process.argv[2] ?? 20);
const res = Object.fromEntries(Object.keys(shapes).map((k) => [k, { ms: [], fl: 0, wr: 0 }]));
for (let r = 0; r < R; r++) for (const [k, f] of Object.entries(shapes)) {
  const name = `v${r}-${k}`;
  const a = stat(); const t0 = performance.now();
  await f(name);
  const t1 = performance.now(); const b = stat();
  res[k].ms.push(t1 - t0); res[k].fl += b[15] - a[15]; res[k].wr += b[4] - a[4];
  fs.unlinkSync(`${dir}/${name}`);
  await fsyncPath(dir);
  await new Promise((r) => setTimeout(r, 20));
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };
console.log(`${R} rounds, load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}, disk stat ${devStat}`);
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(16), 'p50 ms', q(v.ms, 0.5).toFixed(2), 'p90 ms', q(v.ms, 0.9).toFixed(2), 'flushes/op', (v.fl / R).toFixed(2), 'writes/op (others\' included)', (v.wr / R).toFixed(1));
fs.rmSync(dir, { recursive: true });
