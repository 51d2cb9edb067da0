#!/usr/bin/env node
// Groups a V8 heap snapshot's self sizes by node type and name (constructor for objects, function
// name for closures, the first characters for strings), largest first: what a settled shim holds
// that the floor does not. Issue 15, target 2. Snapshots come from attribution.mjs with
// VQ_ATTR_HEAPSNAP=DIR.
//
//   node bench/shim/heap-groups.mjs SHIM.heapsnapshot [FLOOR.heapsnapshot] [--top 40]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const TOP = topAt >= 0 ? Number(args[topAt + 1]) : 40;
const files = args.filter((a, i) => !a.startsWith('--') && (topAt < 0 || i !== topAt + 1));

function groups(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const n = f.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((k) => f.indexOf(k));
  const out = new Map();
  const byType = new Map();
  for (let i = 0; i < snap.nodes.length; i += n) {
    const type = types[snap.nodes[i + iType]];
    let name = snap.strings[snap.nodes[i + iName]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = name.length > 60 ? `${name.slice(0, 60).replace(/\s+/g, ' ')}… (${name.length})` : name.replace(/\s+/g, ' ');
    const key = `${type}: ${name}`;
    const size = snap.nodes[i + iSize];
    const g = out.get(key) ?? { count: 0, size: 0 };
    g.count++; g.size += size; out.set(key, g);
    byType.set(type, (byType.get(type) ?? 0) + size);
  }
  return { out, byType };
}

const all = files.map(groups);
const kib = (b) => (b / 1024).toFixed(1);
console.log('by node type, KiB:', files.map((f) => f).join(' | '));
for (const t of new Set(all.flatMap((a) => [...a.byType.keys()]))) console.log(`  ${t.padEnd(22)} ${all.map((a) => kib(a.byType.get(t) ?? 0).padStart(9)).join(' ')}`);
const [shim, floor] = all;
const rows = [...shim.out.entries()].map(([k, g]) => [k, g, g.size - (floor?.out.get(k)?.size ?? 0)]).sort((a, b) => b[2] - a[2]).slice(0, TOP);
console.log(`\ntop ${TOP} by self size over the floor, KiB (count):`);
for (const [k, g, d] of rows) console.log(`  ${kib(d).padStart(8)}  ${kib(g.size).padStart(8)} (${g.count})  ${k.slice(0, 110)}`);
