#!/usr/bin/env node
// What a settled shim's heap is retained by, per source module (issue 15 target 2). Reads a V8 heap
// snapshot (bench/shim/attribution.mjs with VQ_ATTR_HEAPSNAP=DIR), builds its dominator tree
// (strong edges only), and gives each node's self size to the nearest closure above it in that tree
// whose position lies in the bundle; the bundle's source map (`VIRTQ_BUILD_SOURCEMAP=1 npm run build`
// writes dist/bin/virtq-shim.js.map, the bundle itself unchanged) turns that position into the
// module it came from. What no bundle closure dominates is grouped by node type and name (Node's
// own heap, the source string, objects reachable from more than one module). Sizes in KiB.
//
//   node bench/shim/heap-modules.mjs SNAPSHOT [--map dist/bin/virtq-shim.js.map] [--bundle dist/bin/virtq-shim.js] [--top 40] [--by file|package]
//
// The map must be of the bundle the snapshot's process ran (build both from one checkout).
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };
const file = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const TOP = Number(opt('top', '40'));
const BY = opt('by', 'package');
const map = new SourceMap(JSON.parse(readFileSync(opt('map', 'dist/bin/virtq-shim.js.map'), 'utf8')));

const snap = JSON.parse(readFileSync(file, 'utf8'));
const m = snap.snapshot.meta;
const NF = m.node_fields.length, EF = m.edge_fields.length;
const nType = m.node_fields.indexOf('type'), nName = m.node_fields.indexOf('name'), nSize = m.node_fields.indexOf('self_size'), nEdges = m.node_fields.indexOf('edge_count');
const eType = m.edge_fields.indexOf('type'), eTo = m.edge_fields.indexOf('to_node');
const nodeTypes = m.node_types[0], edgeTypes = m.edge_types[0];
const WEAK = edgeTypes.indexOf('weak'), SHORTCUT = edgeTypes.indexOf('shortcut');
const N = snap.nodes.length / NF;
const nodes = snap.nodes, edges = snap.edges, strings = snap.strings;

// Forward edges (strong only), as CSR.
const first = new Uint32Array(N + 1);
{ let e = 0; for (let i = 0; i < N; i++) { first[i] = e; e += nodes[i * NF + nEdges]; } first[N] = e; }
const succ = (i, fn) => { for (let e = first[i]; e < first[i + 1]; e++) { const t = edges[e * EF + eType]; if (t === WEAK || t === SHORTCUT) continue; fn(edges[e * EF + eTo] / NF); } };

// Reverse postorder from the root (node 0), iteratively.
const order = new Int32Array(N).fill(-1); const rpo = [];
{
  const stack = [0]; const it = new Uint32Array(N); const seen = new Uint8Array(N); seen[0] = 1; it[0] = first[0];
  while (stack.length > 0) {
    const v = stack[stack.length - 1]; let pushed = false;
    while (it[v] < first[v + 1]) {
      const e = it[v]++; const t = edges[e * EF + eType]; if (t === WEAK || t === SHORTCUT) continue;
      const w = edges[e * EF + eTo] / NF; if (seen[w]) continue; seen[w] = 1; it[w] = first[w]; stack.push(w); pushed = true; break;
    }
    if (!pushed) { stack.pop(); rpo.push(v); }
  }
  rpo.reverse(); rpo.forEach((v, k) => { order[v] = k; });
}
// Predecessors (reachable ones only).
const preds = Array.from({ length: N }, () => []);
for (const v of rpo) succ(v, (w) => preds[w].push(v));
// Cooper–Harvey–Kennedy iterative dominators.
const idom = new Int32Array(N).fill(-1); idom[0] = 0;
const intersect = (a, b) => { while (a !== b) { while (order[a] > order[b]) a = idom[a]; while (order[b] > order[a]) b = idom[b]; } return a; };
for (let changed = true; changed;) {
  changed = false;
  for (let k = 1; k < rpo.length; k++) {
    const v = rpo[k]; let d = -1;
    for (const p of preds[v]) if (idom[p] !== -1) d = d === -1 ? p : intersect(p, d);
    if (d !== -1 && idom[v] !== d) { idom[v] = d; changed = true; }
  }
}

// Closures with a position in the bundle: their module.
const loc = snap.locations ?? []; const LF = m.location_fields.length;
const ownerModule = new Map();
const scriptCount = new Map();
for (let i = 0; i < loc.length; i += LF) scriptCount.set(loc[i + 1], (scriptCount.get(loc[i + 1]) ?? 0) + 1);
const bundleScript = [...scriptCount].sort((a, b) => b[1] - a[1])[0]?.[0];
const group = (src) => {
  if (src === undefined) return '(no source)';
  const s = src.replace(/^(\.\.\/)+/, '').replace(/^.*?\/(node_modules\/)/, '$1');
  if (BY === 'file') return s;
  const p = s.split('/');
  if (p[0] === 'node_modules') return p.slice(0, p[1]?.startsWith('@') ? 3 : 2).join('/');
  return p.length > 2 ? `${p[0]}/${p[1]}` : p[0];
};
for (let i = 0; i < loc.length; i += LF) {
  if (loc[i + 1] !== bundleScript) continue;
  const e = map.findEntry(loc[i + 2], loc[i + 3]);
  ownerModule.set(loc[i] / NF, group(e?.originalSource));
}

// Each node's owner: the nearest dominator (itself included) that is a bundle closure.
const owner = new Int32Array(N).fill(-2);
const ownerOf = (v) => {
  const path = [];
  while (owner[v] === -2) { if (ownerModule.has(v)) { owner[v] = v; break; } if (idom[v] === -1 || v === 0) { owner[v] = -1; break; } path.push(v); v = idom[v]; }
  for (const p of path) owner[p] = owner[v];
  return owner[v];
};
const byModule = new Map(); const rest = new Map(); let total = 0;
for (let v = 0; v < N; v++) {
  if (order[v] === -1) continue;
  const size = nodes[v * NF + nSize]; total += size;
  const o = ownerOf(v);
  if (o >= 0) { const k = ownerModule.get(o); byModule.set(k, (byModule.get(k) ?? 0) + size); continue; }
  const type = nodeTypes[nodes[v * NF + nType]]; let name = strings[nodes[v * NF + nName]];
  if (type.includes('string')) name = name.length > 40 ? `(${type} of ${name.length} chars)` : '(short strings)';
  const k = `${type}: ${name.slice(0, 60)}`; rest.set(k, (rest.get(k) ?? 0) + size);
}
const kib = (b) => (b / 1024).toFixed(1).padStart(8);
const sum = (mp) => [...mp.values()].reduce((a, b) => a + b, 0);
console.log(`${file}: ${N} nodes, reachable ${kib(total)} KiB; dominated by bundle closures ${kib(sum(byModule))} KiB, not ${kib(sum(rest))} KiB\n`);
console.log('retained by module (dominated by its closures), KiB:');
for (const [k, s] of [...byModule].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(s)}  ${k}`);
console.log('\nnot dominated by one bundle closure, by node type and name, KiB:');
for (const [k, s] of [...rest].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(s)}  ${k}`);

// The bundle is one ES module: every module's top-level bindings live in one module Context, which
// dominates most of what they hold. Its variables (esbuild keeps the source's names, made unique)
// by retained size, with the module each was declared in.
const retained = new Float64Array(N);
for (let k = rpo.length - 1; k >= 0; k--) { const v = rpo[k]; retained[v] += nodes[v * NF + nSize]; if (v !== 0) retained[idom[v]] += retained[v]; }
const CONTEXT = edgeTypes.indexOf('context');
let ctx = -1, most = 0;
for (let v = 0; v < N; v++) { let c = 0; for (let e = first[v]; e < first[v + 1]; e++) if (edges[e * EF + eType] === CONTEXT) c++; if (c > most) { most = c; ctx = v; } }
const bundleText = readFileSync(opt('bundle', 'dist/bin/virtq-shim.js'), 'utf8');
const lineStarts = [0]; for (let i = 0; i < bundleText.length; i++) if (bundleText.charCodeAt(i) === 10) lineStarts.push(i + 1);
const declModule = (name) => {
  const re = new RegExp(`(?:var|let|const|function|class)\\s+${name.replace(/\$/g, '\\$')}\\b`);
  const at = re.exec(bundleText)?.index; if (at === undefined) return '?';
  let line = 0; while (line + 1 < lineStarts.length && lineStarts[line + 1] <= at) line++;
  return group(map.findEntry(line, at - lineStarts[line])?.originalSource);
};
const vars = [];
for (let e = first[ctx]; e < first[ctx + 1]; e++) {
  if (edges[e * EF + eType] !== CONTEXT) continue;
  const w = edges[e * EF + eTo] / NF; const name = strings[edges[e * EF + m.edge_fields.indexOf('name_or_index')]];
  if (idom[w] !== ctx) continue;
  vars.push([name, retained[w], nodeTypes[nodes[w * NF + nType]]]);
}
const perMod = new Map();
for (const [name, r] of vars) { const mod = declModule(name); perMod.set(mod, (perMod.get(mod) ?? 0) + r); }
console.log(`\nthe bundle's module context (${most} variables) retains ${kib(retained[ctx])} KiB; its variables dominated by it, by declaring module, KiB:`);
for (const [k, s] of [...perMod].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(s)}  ${k}`);
console.log('\nlargest variables, KiB:');
for (const [name, r, t] of vars.sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(r)}  ${name} (${t}, ${declModule(name)})`);
const top = []; for (let e = first[0]; e < first[1]; e++) { const w = edges[e * EF + eTo] / NF; top.push([strings[nodes[w * NF + nName]].slice(0, 60), retained[w]]); }
console.log('\nthe root\'s children by retained size, KiB:');
for (const [n, r] of top.sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${kib(r)}  ${n}`);

// Compiled code per module: each bundle closure's SharedFunctionInfo and what it holds through
// internal edges (bytecode, constant pool, source positions, scope info, feedback metadata), and
// its feedback vector, counted once per function, by the module of the closure's position.
const eName = m.edge_fields.indexOf('name_or_index'); const INTERNAL = edgeTypes.indexOf('internal');
const codeBy = new Map(); const counted = new Uint8Array(N); const fnCount = new Map();
const claim = (w, mod, depth) => {
  if (counted[w] || depth > 3) return 0; const t = nodeTypes[nodes[w * NF + nType]];
  if (t !== 'code' && t !== 'array' && t !== 'hidden') return 0;
  counted[w] = 1; let s = nodes[w * NF + nSize];
  for (let e = first[w]; e < first[w + 1]; e++) { if (edges[e * EF + eType] !== INTERNAL) continue; const n = strings[edges[e * EF + eName]]; if (n === 'script' || n === 'outer_scope_info' || n === 'function_data' && depth > 1) continue; s += claim(edges[e * EF + eTo] / NF, mod, depth + 1); }
  return s;
};
for (const [v, mod] of ownerModule) {
  for (let e = first[v]; e < first[v + 1]; e++) {
    const n = strings[edges[e * EF + eName]];
    if (n !== 'shared' && n !== 'feedback_cell') continue;
    const s = claim(edges[e * EF + eTo] / NF, mod, 0);
    if (s > 0) { codeBy.set(mod, (codeBy.get(mod) ?? 0) + s); if (n === 'shared') fnCount.set(mod, (fnCount.get(mod) ?? 0) + 1); }
  }
}
console.log(`\ncompiled code and its metadata held by live bundle closures, by module (${kib(sum(codeBy))} KiB in all), KiB (functions):`);
for (const [k, s] of [...codeBy].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${kib(s)}  ${k} (${fnCount.get(k) ?? 0})`);
