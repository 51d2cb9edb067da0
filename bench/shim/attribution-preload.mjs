// Loaded with `node --import` by bench/shim/attribution.mjs: after VQ_ATTR_MS it writes the
// process's V8 heap-space figures, process.memoryUsage(), smaps_rollup and smaps to VQ_ATTR_OUT.
// Measurement only; nothing ships with it. Both the shim and the floor load it, so its own
// cost (one timer, this module) is in both columns.
// VQ_ATTR_GC_MS=T (experiment): at T ms, one memory-reducing full GC ("last-resort": V8's
// CollectAllAvailableGarbage) from a throw-away context, as a settled shim could do itself.
import { writeFileSync, readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

const out = process.env.VQ_ATTR_OUT;
const gcAt = process.env.VQ_ATTR_GC_MS;
if (gcAt !== undefined) {
  setTimeout(() => {
    v8.setFlagsFromString('--expose-gc');
    vm.runInNewContext('gc({ type: "major", execution: "sync", flavor: "last-resort" })');
  }, Number(gcAt)).unref();
}
// VQ_ATTR_FLAGS_MS=T VQ_ATTR_FLAGS="--a --b" (experiment): v8.setFlagsFromString at T ms, as a
// shim could do once settled (start-up code caches are consulted before then).
if (process.env.VQ_ATTR_FLAGS !== undefined) {
  setTimeout(() => { for (const f of process.env.VQ_ATTR_FLAGS.split(' ')) v8.setFlagsFromString(f); }, Number(process.env.VQ_ATTR_FLAGS_MS ?? 3000)).unref();
}
if (out !== undefined) {
  setTimeout(() => {
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { used: s.space_used_size, size: s.space_size, physical: s.physical_space_size }]));
    const code = v8.getHeapCodeStatistics();
    // VQ_ATTR_HEAPSNAP=DIR: also a heap snapshot (bench/shim/heap-groups.mjs groups it), written after the figures are read.
    const snapDir = process.env.VQ_ATTR_HEAPSNAP;
    const figures = JSON.stringify({ spaces, code, usage: process.memoryUsage(), heap: v8.getHeapStatistics(), smaps: readFileSync(`/proc/${process.pid}/smaps_rollup`, 'utf8'), smapsFull: readFileSync(`/proc/${process.pid}/smaps`, 'utf8') });
    if (snapDir !== undefined) v8.writeHeapSnapshot(`${snapDir}/${process.pid}.heapsnapshot`);
    writeFileSync(out, figures);
  }, Number(process.env.VQ_ATTR_MS ?? 15000)).unref();
}
