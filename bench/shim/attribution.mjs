#!/usr/bin/env node
// Where a settled shim's memory goes, beside the floor (a bare node:net server), same flags:
// V8 heap spaces (used / committed), code and bytecode sizes, process.memoryUsage() (external,
// array buffers) and smaps_rollup (PSS, anon, file), for each bundle given, one process at a time,
// interleaved over --reps rounds. Issue 15, target 2.
//
//   node bench/shim/attribution.mjs [--reps 3] [--settle-ms 15000] [--bundle name=FILE[,ENV=V...] ...] [--json out.json]
//
// ENV=V after a bundle's file: extra environment for that variant (e.g. MALLOC_ARENA_MAX=1, or
// VQ_ATTR_GC_MS=3000: attribution-preload.mjs's memory-reducing GC at 3 s). The smaps rows split
// Pss_Anon by mapping: V8's heap and other mmaps, glibc's brk heap, its other arenas (64 MiB
// reservations), thread stacks (8 MiB).
// Without --bundle it measures dist/bin/virtq-shim.js. Each shim runs one idle VM (--no-register).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, cleanupRegistry, exitOf, firstLine, idleDefinition, loadavg, median, options, sleep, table, tmpRoot } from '../lib/common.mjs';

const o = options();
const REPS = o.num('reps', 3);
const SETTLE = o.num('settle-ms', 15000);
const cleanup = cleanupRegistry();
const R = cleanup.root(tmpRoot('vqattr-'));
const shipped = join(REPO, 'dist', 'bin', 'virtq-shim.js');
const flags = readFileSync(shipped, 'utf8').split('\n')[0].replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
const env = Object.fromEntries(flags.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => f.split('=')));
const nodeFlags = flags.filter((f) => f.startsWith('--'));
const preload = join(REPO, 'bench', 'shim', 'attribution-preload.mjs');
const floor = join(R, 'floor.mjs');
writeFileSync(floor, "import { createServer } from 'node:net';\nconst a = process.argv;\nconst root = a[a.indexOf('--root') + 1];\nconst s = createServer(() => {});\ns.listen(`${root}/floor-${process.pid}.sock`, () => process.stdout.write(JSON.stringify({ ok: true, shimPid: process.pid, socket: '' }) + '\\n'));\n");
const bundles = [...process.argv.slice(2).flatMap((a, i, all) => (a === '--bundle' ? [all[i + 1]] : []))];
const list = [...new Set(bundles)].map((b) => { const [name, ...rest] = b.split('='); const [file, ...envs] = rest.join('=').split(','); return { name, file, env: Object.fromEntries(envs.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) }; });
if (list.length === 0) list.push({ name: 'shipped', file: shipped });
list.push({ name: 'floor', file: floor });
mkdirSync(join(R, 'defs'));

async function one(v, tag) {
  const out = join(R, `${tag}.json`);
  const def = join(R, 'defs', `${tag}.json`);
  writeFileSync(def, JSON.stringify(idleDefinition(tag)));
  const args = v.name.startsWith('floor') ? [v.file, '--root', R] : [v.file, '--root', R, '--no-register', '--definition', def];
  const child = cleanup.child(spawn(process.execPath, [...nodeFlags, '--import', preload, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env, ...(v.env ?? {}), VQ_ATTR_OUT: out, VQ_ATTR_MS: String(SETTLE) } }));
  const { line } = await firstLine(child);
  child.stdout.resume();
  const deadline = Date.now() + SETTLE + 30_000;
  let data;
  while (data === undefined && Date.now() < deadline) {
    await sleep(500);
    try { data = JSON.parse(readFileSync(out, 'utf8')); } catch { /* not yet */ }
  }
  if (!v.name.startsWith('floor')) {
    try { const s = JSON.parse(readFileSync(join(R, 'run', 'shims', `${tag}.json`), 'utf8')); process.kill(s.qemuPid, 'SIGKILL'); } catch { /* gone */ }
  }
  child.kill('SIGKILL');
  await exitOf(child);
  if (data === undefined) throw new Error(`${v.name}: no figures (${line})`);
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(data.smaps)?.[1] ?? NaN) / 1024;
  const sp = (n, k) => (data.spaces[n]?.[k] ?? 0) / 1048576;
  // Pss_Anon by kind of mapping (sizes in kB as smaps gives them).
  const kinds = { v8AndMmap: 0, brkHeap: 0, arenas: 0, stacks: 0, otherAnon: 0, fileBacked: 0 };
  for (const block of data.smapsFull.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const head = block.split('\n')[0];
    const [range, , , , , path = ''] = head.trim().split(/\s+/);
    const [a, b] = range.split('-').map((x) => parseInt(x, 16));
    const size = (b - a) / 1024;
    // smaps has no Pss_Anon per mapping: a process that did not fork shares no anonymous page, so Anonymous is its share.
    const anon = Number(/^Anonymous:\s+(\d+)/m.exec(block)?.[1] ?? 0) / 1024;
    const file = Number(/^Pss:\s+(\d+)/m.exec(block)?.[1] ?? 0) / 1024 - anon;
    kinds.fileBacked += file;
    if (path === '[heap]') kinds.brkHeap += anon;
    else if (path.startsWith('[stack')) kinds.stacks += anon;
    else if (path !== '' && !path.startsWith('[')) kinds.otherAnon += anon;
    else if (size === 8192 || size === 8188 || size === 8180) kinds.stacks += anon;
    else if (size <= 65536 && a % (65536 * 1024) === 0) kinds.arenas += anon;
    else kinds.v8AndMmap += anon;
  }
  return {
    anonV8AndMmap: kinds.v8AndMmap, anonBrkHeap: kinds.brkHeap, anonArenas: kinds.arenas, anonStacks: kinds.stacks, anonInFileMaps: kinds.otherAnon,
    pss: kb('Pss'), rss: kb('Rss'), pssAnon: kb('Pss_Anon'), pssFile: kb('Pss_File'),
    heapUsed: data.usage.heapUsed / 1048576, heapTotal: data.usage.heapTotal / 1048576, external: data.usage.external / 1048576, arrayBuffers: data.usage.arrayBuffers / 1048576,
    oldUsed: sp('old_space', 'used'), oldPhys: sp('old_space', 'physical'), codeUsed: sp('code_space', 'used'), codePhys: sp('code_space', 'physical'),
    newPhys: sp('new_space', 'physical'), mapUsed: sp('map_space', 'used'), largeUsed: sp('large_object_space', 'used'), codeLargeUsed: sp('code_large_object_space', 'used'),
    bytecode: data.code.bytecode_and_metadata_size / 1048576, codeAndMeta: data.code.code_and_metadata_size / 1048576, scriptSource: data.code.external_script_source_size / 1048576,
  };
}

const rows = Object.fromEntries(list.map((v) => [v.name, []]));
for (let rep = 0; rep < REPS; rep++) {
  for (let k = 0; k < list.length; k++) {
    const v = list[(k + rep) % list.length];
    console.error(`[load ${loadavg()}] rep ${rep} ${v.name}`);
    rows[v.name].push(await one(v, `${v.name}-${rep}`));
  }
}
const keys = Object.keys(rows[list[0].name][0]);
const med = Object.fromEntries(list.map((v) => [v.name, Object.fromEntries(keys.map((k) => [k, median(rows[v.name].map((r) => r[k]))]))]));
console.log(`settled ${SETTLE / 1000} s, ${REPS} interleaved runs each, medians, MiB; flags: ${flags.join(' ')}; load ${loadavg()}\n`);
console.log(table(['figure', ...list.map((v) => v.name)], keys.map((k) => [k, ...list.map((v) => med[v.name][k].toFixed(2))])));
if (o.get('json') !== undefined) writeFileSync(o.get('json'), JSON.stringify({ rows, med }, null, 2));

process.exit(0);
