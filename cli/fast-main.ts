// The fast path's body (dist/bin/virtq-fast-body.js, decision 0028): cli/fast-entry.ts, the
// file the launcher at the head of dist/bin/virtq.js execs node on (sh does not wait: a waiting sh
// cost ~14 ms of CPU a run), compiles it with the V8 code cache the build made from a warm run
// and calls fastMain. It runs the command when it can; when it cannot, having printed nothing, it
// hands the command line over to the full CLI's bundle (virtq.js, beside it) in this same process
// — cheaper than a second node, even one on the startup snapshot, since Node's own start is
// already paid. With VIRTQ_FAST_PROBE=1 it exits HAND_OVER instead (the tests tell from it which
// path took a command line).
// A small bundle of its own: no commander, no catalogue, no validators, so a whole `virtq list`
// costs little more than Node's own start.
import { writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runFast } from './fast-run.js';

export { runFast } from './fast-run.js';

/** The exit status that says "not mine, nothing printed" under VIRTQ_FAST_PROBE=1. */
export const HAND_OVER = 75;

/**
 * Loads the ES module at `path` (the full CLI's bundle) with import(). The entry passes it in: code
 * compiled by vm.Script, as this body is, has no dynamic import of its own in Node 20.
 */
export type LoadModule = (path: string) => Promise<unknown>;

/** Runs the full CLI on the same argv in this process, as `node virtq.js ARGS` would. */
async function handOver(load: LoadModule): Promise<void> {
  if (process.env['VIRTQ_FAST_PROBE'] === '1') process.exit(HAND_OVER);
  // The full CLI reads only argv.slice(2); argv[1] names the file it runs from, as with `node virtq.js`.
  const bin = join(dirname(process.argv[1] ?? '.'), 'virtq.js');
  process.argv[1] = bin;
  await load(bin);
}

/**
 * Writes `text` to `fd` with write(2) itself: process.stdout and process.stderr are never made,
 * and making one costs a stream, a pipe or tty handle and their modules (bench/RESULTS.md, issue
 * 15, session 10). False when the write failed (stdout closed: the full CLI then exits 0). A
 * descriptor some other process made non-blocking (EAGAIN) gets the rest through the stream,
 * which waits for it.
 */
function writeAll(fd: 1 | 2, text: string): Promise<boolean> {
  let buf = Buffer.from(text, 'utf8');
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.resolve(false);
      const stream = fd === 1 ? process.stdout : process.stderr;
      return new Promise((resolve) => {
        stream.once('error', () => resolve(false));
        stream.write(buf, (e) => resolve(e === null || e === undefined));
      });
    }
  }
  return Promise.resolve(true);
}

/** Runs process.argv's command line and exits with its status, or hands it over with `load`. */
export async function fastMain(load: LoadModule): Promise<void> {
  let out = '';
  let err = '';
  let status: number | undefined;
  try {
    status = await runFast(process.argv.slice(2), {
      env: process.env, uid: process.getuid?.() ?? 0,
      write: (o, e) => { out = o; err = e; },
    });
  } catch {
    // A failure of the fast path's own (it prints nothing before its outcome): the full CLI decides.
    status = undefined;
  }
  if (status === undefined) return handOver(load);
  // As cli/main.ts: a closed stdout ends the process with status 0; stderr's failures change nothing.
  if (out !== '' && !(await writeAll(1, out))) process.exit(0);
  if (err !== '') await writeAll(2, err);
  process.exit(status);
}
