// The entry of the CLI's fast path (dist/bin/virtq-fast.cjs, decision 0028): the launcher at
// the head of dist/bin/virtq.js execs node on it (sh does not wait: a waiting sh cost ~14 ms of
// CPU a run). It runs the command when it can; when it cannot, having printed nothing, it hands
// the command line over by loading the full CLI's bundle (virtq.js, beside it) in this same
// process — cheaper than a second node, even one on the startup snapshot, since Node's own start
// is already paid. With VIRTQ_FAST_PROBE=1 it exits HAND_OVER instead (the tests tell from it
// which path took a command line).
// A small bundle of its own: no commander, no catalogue, no validators, so a whole `virtq list`
// costs little more than Node's own start.
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { systemClock } from '../protocol/clock.js';
import { runFast } from './fast-run.js';

/** The exit status that says "not mine, nothing printed" under VIRTQ_FAST_PROBE=1. */
export const HAND_OVER = 75;

const onStdoutError = (): never => process.exit(0);

/** Runs the full CLI on the same argv in this process, as `node virtq.js ARGS` would. */
async function handOver(): Promise<void> {
  if (process.env['VIRTQ_FAST_PROBE'] === '1') process.exit(HAND_OVER);
  process.stdout.removeListener('error', onStdoutError);
  // The full CLI reads only argv.slice(2); argv[1] names the file it runs from, as with `node virtq.js`.
  const bin = join(dirname(process.argv[1] ?? '.'), 'virtq.js');
  process.argv[1] = bin;
  await import(pathToFileURL(bin).href);
}

async function main(): Promise<void> {
  process.stdout.on('error', onStdoutError);
  let status: number | undefined;
  try {
    status = await runFast(process.argv.slice(2), {
      env: process.env, uid: process.getuid?.() ?? 0, clock: systemClock(),
      write: (out, err) => {
        if (out !== '') process.stdout.write(out);
        if (err !== '') process.stderr.write(err);
      },
    });
  } catch {
    // A failure of the fast path's own (it prints nothing before its outcome): the full CLI decides.
    status = undefined;
  }
  if (status === undefined) return handOver();
  // As cli/main.ts: let piped writes drain before exiting.
  await Promise.all([process.stdout, process.stderr].map((s) => (s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))))));
  process.exit(status);
}

void main();
