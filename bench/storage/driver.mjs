// The storage driver against the tools it wraps, 1 GiB volumes, medians (issue #13): thin clone
// vs `qemu-img create -b`, full clone vs cp / qemu-img convert / the driver's own chunked copy,
// upload of 1 MiB chunks from an AsyncIterable vs cp, download vs cat, and listing 200 volumes.
// Variants of one comparison run interleaved, round after round, each after an untimed cleanup
// and `sync` (this host's ext4 discards freed blocks at commit: a run must not pay for the last).
// Plain ESM over dist/lib: run `node scripts/build.mjs` first. Uploads allocate a fresh buffer
// per chunk; with glibc's default malloc each costs page faults (see the driver's notes): run
// also with MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=67108864 to compare.
// Options: --runs N (7; thin clones 4×N), --gib N (1), --dir DIR (default: under /var/tmp),
// --only GROUP (thin, full, upload, download or list).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fmt, loadavg, machineFacts, median, options, REPO, table } from '../lib/common.mjs';

const { DirPool } = await import(join(REPO, 'dist/lib/drivers/storage/dir-pool.js'));
const { openDownload, writeStream } = await import(join(REPO, 'dist/lib/drivers/storage/transfer.js'));

const opt = options();
const RUNS = opt.num('runs', 7);
const SIZE = opt.num('gib', 1) * 1024 ** 3;
const MiB = 1024 * 1024;
const dir = opt.get('dir', mkdtempSync('/var/tmp/vq-bench-storage-'));
const poolDir = join(dir, 'pool');
const out = join(poolDir, 'out');
const only = opt.get('only');
const want = (group) => only === undefined || only === group;

/** Runs a command to its end; rejects on a non-zero exit. */
function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err}`))));
  });
}
const sh = (script) => run('sh', ['-c', script]);
const rm = (p) => unlink(p).catch(() => {});

/**
 * Times each variant `runs` times, interleaved; `variants` is [label, fn, cleanup?]. Returns
 * one table row per variant with its ratio to the first (the floor).
 */
async function compare(variants, runs = RUNS) {
  const ms = variants.map(() => []);
  for (let r = 0; r < runs; r += 1) {
    for (const [i, [, fn, cleanup]] of variants.entries()) {
      await (cleanup ?? (async () => {}))();
      await run('sync', []);
      const t0 = performance.now();
      await fn(r);
      ms[i].push(performance.now() - t0);
    }
  }
  for (const [, , cleanup] of variants) await (cleanup ?? (async () => {}))();
  const p50 = ms.map((m) => median(m));
  return variants.map(([label], i) => [label, fmt(p50[i]), `${fmt(Math.min(...ms[i]))}–${fmt(Math.max(...ms[i]))}`,
    p50[i] > 100 ? fmt((SIZE / MiB) / (p50[i] / 1000), 0) : '', i === 0 ? '' : `${(p50[i] / p50[0]).toFixed(2)}×`]);
}

/** The file as fresh 1 MiB buffers, the way chunks arrive from a socket. */
async function* fileChunks(path) {
  const fh = await open(path, 'r');
  try {
    for (let pos = 0; ;) {
      const buf = Buffer.allocUnsafe(MiB);
      const { bytesRead } = await fh.read(buf, 0, MiB, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** The driver's own copy path (used for encrypted volumes): openDownload → writeStream, fsync. */
async function chunkCopy(from, to) {
  const src = await openDownload(from, 'bench');
  const fh = await open(to, 'wx', 0o600);
  try {
    await writeStream(fh, src, { maxBytes: src.totalBytes, what: 'bench' });
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function main() {
  const pool = new DirPool({ name: 'bench', type: 'dir', path: poolDir });
  await pool.build();
  const raw = await pool.create({ name: 'src.raw', format: 'raw', capacityBytes: SIZE });
  await sh(`head -c ${SIZE} /dev/urandom > ${raw.path}`);
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw.path, join(poolDir, 'src.qcow2')]);
  const q = await pool.volumeInfo('src.qcow2');
  await pool.create({ name: 'up.raw', format: 'raw', capacityBytes: SIZE });
  const drop = (name) => async () => { await pool.delete(name).catch(() => {}); };
  const rows = [];

  const coldPool = () => new DirPool({ name: 'bench', type: 'dir', path: poolDir });
  if (want('thin')) rows.push(...await compare([
    ['thin: qemu-img create -f qcow2 -b -F (floor)', () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', q.path, '-F', 'qcow2', out]), () => rm(out)],
    ['thin: driver clone (fsync file + dir)', () => pool.clone('src.qcow2', 'thin', { mode: 'thin' }), drop('thin')],
    ['thin: driver clone, new DirPool (info cache cold)', () => coldPool().clone('src.qcow2', 'thin', { mode: 'thin' }), drop('thin')],
  ], RUNS * 4));

  for (const src of want('full') ? [raw, q] : []) {
    const f = src.format;
    rows.push(...await compare([
      [`full ${f}: cp --reflink=auto (floor)`, () => run('cp', ['--reflink=auto', src.path, out]), () => rm(out)],
      [`full ${f}: cp + sync FILE`, () => sh(`cp --reflink=auto ${src.path} ${out} && sync ${out}`), () => rm(out)],
      [`full ${f}: qemu-img convert -p + sync FILE`, () => sh(`qemu-img convert -p -f ${f} -O ${f} ${src.path} ${out} >/dev/null && sync ${out}`), () => rm(out)],
      [`full ${f}: own chunked copy + fsync`, () => chunkCopy(src.path, out), () => rm(out)],
      [`full ${f}: driver clone full (= convert + fsync)`, () => pool.clone(src.name, 'full', { mode: 'full' }, { onProgress: () => {} }), drop('full')],
    ]));
  }

  if (want('upload')) rows.push(...await compare([
    ['upload: cp (floor)', () => run('cp', [raw.path, out]), () => rm(out)],
    ['upload: cp + sync FILE', () => sh(`cp ${raw.path} ${out} && sync ${out}`), () => rm(out)],
    // The same work as the driver, with coreutils: a temp copy made durable, renamed over a 1 GiB file.
    ['upload: cp to temp, sync, mv over 1 GiB file, sync dir', () => sh(`cp ${raw.path} ${out}.t && sync ${out}.t && mv ${out}.t ${out} && sync ${poolDir}`), () => sh(`rm -f ${out} && cp ${raw.path} ${out}`)],
    ['upload: driver upload, 1 MiB chunks (fsync)', () => pool.upload('up.raw', fileChunks(raw.path), { onProgress: () => {} }, { lengthBytes: SIZE })],
    // What feeding the stream costs before the driver sees a byte: part of every upload above.
    ['upload: the 1 MiB-chunk producer alone (no writes)', async () => { for await (const c of fileChunks(raw.path)) void c; }],
  ]));
  if (want('download')) rows.push(...await compare([
    ['download: cat > /dev/null (floor)', () => sh(`cat ${raw.path} > /dev/null`)],
    ['download: driver download, drained', async () => { for await (const c of await pool.download('src.raw', { onProgress: () => {} })) void c; }],
  ]));

  const lp = new DirPool({ name: 'list', type: 'dir', path: join(dir, 'list') });
  await lp.build();
  for (let i = 0; i < (want('list') ? 200 : 0); i += 1) await lp.create({ name: `v${i}.qcow2`, format: 'qcow2', capacityBytes: MiB });
  const listRows = !want('list') ? [] : await compare([
    ['list 200 qcow2 volumes: new DirPool (qemu-img info ×200)', () => new DirPool({ name: 'list', type: 'dir', path: join(dir, 'list') }).list()],
    ['list 200 qcow2 volumes: warm cache', () => lp.list()],
  ], 3);

  console.log(`# storage driver bench — ${SIZE / 1024 ** 3} GiB volumes, ${RUNS} runs (thin: ${RUNS * 4}), dir ${dir}`);
  const malloc = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_')).map(([k, v]) => `${k}=${v}`).join(' ') || 'glibc defaults';
  console.log(JSON.stringify({ ...machineFacts(), load: loadavg(), malloc }));
  console.log(table(['operation', 'median ms', 'range ms', 'MiB/s', 'vs floor'], [...rows, ...listRows]));
  const ratio = (label) => rows.find((r) => r[0].startsWith(label))?.[4];
  if (only !== undefined) return;
  console.log(`\ntargets: thin clone ≤ 1.5× qemu-img create -b: ${ratio('thin: driver clone (')}; upload ≥ 0.8× cp throughput: time ${ratio('upload: driver')} of cp's`);
}

try {
  await main();
} finally {
  if (opt.get('dir') === undefined) rmSync(dir, { recursive: true, force: true });
}
