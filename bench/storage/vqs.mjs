#!/usr/bin/env node
// The virtstoraged counterpart of lvs.py (bench/storage/run.mjs): a StorageClient in a process of
// its own, driven by one JSON command per line on stdin, one JSON answer per line on stdout, the
// call timed here with performance.now() around the client call only, as lvs.py times libvirt's.
//
// Why a process of its own: run.mjs starts a process (`sync`, cp, qemu-img) before every timed
// run. A fork leaves the forking process's pages write-protected, and its next writes fault
// (~15 µs each on this machine class; 20–30 of them for a call's reply path). libvirt's python
// client never forks, so a StorageClient in run.mjs itself paid those faults and libvirt's did
// not (issue #13, session 26: create raw 1.8 ms here against 2.7 ms in the forking process).
//
//   node vqs.mjs DIST URI
// Commands ({"op": ..., ...}):
//   call proc args        sc.api[proc](args); ms
//   clone args            sc.cloneVolume(args) (a job, waited for); ms
//   quit                  closes the client and exits
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const [dist, uri] = process.argv.slice(2);
const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
const sc = await connectStorage(uri, { waitMs: 10_000 });

const ops = {
  call: (m) => sc.api[m.proc](m.args ?? {}),
  clone: (m) => sc.cloneVolume(m.args),
};

const lines = createInterface({ input: process.stdin });
const answer = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
for await (const line of lines) {
  const m = JSON.parse(line);
  if (m.op === 'quit') break;
  const op = ops[m.op];
  if (op === undefined) { answer({ ok: false, error: `unknown op ${m.op}` }); continue; }
  try {
    const t0 = performance.now();
    await op(m);
    answer({ ok: true, ms: performance.now() - t0 });
  } catch (err) {
    answer({ ok: false, error: err instanceof Error ? `${err.code ?? ''} ${err.message}` : String(err) });
  }
}
sc.close();
process.exit(0);
