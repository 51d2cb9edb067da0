// Loaded with `node --import` by bench/shim/attribution.mjs: after VQ_ATTR_MS it writes the
// process's V8 heap-space figures, process.memoryUsage() and smaps_rollup to VQ_ATTR_OUT.
// Measurement only; nothing ships with it. Both the shim and the floor load it, so its own
// cost (one timer, this module) is in both columns.
import { writeFileSync, readFileSync } from 'node:fs';
import v8 from 'node:v8';

const out = process.env.VQ_ATTR_OUT;
if (out !== undefined) {
  setTimeout(() => {
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { used: s.space_used_size, size: s.space_size, physical: s.physical_space_size }]));
    const code = v8.getHeapCodeStatistics();
    // VQ_ATTR_HEAPSNAP=DIR: also a heap snapshot (bench/shim/heap-groups.mjs groups it), written after the figures are read.
    const snapDir = process.env.VQ_ATTR_HEAPSNAP;
    const figures = JSON.stringify({ spaces, code, usage: process.memoryUsage(), heap: v8.getHeapStatistics(), smaps: readFileSync(`/proc/${process.pid}/smaps_rollup`, 'utf8') });
    if (snapDir !== undefined) v8.writeHeapSnapshot(`${snapDir}/${process.pid}.heapsnapshot`);
    writeFileSync(out, figures);
  }, Number(process.env.VQ_ATTR_MS ?? 15000)).unref();
}
