#!/usr/bin/env node
// Which functions a pool shim still compiles after its hand-off (issue 15 target 1, session 14):
// warm starts through virtqemud whose shims run with V8's --log-function-events; per start, every
// bytecode compilation (parse + interpreter events) after the hand-off (the first execution of
// the shim's `fromStartRequest`, which runs right after stdin is read), summed by script and by
// function. The flags make V8 reject Node's built-in code cache, so Node's own modules compile
// from source here: the node: rows are inflated; the bundle rows are what a rehearsal could move.
// The shim runs with its shebang's own environment and flags (read from the bundle's first line),
// the logging flags added. Under them a warm start compiled 2 of the bundle's functions after the
// hand-off in session 26, with the root's code cache; session 25 counted 429 before the cache.
//
//   node bench/shim/lazy-vqd.mjs [--runs 3] [--dist DIR] [--top 40]
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, cleanupRegistry, exitOf, firstLine, fmt, idleDefinition, loadavg, options, sleep, summarize, tmpRoot } from '../lib/common.mjs';

const o = options();
const RUNS = o.num('runs', 3);
const TOP = o.num('top', 40);
const DIST = o.get('dist', join(REPO, 'dist'));
const cleanup = cleanupRegistry();
const { RpcClient, systemClock } = await import(join(DIST, 'lib', 'protocol', 'index.js'));
const root = cleanup.root(tmpRoot('vqlazy-'));
const logs = join(root, 'v8');
const wrap = join(root, 'shim-wrap.sh');
// `#!/usr/bin/env -S VAR=V ... node FLAGS...`: the assignments before `node`, the flags after it.
const shebang = readFileSync(join(DIST, 'bin', 'virtq-shim.js'), 'utf8').split('\n')[0].split(/\s+/).slice(2);
const nodeAt = shebang.indexOf('node');
if (nodeAt < 0) throw new Error(`cannot read the shim's shebang: ${shebang.join(' ')}`);
const [shimEnv, shimFlags] = [shebang.slice(0, nodeAt), shebang.slice(nodeAt + 1)];
writeFileSync(wrap, `#!/bin/sh\nmkdir -p ${logs}\n${shimEnv.length > 0 ? `export ${shimEnv.join(' ')}\n` : ''}exec ${process.execPath} ${shimFlags.join(' ')} --log-function-events --logfile=${logs}/v8-%p.log --no-logfile-per-isolate ${join(DIST, 'bin', 'virtq-shim.js')} "$@"\n`);
chmodSync(wrap, 0o755);
const d = cleanup.child(spawn(process.execPath, [join(DIST, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1', '--shim', wrap], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, VIRTQ_NO_SNAPSHOT: '1' } }));
const { pid } = JSON.parse((await firstLine(d)).line);
d.stdout.resume();
const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock: systemClock(), defaultTimeoutMs: 60_000 });
// The root's first start pays once-per-root work (the flock self-check, the capability cache): not counted.
await sleep(2000);
await rpc.call('virtq', 'create', { definition: idleDefinition('w0') });
await rpc.call('virtq', 'destroy', { name: 'w0' });
const loadBefore = loadavg();
const shims = [];
for (let i = 0; i < RUNS; i++) {
  await sleep(2500);
  const r = await rpc.call('virtq', 'create', { definition: idleDefinition(`t${i}`) });
  shims.push(r.shimPid);
  await sleep(300);
  await rpc.call('virtq', 'destroy', { name: `t${i}` });
}
rpc.close();
process.kill(pid, 'SIGTERM');
await exitOf(d);
await sleep(500);

/** Compile events after the hand-off in one shim's log: {total, bundle, byFn}. */
function analyse(file) {
  const scripts = new Map();
  const events = [];
  let handoff;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(',');
    if (f[0] === 'script-details') scripts.set(f[1], f[2]);
    if (f[0] !== 'function') continue;
    const [, kind, script, start, end, ms, us, ...name] = f;
    const fn = name.join(',');
    if (kind === 'first-execution' && fn === 'fromStartRequest' && handoff === undefined) handoff = Number(us);
    if (kind === 'interpreter' || kind === 'parse-function' || kind === 'full-parse' || kind === 'preparse-no-resolution' || kind === 'preparse-resolution') {
      events.push({ kind, script, start, bytes: Number(end) - Number(start), ms: Number(ms), us: Number(us), fn });
    }
  }
  const out = { total: 0, bundle: 0, node: 0, count: 0, bundleCount: 0, bundleKiB: 0, byFn: new Map() };
  if (handoff === undefined) return undefined;
  for (const e of events) {
    if (e.us < handoff) continue;
    const where = scripts.get(e.script) ?? '?';
    const bundle = where.includes('virtq-shim');
    out.total += e.ms;
    if (bundle) out.bundle += e.ms; else out.node += e.ms;
    if (e.kind !== 'interpreter') continue;
    out.count++;
    if (bundle) { out.bundleCount++; out.bundleKiB += e.bytes / 1024; }
    // Ranked by source size compiled (load-resistant), not by the events' wall-clock times.
    const key = `${bundle ? 'bundle' : where.replace(/^.*\/lib\//, 'node:').slice(0, 40)} ${e.fn || '(anonymous)'}@${e.start}`;
    out.byFn.set(key, e.bytes);
  }
  return out;
}
const rows = [];
for (const shimPid of shims) {
  const file = readdirSync(logs).find((f) => f === `v8-${shimPid}.log`);
  const a = file === undefined ? undefined : analyse(join(logs, file));
  if (a !== undefined) rows.push(a);
}
console.log(`load before ${loadBefore}, after ${loadavg()}; ${rows.length} warm starts with a log (of ${RUNS})\n`);
const s = (k) => { const x = summarize(rows.map((r) => r[k])); return [fmt(x.p50), fmt(x.p90)]; };
console.log('| compiled after the hand-off (ms of V8 compile time, --log-function-events) | p50 | p90 |\n| --- | --- | --- |');
for (const [k, what] of [['total', 'all'], ['bundle', 'the shim bundle'], ['node', "Node's own modules (inflated: no code cache with these flags)"], ['count', 'functions compiled (count)'], ['bundleCount', 'of them in the bundle (count)'], ['bundleKiB', 'bundle source compiled (KiB)']]) console.log(`| ${what} | ${s(k).join(' | ')} |`);
const merged = new Map();
for (const r of rows) for (const [k, v] of r.byFn) merged.set(k, (merged.get(k) ?? 0) + v / rows.length);
console.log(`\ntop ${TOP} by source bytes compiled after the hand-off (mean per start):`);
for (const [k, v] of [...merged].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${Math.round(v)}  ${k}`);
if (o.has?.('list') || process.argv.includes('--list')) for (const k of [...merged.keys()].filter((k) => k.startsWith('bundle')).sort()) console.log(`L ${k}`);
