// The guest's own uptime (/proc/uptime), read at its console shell: a restored guest's clock
// continues where it was saved, a rebooted one starts again near zero.
import type { GuestConsole } from './guest-console.js';

let seq = 0;

/** Seconds the guest has been up, by its own clock. */
export async function guestUptime(con: GuestConsole): Promise<number> {
  const tag = `UPT${++seq}`;
  const from = con.serial.mark();
  // The marker is split in the typed command so that the shell's echo of it never matches.
  await con.run(`echo ${tag}=$(cut -d' ' -f1 /proc/uptime)=E''ND`, `=END`);
  const text = con.serial.output.slice(from);
  const m = new RegExp(`${tag}=([0-9.]+)=END`).exec(text);
  if (m === null) throw new Error(`no uptime in the guest's output: ${JSON.stringify(text.slice(-300))}`);
  return Number(m[1]);
}
