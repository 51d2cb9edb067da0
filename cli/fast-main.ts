// The entry of the CLI's fast path (dist/bin/virtq-fast.cjs, decision 0028): the launcher at
// the head of dist/bin/virtq.js runs it first; it exits with the command's status, or with
// HAND_OVER having printed nothing, and the launcher then runs the full CLI on the same argv.
// A small bundle of its own: no commander, no catalogue, no validators, so a whole `virtq list`
// costs little more than Node's own start.
import { systemClock } from '../protocol/clock.js';
import { runFast } from './fast-run.js';

/** The exit status that hands the command line to the full CLI (scripts/build.mjs's launcher tests for it). */
export const HAND_OVER = 75;

async function main(): Promise<void> {
  process.stdout.on('error', () => process.exit(0));
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
  if (status === undefined) process.exit(HAND_OVER);
  // As cli/main.ts: let piped writes drain before exiting.
  await Promise.all([process.stdout, process.stderr].map((s) => (s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))))));
  process.exit(status);
}

void main();
