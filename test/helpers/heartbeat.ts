// A serial heartbeat from the test guest: a shell loop typed on its console prints
// `HB <seq> <uptime>` every 10 ms. Its sequence numbers show lost output, its uptime (the
// guest's own clock, 10 ms resolution) shows whether the guest itself stopped.
import { readFileSync } from 'node:fs';

/** Typed after the console shell's prompt; runs until the guest stops. */
export const HEARTBEAT_LOOP = 'i=0; while :; do i=$((i+1)); read u r < /proc/uptime; echo "HB $i $u"; usleep 10000; done\n';

/** One heartbeat line. */
export interface Beat {
  seq: number;
  /** The guest's uptime in seconds when it printed the line. */
  guestSec: number;
}

/** The heartbeats in console output (only whole lines; the shell's echo of the loop itself does not match). */
export function beats(text: string): Beat[] {
  const out: Beat[] = [];
  for (const m of text.matchAll(/HB (\d+) (\d+\.\d+)\r?\n/g)) out.push({ seq: Number(m[1]), guestSec: Number(m[2]) });
  return out;
}

/** Heartbeats in a console log file. */
export function beatsInFile(path: string): Beat[] {
  return beats(readFileSync(path, 'latin1'));
}

/** Missing sequence numbers between the first and last beat, and the longest gap of the guest's clock between consecutive beats. */
export function analyse(list: readonly Beat[]): { count: number; lost: number; maxGuestGapMs: number } {
  let lost = 0;
  let maxGap = 0;
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1] as Beat;
    const b = list[i] as Beat;
    if (b.seq > a.seq + 1) lost += b.seq - a.seq - 1;
    // Across lost lines the guest's clock moved for all of them: per beat, it is the same measure.
    maxGap = Math.max(maxGap, ((b.guestSec - a.guestSec) * 1000) / Math.max(1, b.seq - a.seq));
  }
  return { count: list.length, lost, maxGuestGapMs: Math.round(maxGap) };
}
