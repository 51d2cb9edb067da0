#!/usr/bin/env node
// virtstoraged side by side with the floor (qemu-img, cp, rm, cat as processes) and libvirt's
// storage driver, 1 GiB volumes, one run (issue #13). Started by run.sh (which brings libvirt
// up when it is installed, and restores the host afterwards); run alone, it leaves libvirt out.
//
//   create    raw and qcow2, 1 GiB, sparse: createVolume vs qemu-img create vs pool.createXML
//   thin      qcow2 overlay of a 1 GiB qcow2: cloneVolume thin vs qemu-img create -b -F vs
//             createXML with <backingStore> (virsh vol-create-as --backing-vol)
//   full      1 GiB of random data, raw and qcow2 sources: cloneVolume vs cp, cp + sync FILE vs
//             createXMLFrom (virsh vol-clone)
//   delete    a 1 GiB volume with data, and a thin overlay: deleteVolume vs rm, rm + sync DIR vs
//             vol.delete (virsh vol-delete); each side deletes a volume it made itself
//   upload    1 GiB into an existing 1 GiB volume: StorageClient.upload from a file read in 1 MiB
//             chunks (createReadStream's fresh buffers) vs cp, vs the durable cp (temp, sync, mv,
//             sync dir) vs `virsh vol-upload`; also StorageClient.upload from two reused buffers
//             (the CLI's reads), `virtq vol-upload` as a whole process (as
//             virsh is), and the driver alone (DirPool.upload in this process: no daemon, no socket)
//   download  1 GiB volume to a file: StorageClient.download (each chunk written to the file) vs
//             cp, cat > /dev/null vs `virsh vol-download`; also `virtq vol-download` (whole
//             process: temp file, fsync, rename) and DirPool.download in this process
//
// The create raw and delete thin overlay groups also time the Node floor (node-min.mjs): the
// same file steps in a Node server with no framework, its client in a process of its own.
//
// Every group also has durable-floor rows (durable.mjs: temp, fsync, rename, fsync of the
// directory, in-process). libvirt has no temp file + rename and no directory fsync; it syncs the
// data of what it makes and of a raw copy (fsync), and `qemu-img create` flushes as it closes,
// but a qcow2 full clone is `qemu-img convert` with its default output cache ("unsafe": no flush
// after the data), so the full-clone groups also time libvirt's clone plus the fsyncs it leaves
// out ("libvirt made durable"). The sources libvirt clones are the same files (hard links) as
// everyone's: 1 GiB of random data, no holes.
//
// virtstoraged frees a deleted volume's blocks after its reply; the delete group runs an untimed
// getPool after it (which waits for that), and times one variant with that wait included.
//
// Each side has its own directory on one filesystem under --dir (default /var/tmp); the sources
// are hard links of one file, so every side reads the same blocks and page cache. Variants run
// interleaved, round after round, each round starting at the next variant; each after an untimed
// cleanup/setup and a `sync` (plus drop_caches for the 1 GiB groups: --drop-caches all|data|no). libvirt's
// latencies are timed inside python3-libvirt (persistent connection, lookup included), its
// streams as whole `virsh` processes. virtstoraged's calls are timed the same way, inside a
// StorageClient of its own process (vqs.mjs) that never forks; the rows marked "timed in run.mjs"
// time the same calls from this process, which forks before every timed run, for comparison.
// Its streams are timed here (StorageClient.upload/download) and as whole `virtq` processes.
//
//   bench/storage/run.sh [--install] [--rounds 5] [--fast-rounds 20] [--warm 1] [--gib 1]
//       [--only create,thin,full,delete,upload,download] [--dir DIR] [--json FILE] [--dist DIR]
import { execFileSync } from 'node:child_process';
import { createReadStream, linkSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanupRegistry, fmt, loadavg, machineFacts, median, now, options, pct, REPO, snapshotDist, table } from '../lib/common.mjs';
import * as dur from './durable.mjs';
import { run, sh, startLibvirt, startNodeFloor, startStoraged, startStoragedClient } from './sides.mjs';

const o = options();
const ROUNDS = o.num('rounds', 5);
const FAST = o.num('fast-rounds', ROUNDS * 4);
const WARM = o.num('warm', 1);
const SIZE = o.num('gib', 1) * 1024 ** 3;
const MiB = 1024 * 1024;
const ONLY = new Set(o.get('only', 'create,thin,full,delete,upload,download').split(','));
const LV_STATE = process.env.VQSB_LIBVIRT ?? 'not installed';
const started = now();
const log = (...a) => console.error(`[${((now() - started) / 1000).toFixed(0)}s load ${loadavg()}]`, ...a);

// Before every timed run: sync, and for the groups that move 1 GiB (full clone, delete with
// data, upload, download) also drop the page cache when this process may (root), so no side
// reads from a cache another side warmed. Not for the millisecond groups: dropping evicts
// qemu-img's, node's and libvirt's own code too, and every side then pays its page-ins (seen in
// the first run: qemu-img create 1 s instead of 0.1 s). --drop-caches all|data|no (data).
const DROP_MODE = o.get('drop-caches', 'data');
const DROP = DROP_MODE !== 'no' && await writeFile('/proc/sys/vm/drop_caches', '3').then(() => true, () => false);
const settle = async (data) => {
  await run('sync', []);
  if (DROP && (data || DROP_MODE === 'all')) await writeFile('/proc/sys/vm/drop_caches', '3');
};

const cleanup = cleanupRegistry();
const work = cleanup.root(mkdtempSync(join(o.get('dir', '/var/tmp'), 'vqsb-')));
const dirs = { floor: join(work, 'floor'), vq: join(work, 'vq-pool'), lv: join(work, 'lv-pool'), drv: join(work, 'drv-pool'), node: join(work, 'node-floor') };
for (const d of Object.values(dirs)) mkdirSync(d);
const facts = {
  ...machineFacts(), qemuImg: execFileSync('qemu-img', ['--version'], { encoding: 'utf8' }).split('\n')[0],
  head: execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
  fs: execFileSync('df', ['--output=source,fstype', work], { encoding: 'utf8' }).split('\n')[1].replace(/\s+/g, ' '),
  loadBefore: loadavg(), libvirt: LV_STATE, dropCaches: !DROP ? `sync only (drop_caches ${DROP_MODE === 'no' ? 'off' : 'not writable'})` : `sync + drop_caches=3 before every timed run of ${DROP_MODE === 'all' ? 'every group' : 'the 1 GiB data groups'}`,
  malloc: Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_')).map(([k, v]) => `${k}=${v}`).join(' ') || 'glibc defaults',
};

// ---- the sides ------------------------------------------------------------------------------------
// --dist DIR: another build's dist/ (an A/B against main), copied like this one's.
const DIST = await snapshotDist('storage', o.get('dist'));
const vqd = await startStoraged(DIST, join(work, 'vq'), cleanup);
const sc = vqd.client;
const CLI = join(DIST, 'bin', 'virtq.js');
const VQ_URI = `storage:///system?root=${join(work, 'vq')}`;
await sc.api.definePool({ definition: { name: 'bench', type: 'dir', path: dirs.vq } });
await sc.api.startPool({ name: 'bench', build: true });
facts.shebang = vqd.shebang;
// The timed calls of the small groups go through a client in a process of its own (vqs.mjs), as
// libvirt's go through lvs.py: this process forks before every timed run (sync, the tools), and
// a forking process pays write faults afterwards that a client which never forks does not.
const vqc = await startStoragedClient(DIST, VQ_URI, cleanup);
// The Node floor (node-min.mjs): the same file steps as virtstoraged's create raw and delete in a
// Node server with no framework, so a gap to libvirt reads as the framework's or as Node's.
const nodeFloor = await startNodeFloor(dirs.node, cleanup);

const src = { raw: join(work, 'src.raw'), qcow2: join(work, 'src.qcow2') };
log(`making the ${SIZE / 1024 ** 3} GiB sources (random data) in ${work}`);
await sh(`head -c ${SIZE} /dev/urandom > ${src.raw}`);
await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', src.raw, src.qcow2]);
for (const d of Object.values(dirs)) for (const f of ['raw', 'qcow2']) linkSync(src[f], join(d, `src.${f}`));

let lvs;
if (LV_STATE === 'yes') {
  lvs = await startLibvirt('bench', dirs.lv, cleanup);
  facts.libvirt = `libvirt ${lvs.version} (monolithic libvirtd, dir pool)`;
}
const lv = lvs?.lv;
// Upload targets: an existing 1 GiB volume on each side (sparse until the first upload).
await sc.api.createVolume({ pool: 'bench', name: 'up.raw', format: 'raw', capacity: SIZE });
await lv?.call('create', { name: 'up.raw', format: 'raw', bytes: SIZE });
await sc.api.listVolumes({ pool: 'bench' }); // a running daemon knows its volumes
// The driver alone, in this process (no daemon, no socket): what virtstoraged's streams add to it.
const { DirPool } = await import(join(DIST, 'lib', 'drivers', 'storage', 'dir-pool.js'));
const drv = new DirPool({ name: 'drv', type: 'dir', path: dirs.drv });
await drv.create({ name: 'up.raw', format: 'raw', capacityBytes: SIZE });
await drv.list();

// ---- measuring ------------------------------------------------------------------------------------
const results = {};
const F = (name) => join(dirs.floor, name);
const vqDrop = (name) => () => sc.api.deleteVolume({ pool: 'bench', name }).catch(() => undefined);
const lvDrop = (name) => () => lv.call('remove', { name });
const rmF = (name) => () => sh(`rm -f ${F(name)}`);
// A pool's info waits until the files of deleted volumes are freed (dir-pool.ts freeAfter).
const vqFreed = () => sc.api.getPool({ name: 'bench' });
const ms = (p) => p.then((r) => r.ms); // libvirt's figure, timed inside python
// The bare RPC (a call that touches no file), beside the small operations: from vqs.mjs's
// connection, and (vqh) from this process's, which forks before every timed run.
const rpcFloor = { side: 'rpc', label: 'virtstoraged listJobs (no file touched)', run: () => vqc.call('listJobs') };
const rpcFloorHere = { side: 'vqh', label: 'virtstoraged listJobs (no file touched)', run: () => sc.api.listJobs({}) };
const lvRpcFloor = { side: 'lvrpc', label: 'libvirt pool.isActive() (no file touched)', run: () => ms(lv.call('noop')) };
const N = (name) => join(dirs.node, name);
const nodeNoop = { side: 'node', label: 'a line there and back (no file touched)', run: () => nodeFloor.call('noop') };

/**
 * Runs every variant {label, side, run, clean?, setup?, after?} WARM + rounds times, interleaved:
 * clean, setup, sync, then timed run (its own figure when it returns a number), then after. libvirt
 * variants are left out (kept as rows) when libvirt is not running.
 */
async function compare(group, variants, rounds, bytes, data = bytes !== undefined) {
  const active = variants.filter((v) => !v.side.startsWith('lv') || lv !== undefined);
  const times = new Map(variants.map((v) => [v, []]));
  for (let r = 0; r < WARM + rounds; r += 1) {
    // Each round starts at the next variant, so no side always follows the same one.
    for (const v of [...active.slice(r % active.length), ...active.slice(0, r % active.length)]) {
      await v.clean?.();
      await v.setup?.();
      await settle(data);
      const t0 = now();
      const own = await v.run();
      if (r >= WARM) times.get(v).push(typeof own === 'number' ? own : now() - t0);
      // Untimed: work a side left running after its answer (virtstoraged frees a deleted file's
      // blocks after the reply) ends here, not in the next side's timed run.
      await v.after?.();
    }
    log(`${group}: round ${r + 1 - WARM} of ${rounds}${r < WARM ? ' (warm-up)' : ''}`);
  }
  for (const v of active) await v.clean?.();
  results[group] = { bytes, load: loadavg(), variants: variants.map((v) => ({ label: v.label, side: v.side, ms: times.get(v) })) };
  // Kept as the run goes: a run stopped part-way still leaves the groups it finished.
  if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ facts, results }, null, 1));
}

if (ONLY.has('create')) {
  for (const f of ['raw', 'qcow2']) {
    await compare(`create ${f}`, [
      { side: 'floor', label: `qemu-img create -f ${f}`, clean: rmF(`new.${f}`), run: () => run('qemu-img', ['create', '-q', '-f', f, F(`new.${f}`), String(SIZE)]) },
      ...(f === 'raw' ? [
        { side: 'dur', label: 'open temp, ftruncate, fsync, rename, fsync DIR', clean: rmF('new.raw'), run: () => dur.createRaw(F('new.raw'), SIZE) },
        { side: 'dur', label: 'open temp, ftruncate, rename, fsync DIR (no data: dir fsync alone)', clean: rmF('new.raw'), run: () => dur.createRawMeta(F('new.raw'), SIZE) },
      ] : [{ side: 'dur', label: 'qemu-img create to temp, fsync, rename, fsync DIR', clean: rmF('new.qcow2'), run: () => dur.qemuImgCreate(F('new.qcow2'), (t) => ['-f', 'qcow2', t, String(SIZE)]) }]),
      { side: 'vq', label: 'virtstoraged createVolume', clean: vqDrop(`new.${f}`), run: () => vqc.call('createVolume', { pool: 'bench', name: `new.${f}`, format: f, capacity: SIZE }) },
      ...(f === 'raw' ? [
        { side: 'vqh', label: 'virtstoraged createVolume', clean: vqDrop('new.raw'), run: () => sc.api.createVolume({ pool: 'bench', name: 'new.raw', format: 'raw', capacity: SIZE }) },
        { side: 'node', label: 'temp O_EXCL, ftruncate, link, unlink, fsync (thread pool)', clean: () => sh(`rm -f ${N('new.raw')}`), run: () => nodeFloor.call('create', { name: 'new.raw', bytes: SIZE }) },
        rpcFloor, rpcFloorHere, lvRpcFloor, nodeNoop] : []),
      { side: 'lv', label: 'libvirt createXML (vol-create-as)', clean: lvDrop(`new.${f}`), run: () => ms(lv.call('create', { name: `new.${f}`, format: f, bytes: SIZE })) },
    ], FAST);
  }
}
if (ONLY.has('thin')) {
  await compare('thin clone', [
    { side: 'floor', label: 'qemu-img create -f qcow2 -b -F qcow2', clean: rmF('thin.qcow2'), run: () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', F('src.qcow2'), '-F', 'qcow2', F('thin.qcow2')]) },
    { side: 'dur', label: 'qemu-img create -b to temp, fsync, rename, fsync DIR', clean: rmF('thin.qcow2'), run: () => dur.qemuImgCreate(F('thin.qcow2'), (t) => ['-f', 'qcow2', '-b', F('src.qcow2'), '-F', 'qcow2', t]) },
    { side: 'vq', label: 'virtstoraged cloneVolume thin', clean: vqDrop('thin.qcow2'), run: () => vqc.clone({ pool: 'bench', source: 'src.qcow2', name: 'thin.qcow2', thin: true }) },
    { side: 'lv', label: 'libvirt createXML + backingStore (vol-create-as --backing-vol)', clean: lvDrop('thin.qcow2'),
      run: () => ms(lv.call('create', { name: 'thin.qcow2', format: 'qcow2', bytes: SIZE, backing: join(dirs.lv, 'src.qcow2'), backingFormat: 'qcow2' })) },
  ], FAST);
}
if (ONLY.has('full')) {
  for (const f of ['raw', 'qcow2']) {
    const n = `full.${f}`;
    await compare(`full clone ${f}`, [
      { side: 'floor', label: 'cp', clean: rmF(n), run: () => run('cp', [F(`src.${f}`), F(n)]) },
      { side: 'dur', label: 'cp to temp, fsync, rename, fsync DIR', clean: rmF(n), run: () => dur.cp(F(`src.${f}`), F(n)) },
      { side: 'vq', label: 'virtstoraged cloneVolume full', clean: vqDrop(n), run: () => vqc.clone({ pool: 'bench', source: `src.${f}`, name: n }) },
      { side: 'lv', label: 'libvirt createXMLFrom (vol-clone)', clean: lvDrop(n), run: () => ms(lv.call('clone', { source: `src.${f}`, name: n })) },
      // For qcow2 libvirt runs `qemu-img convert -f qcow2 -O qcow2 -o compat=1.1,cluster_size=65536`
      // without -t: convert's default cache mode for its output is "unsafe", so no fdatasync
      // follows the data and the copy is still in the page cache when libvirt answers (strace,
      // session 10). This row adds what it leaves out, timed in the same python call.
      { side: 'lvd', label: 'libvirt createXMLFrom, then fsync of the copy and of the directory', clean: lvDrop(n), run: () => ms(lv.call('clone', { source: `src.${f}`, name: n, sync: join(dirs.lv, n) })) },
    ], ROUNDS, SIZE);
  }
}
if (ONLY.has('delete')) {
  await compare('delete 1 GiB with data', [
    { side: 'floor', label: 'rm', clean: rmF('del.raw'), setup: () => run('cp', [F('src.raw'), F('del.raw')]), run: () => run('rm', [F('del.raw')]) },
    { side: 'dur', label: 'unlink, fsync DIR', clean: rmF('del.raw'), setup: () => run('cp', [F('src.raw'), F('del.raw')]), run: () => dur.remove(F('del.raw')) },
    { side: 'vq', label: 'virtstoraged deleteVolume', clean: vqDrop('del.raw'), setup: () => sc.cloneVolume({ pool: 'bench', source: 'src.raw', name: 'del.raw' }),
      run: () => vqc.call('deleteVolume', { pool: 'bench', name: 'del.raw' }), after: vqFreed },
    { side: 'vq', label: 'virtstoraged deleteVolume, then getPool (waits for the blocks to be freed)', clean: vqDrop('del.raw'), setup: () => sc.cloneVolume({ pool: 'bench', source: 'src.raw', name: 'del.raw' }),
      run: async () => { await sc.api.deleteVolume({ pool: 'bench', name: 'del.raw' }); await vqFreed(); } },
    { side: 'lv', label: 'libvirt vol.delete (vol-delete)', clean: lvDrop('del.raw'), setup: () => lv.call('clone', { source: 'src.raw', name: 'del.raw' }),
      run: () => ms(lv.call('delete', { name: 'del.raw' })) },
  ], ROUNDS, undefined, true);
  await compare('delete thin overlay', [
    { side: 'floor', label: 'rm', clean: rmF('dthin.qcow2'), setup: () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', F('src.qcow2'), '-F', 'qcow2', F('dthin.qcow2')]), run: () => run('rm', [F('dthin.qcow2')]) },
    { side: 'dur', label: 'unlink, fsync DIR', clean: rmF('dthin.qcow2'), setup: () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', F('src.qcow2'), '-F', 'qcow2', F('dthin.qcow2')]), run: () => dur.remove(F('dthin.qcow2')) },
    { side: 'vq', label: 'virtstoraged deleteVolume', clean: vqDrop('dthin.qcow2'), setup: () => sc.cloneVolume({ pool: 'bench', source: 'src.qcow2', name: 'dthin.qcow2', thin: true }),
      run: () => vqc.call('deleteVolume', { pool: 'bench', name: 'dthin.qcow2' }) },
    { side: 'vqh', label: 'virtstoraged deleteVolume', clean: vqDrop('dthin.qcow2'), setup: () => sc.cloneVolume({ pool: 'bench', source: 'src.qcow2', name: 'dthin.qcow2', thin: true }),
      run: () => sc.api.deleteVolume({ pool: 'bench', name: 'dthin.qcow2' }) },
    { side: 'node', label: 'unlink, fsync DIR (thread pool)', clean: () => sh(`rm -f ${N('dthin.qcow2')}`), setup: () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', F('src.qcow2'), '-F', 'qcow2', N('dthin.qcow2')]),
      run: () => nodeFloor.call('delete', { name: 'dthin.qcow2' }) },
    rpcFloor, rpcFloorHere, lvRpcFloor, nodeNoop,
    { side: 'lv', label: 'libvirt vol.delete (vol-delete)', clean: lvDrop('dthin.qcow2'),
      setup: () => lv.call('create', { name: 'dthin.qcow2', format: 'qcow2', bytes: SIZE, backing: join(dirs.lv, 'src.qcow2'), backingFormat: 'qcow2' }),
      run: () => ms(lv.call('delete', { name: 'dthin.qcow2' })) },
  ], FAST);
}
/** A file's bytes read into two 1 MiB buffers in turn, each lent until the next is asked for (cli/local-files.ts's readLent). */
async function* reusedReads(file) {
  const fh = await open(file, 'r');
  try {
    const ring = [Buffer.allocUnsafeSlow(MiB), Buffer.allocUnsafeSlow(MiB)];
    let next = fh.read(ring[0], 0, MiB, null);
    for (let k = 1; ; k++) {
      const { bytesRead, buffer } = await next;
      if (bytesRead === 0) return;
      next = fh.read(ring[k % 2], 0, MiB, null);
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
if (ONLY.has('upload')) {
  const out = F('out.raw');
  await compare('upload', [
    { side: 'floor', label: 'cp', clean: rmF('out.raw'), run: () => run('cp', [src.raw, out]) },
    // The same work as virtstoraged's, with coreutils: a temp copy made durable, renamed over a 1 GiB file.
    { side: 'dur', label: 'cp to temp, sync, mv over, sync DIR', setup: () => sh(`rm -f ${out} && cp ${src.raw} ${out}`),
      run: () => sh(`cp ${src.raw} ${out}.t && sync ${out}.t && mv ${out}.t ${out} && sync ${dirs.floor}`), clean: rmF('out.raw') },
    { side: 'vq', label: 'StorageClient.upload, file read in 1 MiB chunks', run: () => sc.upload('bench', 'up.raw', createReadStream(src.raw, { highWaterMark: MiB }), SIZE) },
    // The caller's source counts: createReadStream's fresh 1 MiB buffers cost ~1.6 s of CPU per cold GiB
    // here, two reused ones ~0.3 s (bench/RESULTS.md, issue #13 session 13).
    { side: 'vq', label: 'StorageClient.upload, file read into two reused 1 MiB buffers (as vol-upload reads)', run: () => sc.upload('bench', 'up.raw', reusedReads(src.raw), SIZE) },
    { side: 'vq', label: '`virtq vol-upload` (whole process, like virsh)', run: () => run(CLI, ['-c', VQ_URI, 'vol-upload', 'bench', 'up.raw', src.raw]) },
    { side: 'lv', label: 'virsh vol-upload', run: () => run('virsh', [...lvs.virsh, 'vol-upload', '--pool', 'bench', 'up.raw', src.raw]) },
    { side: 'drv', label: 'DirPool.upload in this process, same 1 MiB reads', run: () => drv.upload('up.raw', createReadStream(src.raw, { highWaterMark: MiB }), {}, { lengthBytes: SIZE }) },
  ], ROUNDS, SIZE);
}
if (ONLY.has('download')) {
  const out = F('out.raw');
  await compare('download', [
    { side: 'floor', label: 'cp', clean: rmF('out.raw'), run: () => run('cp', [src.raw, out]) },
    { side: 'floor', label: 'cat > /dev/null', run: () => sh(`cat ${src.raw} > /dev/null`) },
    { side: 'dur', label: 'cp to temp, fsync, rename, fsync DIR', clean: rmF('out.raw'), run: () => dur.cp(src.raw, out) },
    { side: 'vq', label: 'StorageClient.download to a file', clean: rmF('out.raw'), run: async () => {
      const fh = await open(out, 'w');
      try { await sc.download('bench', 'src.raw', async (c) => { await fh.write(c); }); } finally { await fh.close(); }
    } },
    { side: 'vq', label: '`virtq vol-download` (whole process; temp file, fsync, rename)', clean: rmF('out.raw'), run: () => run(CLI, ['-c', VQ_URI, 'vol-download', 'bench', 'src.raw', out]) },
    { side: 'lv', label: 'virsh vol-download', clean: rmF('out.raw'), run: () => run('virsh', [...lvs.virsh, 'vol-download', '--pool', 'bench', 'src.raw', out]) },
    { side: 'drv', label: 'DirPool.download in this process (two buffers, as the daemon), to a file', clean: rmF('out.raw'), run: async () => {
      const fh = await open(out, 'w');
      try { for await (const c of await drv.download('src.raw', {}, { reuseBuffers: true })) await fh.write(c); } finally { await fh.close(); }
    } },
  ], ROUNDS, SIZE);
}
facts.loadAfter = loadavg();
facts.seconds = Math.round((now() - started) / 1000);
sc.close();
vqc.close();
nodeFloor.close();
await lvs?.stop();

// ---- report ---------------------------------------------------------------------------------------
const p50 = (v) => median(v.ms);
const p90 = (v) => pct(Float64Array.from(v.ms).sort(), 90);
const mibs = (msv, bytes) => (bytes / MiB) / (msv / 1000);
const x = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '–');
const rows = [];
const verdicts = [];
for (const [group, g] of Object.entries(results)) {
  const floor = g.variants.find((v) => v.side === 'floor');
  const vq = g.variants.find((v) => v.side === 'vq');
  const lvv = g.variants.find((v) => v.side === 'lv');
  const durv = g.variants.find((v) => v.side === 'dur');
  const lvOk = lvv !== undefined && lvv.ms.length > 0;
  for (const v of g.variants) {
    const none = v.ms.length === 0;
    const who = { floor: 'floor', dur: 'durable floor', vq: 'virtstoraged', vqh: 'virtstoraged timed in run.mjs (forks before each call)', rpc: 'RPC floor', lvrpc: "libvirt's RPC floor", lv: 'libvirt', lvd: 'libvirt made durable', drv: 'driver alone', node: 'Node floor, no framework (node-min.mjs)' }[v.side];
    rows.push([group, `${who}: ${v.label}`, none ? LV_STATE : fmt(p50(v)), none ? '' : fmt(p90(v)), none ? '' : `${fmt(Math.min(...v.ms))}–${fmt(Math.max(...v.ms))}`,
      none || g.bytes === undefined ? '' : fmt(mibs(p50(v), g.bytes), 0),
      none || v === floor ? '' : x(p50(v), p50(floor)), durv === undefined || v.side !== 'vq' ? '' : x(p50(v), p50(durv)),
      v.side !== 'vq' && v.side !== 'vqh' && v.side !== 'dur' && v.side !== 'node' ? '' : lvOk ? x(p50(v), p50(lvv)) : LV_STATE]);
  }
  // libvirt skips the temp file, rename and directory fsync: when even the durable floor is slower than libvirt, say so.
  const lvBelowFloor = lvOk && durv !== undefined && p50(lvv) < p50(durv);
  const durNote = durv === undefined ? '' : `; durable floor ${fmt(p50(durv))} ms, virtstoraged at ${x(p50(vq), p50(durv))} of it`;
  if (lvOk) verdicts.push([`${group}: virtstoraged ≤ libvirt (p50)`, `${fmt(p50(vq))} vs ${fmt(p50(lvv))} ms (${x(p50(vq), p50(lvv))})${durNote}`,
    p50(vq) <= p50(lvv) ? 'PASS' : lvBelowFloor ? 'MISS: libvirt is below the durable floor (no temp file, rename or directory fsync)' : 'MISS']);
  else verdicts.push([`${group}: virtstoraged ≤ libvirt (p50)`, `libvirt ${LV_STATE}`, '–']);
  const lvd = g.variants.find((v) => v.side === 'lvd');
  if (lvd !== undefined && lvd.ms.length > 0) {
    verdicts.push([`${group}: virtstoraged ≤ libvirt made durable (p50)`, `${fmt(p50(vq))} vs ${fmt(p50(lvd))} ms (${x(p50(vq), p50(lvd))})`, p50(vq) <= p50(lvd) ? 'PASS' : 'MISS']);
  }
  if (group === 'thin clone') verdicts.unshift(['thin clone ≤ 1.5× qemu-img create -b (p50)', `${fmt(p50(vq))} vs ${fmt(p50(floor))} ms (${x(p50(vq), p50(floor))})`, p50(vq) <= 1.5 * p50(floor) ? 'PASS' : 'MISS']);
  if (group === 'upload') {
    const ratio = mibs(p50(vq), g.bytes) / mibs(p50(floor), g.bytes);
    verdicts.unshift(['upload ≥ 0.8× cp throughput (p50)', `${fmt(mibs(p50(vq), g.bytes), 0)} vs ${fmt(mibs(p50(floor), g.bytes), 0)} MiB/s (${ratio.toFixed(2)}×)`, ratio >= 0.8 ? 'PASS' : 'MISS']);
  }
}
console.log(`# storage bench — ${SIZE / 1024 ** 3} GiB volumes, ${ROUNDS} rounds (create, thin, delete thin: ${FAST}), ${WARM} warm-up, ${facts.seconds} s`);
console.log(JSON.stringify(facts));
console.log(table(['operation', 'variant', 'p50 ms', 'p90 ms', 'range ms', 'MiB/s (p50)', 'vs floor', 'vs durable floor', '/ libvirt'], rows));
console.log(`\n${table(['target', 'measured', 'verdict'], verdicts)}`);
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ facts, results }, null, 1));
// The helper and the daemon would keep this process alive: the exit handler kills them and
// removes the run's directory.
process.exit(0);
